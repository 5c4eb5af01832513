#!/usr/bin/env python3
"""Tiny OPUS-MT-style teachers for issue 20's tests: `MarianMTModel` directories as the Hugging
Face hub serves them (config.json, model.safetensors, source.spm, target.spm, vocab.json [and
target_vocab.json], tokenizer_config.json, generation_config.json), made here because no model hub
is reachable, with the reference outputs of `transformers` on each.

    scripts/marian/make-tiny.sh OUT_DIR      # makes the venv (outside the repo), then runs this

Three configurations (CONFIGS below), chosen to cover the options an OPUS-MT download may have:
shared and separate vocabularies, different depths and head counts, swish / gelu / relu, with and
without √d embedding scaling, tied and untied output layers. For each, all seeded:
1. trains two SentencePiece unigram models (the OPUS-MT kind, `nmt_nfkc` normalisation) on the
   first lines of Multi30k En and De;
2. builds the vocabulary the way OPUS-MT's converted models have it: `</s>` 0, `<unk>` 1, then the
   pieces in order of first appearance, `<pad>` last (joint over both models, or one per side);
3. builds the `MarianConfig` (post-norm layers, sinusoidal positions in halves, decoder start =
   pad) and trains the model briefly on the same lines, so that its hypotheses mostly end with
   `</s>` rather than at `max_length`;
4. saves model, tokenizer and generation config (OPUS-MT's: pad banned, renormalised
   log-probabilities, forced `</s>` at `max_length`) with `save_pretrained`;
5. writes `reference.json`: for HELD_OUT sentences after the training lines (and a few made-up
   inputs that test the tokenizer's edges), the tokenizer's source ids, its target-side ids of the
   reference translation, `generate`'s greedy and beam-5 output (ids, text, scores) and the
   teacher-forced log-probability of every token of both outputs.
"""

import json
import os
import shutil
import sys

import sentencepiece as spm
import torch
from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

TRAIN_LINES = 3000
HELD_OUT = 200
SEED = 1
SOURCE_PIECES = 500
TARGET_PIECES = 400

CONFIGS = {
    # OPUS-MT's usual layout, scaled down: one joint vocabulary, everything tied, swish.
    "shared-swish": dict(
        separate=False, d_model=32, encoder_layers=2, decoder_layers=2, heads=4, ffn=64,
        activation="swish", scale_embedding=True, tie_output=True, length_penalty=1.0, max_length=48,
    ),
    # Separate source and target vocabularies (OPUS-MT's `separate_vocabs`), gelu, a deep encoder
    # and a one-layer decoder, a length penalty other than 1.
    "separate-gelu": dict(
        separate=True, d_model=32, encoder_layers=3, decoder_layers=1, heads=2, ffn=48,
        activation="gelu", scale_embedding=True, tie_output=True, length_penalty=0.6, max_length=40,
        # Its one-layer decoder needs longer to learn to end its sentences.
        steps=2000,
    ),
    # relu, no embedding scaling, an output layer of its own, 8 heads over d 48.
    "untied-relu": dict(
        separate=False, d_model=48, encoder_layers=1, decoder_layers=3, heads=8, ffn=96,
        activation="relu", scale_embedding=False, tie_output=False, length_penalty=1.2, max_length=48,
    ),
}

# Inputs the tokenizer must get right beyond plain text: NFKC folding, unknown characters,
# repeated and leading/trailing spaces, a special token written in the text, a language code,
# an empty line.
EDGE_CASES = [
    "Ｆｕｌｌ-width ﬁ ligature",
    "A ☃ snowman ☃☃ twice",
    "  two   spaces  ",
    "a dog </s> runs",
    ">>deu<< A man is running.",
    "",
]


def read_lines(path, n, skip=0):
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[skip : skip + n]


def train_spm(text_path, prefix, pieces):
    # SentencePiece shuffles its input with a seed from the clock unless told otherwise.
    spm.set_random_generator_seed(SEED)
    # OPUS-MT's models: unigram, NFKC-based `nmt_nfkc`; only <unk> among the ids (Marian adds
    # </s> and <pad> in its own vocabulary).
    spm.SentencePieceTrainer.train(
        input=text_path,
        model_prefix=prefix,
        vocab_size=pieces,
        model_type="unigram",
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        seed_sentencepiece_size=100000,
        num_threads=1,
        minloglevel=2,
    )


