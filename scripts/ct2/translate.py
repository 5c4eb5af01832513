#!/usr/bin/env python3
"""Translates a text file with a CTranslate2 model exported by scripts/ct2/export.py, on CPU, and
prints one JSON line of speed numbers.

    .venv-ct2/bin/python scripts/ct2/translate.py --model /tmp/ct2-teacher \
        --vocab runs/X/models/teacher/vocab.json --input test.en --output test.ct2.de \
        --beam 5 --batch-size 64 --threads 1 --compute-type float32

Tokenization and detokenization are seqkd's (crates/text/src/vocab.rs): the `tokenizers` pieces of
each line without special tokens; output ids without <pad>/<s>/</s> decoded by the tokenizer's
decoder. Decoding follows seqkd's (crates/nmt/src/decode): start from <s>, stop at </s>,
at most ceil(max_len_a · src_len) + max_len_b output tokens (src_len in subwords, </s> not
counted), length penalty score / len^lp with len counting </s>, beam search done when K
hypotheses ended. CTranslate2 takes one maximum length per batch, so by default sentences are
batched by equal source length (which is also what makes that maximum exact per sentence).
`--batching sorted` instead batches like seqkd's decoder (Batcher::by_source_length): sentences
sorted by source length, longest first (ties in input order), cut into batches of --batch-size;
each batch then gets the maximum length of its longest sentence, so a shorter sentence that would
reach its own limit may run longer than seqkd lets it (the outputs differ only for such sentences).

Defaults for --length-penalty/--max-len-a/--max-len-b come from the `seqkd.json` that export.py
writes (the model's [decode] table).

stdout: {"engine":"ctranslate2","compute_type":..,"beam":..,"batch":..,"sentences":..,
"target_tokens":..,"source_words":..,"seconds":..,"words_per_s":..,"target_tokens_per_s":..,
"batching":..,"batches":..,"encode_seconds":..};
`seconds` covers translation only (tokenization, model load and detokenization excluded);
`encode_seconds` is the time of the subword encoding of the input.
"""

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict

SPECIAL_IDS = {0, 1, 2}  # <pad>, <s>, </s>: dropped before detokenizing, like Vocab::decode


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def load_decode_defaults(model_dir):
    path = os.path.join(model_dir, "seqkd.json")
    if not os.path.exists(path):
        return {}, 1024
    with open(path, encoding="utf-8") as f:
        info = json.load(f)
    return info.get("decode", {}), int(info.get("max_positions", 1024))


def batches(lengths, batch_size, one_by_one, batching="equal-length"):
    """Index lists of at most batch_size sentences: of equal source length (`equal-length`), or
    cut from the sentences sorted by source length, longest first (`sorted`, like seqkd)."""
    if one_by_one:
        return [[i] for i in range(len(lengths))]
    if batching == "sorted":
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties in input order
        return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]
    by_len = defaultdict(list)
    for i, n in enumerate(lengths):
        by_len[n].append(i)
    out = []
    for n in sorted(by_len):
        idx = by_len[n]
        out.extend(idx[j : j + batch_size] for j in range(0, len(idx), batch_size))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="CTranslate2 model directory (from export.py)")
    ap.add_argument("--vocab", required=True, help="the seqkd model's vocab.json")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--beam", type=int, default=5, help="beam size (1 = greedy)")
    ap.add_argument("--batch-size", type=int, default=64, help="sentences per batch (at most)")
    ap.add_argument("--batching", choices=["equal-length", "sorted"], default="equal-length",
                    help="equal-length: batches of sentences of equal source length (exact per-sentence "
                         "maximum length); sorted: like seqkd, sorted by length, longest first, the "
                         "batch's maximum length from its longest sentence")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    ap.add_argument("--compute-type", default="float32", help="float32, int8, int8_float32, int16, ...")
    ap.add_argument("--one-by-one", action="store_true", help="translate each sentence alone (batch of 1)")
    ap.add_argument("--length-penalty", type=float, default=None, help="default: the model's [decode]")
    ap.add_argument("--max-len-a", type=float, default=None, help="default: the model's [decode]")
    ap.add_argument("--max-len-b", type=int, default=None, help="default: the model's [decode]")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import ctranslate2
    from tokenizers import Tokenizer

    decode_cfg, max_positions = load_decode_defaults(args.model)
    lp = args.length_penalty if args.length_penalty is not None else float(decode_cfg.get("length_penalty", 1.0))
    len_a = args.max_len_a if args.max_len_a is not None else float(decode_cfg.get("max_len_a", 1.5))
    len_b = args.max_len_b if args.max_len_b is not None else int(decode_cfg.get("max_len_b", 10))

    tok = Tokenizer.from_file(args.vocab)
    lines = read_lines(args.input)
    encode_start = time.perf_counter()
    sources = [tok.encode(line, add_special_tokens=False).tokens for line in lines]
    encode_seconds = time.perf_counter() - encode_start
    # The position table has max_positions rows: the source plus its </s> must fit, and so must the output.
    too_long = [i for i, s in enumerate(sources) if len(s) + 1 > max_positions]
    if too_long:
        print(f"translate: {len(too_long)} source(s) longer than {max_positions - 1} subwords are truncated "
              f"(first: line {too_long[0] + 1})", file=sys.stderr)
        for i in too_long:
            sources[i] = sources[i][: max_positions - 1]

    translator = ctranslate2.Translator(
        args.model, device="cpu", compute_type=args.compute_type, intra_threads=args.threads, inter_threads=1
    )

    outputs = [None] * len(sources)
    plan = batches([len(s) for s in sources], args.batch_size, args.one_by_one, args.batching)
    start = time.perf_counter()
    for idx in plan:
        src_len = max(len(sources[i]) for i in idx)
        max_len = min(math.ceil(len_a * src_len) + len_b, max_positions)
        results = translator.translate_batch(
            [sources[i] for i in idx],
            max_batch_size=0,
            beam_size=args.beam,
            patience=1,
            num_hypotheses=1,
            length_penalty=lp,
            max_decoding_length=max_len,
            min_decoding_length=0,  # seqkd allows </s> first; CT2's default is 1
            max_input_length=0,
            return_end_token=False,
        )
        for i, r in zip(idx, results):
            outputs[i] = r.hypotheses[0]
    seconds = time.perf_counter() - start

    target_tokens = 0
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        for hyp in outputs:
            ids = [tok.token_to_id(t) for t in hyp]
            ids = [i for i in ids if i is not None and i not in SPECIAL_IDS]
            target_tokens += len(hyp)
            f.write(tok.decode(ids, skip_special_tokens=False) + "\n")

    source_words = sum(len(line.split()) for line in lines)
    report = {
        "engine": "ctranslate2",
        "compute_type": args.compute_type,
        "beam": args.beam,
        "batch": 1 if args.one_by_one else args.batch_size,
        "threads": args.threads,
        "sentences": len(lines),
        "target_tokens": target_tokens,
        "source_words": source_words,
        "seconds": round(seconds, 4),
        "words_per_s": round(source_words / seconds, 2) if seconds > 0 else None,
        "target_tokens_per_s": round(target_tokens / seconds, 2) if seconds > 0 else None,
        "batching": "one-by-one" if args.one_by_one else args.batching,
        "batches": len(plan),
        "encode_seconds": round(encode_seconds, 4),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