def marian_vocab(*models):
    vocab = {"</s>": 0, "<unk>": 1}
    for path in models:
        sp = spm.SentencePieceProcessor(model_file=path)
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            if piece not in vocab and not sp.is_unknown(i) and not sp.is_control(i):
                vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    return vocab


def write_json(path, value, indent=1):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)


def make_spm(out, src, tgt):
    """source.spm and target.spm in `out`, shared by every configuration (one blob in git)."""
    os.makedirs(out, exist_ok=True)
    for lang, lines in (("en", src), ("de", tgt)):
        with open(f"{out}/spm-train.{lang}", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    train_spm(f"{out}/spm-train.en", f"{out}/source", SOURCE_PIECES)
    train_spm(f"{out}/spm-train.de", f"{out}/target", TARGET_PIECES)
    for name in ("source", "target"):
        os.replace(f"{out}/{name}.model", f"{out}/{name}.spm")
        os.remove(f"{out}/{name}.vocab")
    for lang in ("en", "de"):
        os.remove(f"{out}/spm-train.{lang}")


def make_tokenizer(out, spm_dir, c):
    for name in ("source", "target"):
        shutil.copyfile(f"{spm_dir}/{name}.spm", f"{out}/{name}.spm")
    if c["separate"]:
        # HF gives the encoder's embedding padding_idx = the target pad, which must be a source id:
        # the source side is the larger (SOURCE_PIECES > TARGET_PIECES).
        src_vocab = marian_vocab(f"{out}/source.spm")
        tgt_vocab = marian_vocab(f"{out}/target.spm")
        write_json(f"{out}/vocab.json", src_vocab)
        write_json(f"{out}/target_vocab.json", tgt_vocab)
    else:
        src_vocab = tgt_vocab = marian_vocab(f"{out}/source.spm", f"{out}/target.spm")
        write_json(f"{out}/vocab.json", src_vocab)
    tok = MarianTokenizer(
        source_spm=f"{out}/source.spm",
        target_spm=f"{out}/target.spm",
        vocab=f"{out}/vocab.json",
        target_vocab_file=f"{out}/target_vocab.json" if c["separate"] else None,
        separate_vocabs=c["separate"],
        source_lang="en",
        target_lang="de",
        model_max_length=128,
    )
    return tok, len(src_vocab), tgt_vocab


def make_model(c, src_size, tgt_vocab):
    pad = tgt_vocab["<pad>"]
    config = MarianConfig(
        vocab_size=src_size,
        decoder_vocab_size=len(tgt_vocab),
        d_model=c["d_model"],
        encoder_layers=c["encoder_layers"],
        decoder_layers=c["decoder_layers"],
        encoder_attention_heads=c["heads"],
        decoder_attention_heads=c["heads"],
        encoder_ffn_dim=c["ffn"],
        decoder_ffn_dim=c["ffn"],
        activation_function=c["activation"],
        max_position_embeddings=128,
        scale_embedding=c["scale_embedding"],
        share_encoder_decoder_embeddings=not c["separate"],
        tie_word_embeddings=c["tie_output"],
        dropout=0.1,
        pad_token_id=pad,
        eos_token_id=0,
        decoder_start_token_id=pad,
        forced_eos_token_id=0,
    )
    model = MarianMTModel(config)
    # What OPUS-MT's generation_config.json says, with this model's lengths and penalty.
    model.generation_config = GenerationConfig(
        bad_words_ids=[[pad]],
        bos_token_id=0,
        decoder_start_token_id=pad,
        eos_token_id=0,
        forced_eos_token_id=0,
        max_length=c["max_length"],
        num_beams=5,
        length_penalty=c["length_penalty"],
        pad_token_id=pad,
        renormalize_logits=True,
    )
    return model


def train(model, tok, src, tgt, steps=600, batch=32):
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        i = (step * batch) % len(src)
        enc = tok(src[i : i + batch], text_target=tgt[i : i + batch], padding=True, return_tensors="pt")
        labels = enc["labels"].masked_fill(enc["labels"] == tok.pad_token_id, -100)
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            print(f"make-tiny: step {step} loss {loss.item():.3f}", file=sys.stderr)


def token_logprobs(model, enc, ids, pad):
    """Teacher-forced log p(y_t | y_<t, x) of every generated token (after the decoder start),
    over the distribution `generate` searches: pad banned, renormalised."""
    dec_in = torch.tensor([ids[:-1]])
    logits = model(**enc, decoder_input_ids=dec_in).logits[0]
    logits[:, pad] = float("-inf")
    logp = logits.log_softmax(-1)
    return [logp[t, y].item() for t, y in enumerate(ids[1:])]


def reference(model, tok, c, sources, targets):
    gen = model.generation_config
    pad = gen.pad_token_id
    source_piece = {i: p for p, i in tok.encoder.items()}
    rows = []
    with torch.no_grad():
        for s, t in zip(sources, targets):
            enc = tok([s], return_tensors="pt")
            row = {
                "source": s,
                "source_ids": enc["input_ids"][0].tolist(),
                "source_pieces": [source_piece[i] for i in enc["input_ids"][0].tolist()],
            }
            if t is not None:
                row["target"] = t
                row["target_ids"] = tok(text_target=[t])["input_ids"][0]
            for name, beams in (("greedy", 1), ("beam5", 5)):
                out = model.generate(
                    **enc, num_beams=beams, do_sample=False, output_scores=True, return_dict_in_generate=True
                )
                ids = out.sequences[0].tolist()
                while len(ids) > 1 and ids[-1] == pad:  # beam output is padded to the batch's longest
                    ids.pop()
                hyp = {
                    "ids": ids,
                    "text": tok.decode(ids, skip_special_tokens=True),
                    "token_logprobs": token_logprobs(model, enc, ids, pad),
                }
                if beams > 1:
                    hyp["score"] = out.sequences_scores[0].item()
                row[name] = hyp
            rows.append(row)
    return {
        "max_length": gen.max_length,
        "length_penalty": gen.length_penalty,
        "num_beams": 5,
        "sentences": rows,
    }


def make(name, c, data, spm_dir, out):
    out = f"{out}/{name}"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    src = read_lines(f"{data}/train.en", TRAIN_LINES)
    tgt = read_lines(f"{data}/train.de", TRAIN_LINES)
    tok, src_size, tgt_vocab = make_tokenizer(out, spm_dir, c)
    model = make_model(c, src_size, tgt_vocab)
    train(model, tok, src, tgt, steps=c.get("steps", 600))
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    held_src = read_lines(f"{data}/train.en", HELD_OUT, skip=TRAIN_LINES)
    held_tgt = read_lines(f"{data}/train.de", HELD_OUT, skip=TRAIN_LINES)
    sources = held_src + EDGE_CASES
    targets = held_tgt + EDGE_CASES
    # One sentence per line: small, and diffs stay readable.
    ref = reference(model, tok, c, sources, targets)
    rows = ref.pop("sentences")
    with open(f"{out}/reference.json", "w", encoding="utf-8") as f:
        head = json.dumps(ref, ensure_ascii=False)[:-1]
        f.write(head + ', "sentences": [\n')
        f.write(",\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
        f.write("\n]}\n")
    n = sum(p.numel() for p in model.parameters())
    print(f"make-tiny: {out}: vocab {src_size}/{len(tgt_vocab)}, {n} parameters")


def main(data, out):
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    names = sys.argv[3:] or list(CONFIGS)
    spm_dir = f"{out}/.spm"
    if not os.path.exists(f"{spm_dir}/target.spm"):
        make_spm(spm_dir, read_lines(f"{data}/train.en", TRAIN_LINES), read_lines(f"{data}/train.de", TRAIN_LINES))
    for name in names:
        make(name, CONFIGS[name], data, spm_dir, out)
    shutil.rmtree(spm_dir)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: make-tiny.py MULTI30K_DIR OUT_DIR [CONFIG...]")
    main(sys.argv[1], sys.argv[2])
