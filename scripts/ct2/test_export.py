"""Tests of scripts/ct2/export.py and translate.py on small synthetic seqkd model directories (no
trained model needed): the exported CTranslate2 model must score and translate exactly like the
numpy re-implementation of seqkd's forward pass (reference.py), with untied embeddings, fewer
decoder than encoder layers and pruned (compactly stored) weights.

    bash scripts/ct2/venv.sh && .venv-ct2/bin/python -m unittest discover -s scripts/ct2 -p 'test_*.py' -v
"""

import contextlib
import io
import json
import math
import os
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
import translate  # noqa: E402
from reference import Reference  # noqa: E402

CORPUS = [
    "a man in a red shirt is riding a bike .",
    "two dogs are playing in the snow .",
    "a woman with a blue hat sits on a bench !",
    "children play football on the green grass near 42 trees .",
    "the old man reads a newspaper in the park .",
    "ein Mann mit einem roten Hut fährt Fahrrad .",
]

_NP_TO_ST = {np.float32: "F32", np.uint8: "U8", np.int8: "I8", np.int64: "I64"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        header[name] = {"dtype": _NP_TO_ST[arr.dtype.type], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    header["__metadata__"] = {"step": "1"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def compact(dense, ratio, rng):
    """Prunes `dense` (smallest magnitudes) and stores it like prune.rs `compact`: packed keep-bits
    (bit i of byte i/8 = element i, LSB first), kept values in row-major order, i64 shape."""
    flat = dense.reshape(-1)
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(np.abs(flat), kind="stable")[: int(round(ratio * flat.size))]] = False
    pruned = np.where(keep, flat, 0).reshape(dense.shape).astype(np.float32)
    parts = {
        ".__mask": np.packbits(keep, bitorder="little"),
        ".__values": flat[keep].astype(np.float32),
        ".__shape": np.array(dense.shape, dtype=np.int64),
    }
    return pruned, parts


def make_vocab(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    tok.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=120, special_tokens=["<pad>", "<s>", "</s>", "<unk>"], min_frequency=1, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(path)
    return tok.get_vocab_size(with_added_tokens=True)


def make_model_dir(root, *, d=32, heads=4, d_ff=64, enc=2, dec=1, tied=False, prune=0.0, seed=0, arch="transformer"):
    """A seqkd model directory with random weights, scaled so that the output distributions are peaked."""
    os.makedirs(root, exist_ok=True)
    vocab = make_vocab(os.path.join(root, "vocab.json"))
    rng = np.random.default_rng(seed)
    with open(os.path.join(root, "config.toml"), "w") as f:
        f.write(
            f'[model]\narch = "{arch}"\nd_model = {d}\nn_heads = {heads}\nd_ff = {d_ff}\n'
            f"encoder_layers = {enc}\ndecoder_layers = {dec}\ndropout = 0.1\n"
            f"tied_embeddings = {'true' if tied else 'false'}\n\n"
            "[decode]\nbeam_size = 5\nlength_penalty = 1.0\nmax_len_a = 1.5\nmax_len_b = 10\nbatch_tokens = 4096\n"
        )
    dense = {}

    def mat(name, out, inp, scale=1.0):
        dense[name + ".weight"] = (rng.standard_normal((out, inp)) * scale / math.sqrt(inp)).astype(np.float32)
        dense[name + ".bias"] = (rng.standard_normal(out) * 0.1).astype(np.float32)

    def norm(name):
        dense[name + ".weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
        dense[name + ".bias"] = (0.1 * rng.standard_normal(d)).astype(np.float32)

    def attn(p):
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            mat(f"{p}.{n}", d, d, 1.5)

    dense["src_embed.weight"] = (rng.standard_normal((vocab, d)) / math.sqrt(d)).astype(np.float32)
    if not tied:
        dense["tgt_embed.weight"] = (rng.standard_normal((vocab, d)) / math.sqrt(d)).astype(np.float32)
        mat("out_proj", vocab, d, 4.0)
    for i in range(enc):
        p = f"encoder.{i}"
        norm(p + ".self_attn_norm"), attn(p + ".self_attn"), norm(p + ".ffn_norm")
        mat(p + ".ffn.fc1", d_ff, d), mat(p + ".ffn.fc2", d, d_ff)
    for i in range(dec):
        p = f"decoder.{i}"
        norm(p + ".self_attn_norm"), attn(p + ".self_attn"), norm(p + ".cross_attn_norm"), attn(p + ".cross_attn")
        norm(p + ".ffn_norm"), mat(p + ".ffn.fc1", d_ff, d), mat(p + ".ffn.fc2", d, d_ff)
    norm("encoder_norm"), norm("decoder_norm")

    stored, n_compact = {}, 0
    for name, t in dense.items():
        if prune > 0 and t.ndim >= 2:
            pruned, parts = compact(t, prune, rng)
            dense[name] = pruned
            for suffix, part in parts.items():
                stored[f"model.{name}{suffix}"] = part
            n_compact += 1
        else:
            stored[f"model.{name}"] = t
    write_safetensors(os.path.join(root, "model.safetensors"), stored)
    return dense, n_compact


def run_quiet(fn, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = fn(argv)
    return rc, out.getvalue(), err.getvalue()


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, *p):
        return os.path.join(self.tmp.name, *p)

    def test_densify_restores_pruned_tensors(self):
        rng = np.random.default_rng(1)
        t = rng.standard_normal((7, 13)).astype(np.float32)  # 91 bits: the last byte is partial
        pruned, parts = compact(t, 0.6, rng)
        tensors = {"model.x" + s: v for s, v in parts.items()}
        self.assertEqual(export.densify(tensors), ["model.x"])
        self.assertEqual(list(tensors), ["model.x"])
        np.testing.assert_array_equal(tensors["model.x"], pruned)
        self.assertEqual(int((tensors["model.x"] == 0).sum()), round(0.6 * t.size))

    def test_densify_rejects_inconsistent_parts(self):
        rng = np.random.default_rng(2)
        _, parts = compact(rng.standard_normal((4, 4)).astype(np.float32), 0.5, rng)
        parts[".__values"] = parts[".__values"][:-1]
        with self.assertRaisesRegex(export.ExportError, "keeps 8 weights but 7"):
            export.densify({"model.x" + s: v for s, v in parts.items()})

    def test_int8_matrices_are_dequantized(self):
        q = np.array([[1, -2], [127, -127]], dtype=np.int8)
        tensors = {"model.x.__int8": q, "model.x.__scale": np.array([0.5, 0.01], dtype=np.float32)}
        self.assertEqual(export.dequantize(tensors), ["model.x"])
        np.testing.assert_allclose(tensors["model.x"], [[0.5, -1.0], [1.27, -1.27]], rtol=1e-6)

    def test_position_table_is_interleaved_from_zero(self):
        pe = export.sinusoidal_positions(5, 8)
        p, i = 3, 1  # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)
        angle = p / 10000 ** (2 * i / 8)
        self.assertAlmostEqual(float(pe[p, 2 * i]), math.sin(angle), places=6)
        self.assertAlmostEqual(float(pe[p, 2 * i + 1]), math.cos(angle), places=6)
        np.testing.assert_array_equal(pe[0], np.tile([0.0, 1.0], 4).astype(np.float32))

    def test_lstm_is_refused(self):
        make_model_dir(self.path("m"), arch="lstm")
        rc, _, err = run_quiet(export.main, [self.path("m"), self.path("ct2")])
        self.assertEqual(rc, 1)
        self.assertIn("LSTM", err)
        self.assertFalse(os.path.exists(self.path("ct2")))

    def check_faithful(self, **model_kw):
        import ctranslate2
        from tokenizers import Tokenizer

        model, out = self.path("m"), self.path("ct2")
        _, n_compact = make_model_dir(model, **model_kw)
        rc, _, err = run_quiet(export.main, [model, out])
        self.assertEqual(rc, 0, err)
        with open(os.path.join(out, "seqkd.json")) as f:
            info = json.load(f)
        self.assertEqual(len(info["pruned_tensors"]), n_compact)
        self.assertEqual(info["decode"]["max_len_a"], 1.5)

        tok = Tokenizer.from_file(os.path.join(model, "vocab.json"))
        ref = Reference(os.path.join(model, "model.safetensors"), model_kw.get("d", 32), model_kw.get("heads", 4),
                        tied=model_kw.get("tied", False))
        self.assertEqual(ref.dec_layers, model_kw.get("dec", 1))
        rng = np.random.default_rng(3)
        n_vocab = tok.get_vocab_size()
        srcs = [tok.encode(s, add_special_tokens=False).ids for s in CORPUS]
        tgts = [list(rng.integers(4, n_vocab, size=rng.integers(1, 12))) for _ in srcs]

        # 1) Forced-decoding log-probabilities of y1 .. ym </s> agree.
        tr = ctranslate2.Translator(out, device="cpu", compute_type="float32", intra_threads=1)
        to_tokens = lambda ids: [tok.id_to_token(int(i)) for i in ids]  # noqa: E731
        scored = tr.score_batch([to_tokens(s) for s in srcs], [to_tokens(t) for t in tgts])
        for s, t, r in zip(srcs, tgts, scored):
            expect = ref.score(s, t)
            self.assertEqual(len(r.log_probs), len(t) + 1)
            np.testing.assert_allclose(r.log_probs, expect, atol=2e-4, rtol=1e-4)

        # 2) translate.py's greedy output (batched by source length) is the reference's greedy search.
        src_file, hyp_file = self.path("src.txt"), self.path("hyp.txt")
        with open(src_file, "w") as f:
            f.write("\n".join(CORPUS) + "\n")
        rc, stdout, err = run_quiet(translate.main, ["--model", out, "--vocab", os.path.join(model, "vocab.json"),
                                                     "--input", src_file, "--output", hyp_file, "--beam", "1",
                                                     "--batch-size", "4", "--threads", "1"])
        self.assertEqual(rc, 0, err)
        report = json.loads(stdout)
        self.assertEqual(report["sentences"], len(CORPUS))
        self.assertEqual(report["source_words"], sum(len(s.split()) for s in CORPUS))
        with open(hyp_file) as f:
            hyps = f.read().split("\n")[:-1]
        expect = [tok.decode(ref.greedy(s, math.ceil(1.5 * len(s)) + 10), skip_special_tokens=False) for s in srcs]
        self.assertEqual(hyps, expect)
        self.assertEqual(report["target_tokens"],
                         sum(len(ref.greedy(s, math.ceil(1.5 * len(s)) + 10)) for s in srcs))

    def test_untied_pruned_shallow_decoder_is_faithful(self):
        self.check_faithful(tied=False, enc=2, dec=1, prune=0.5, seed=4)

    def test_tied_dense_is_faithful(self):
        self.check_faithful(tied=True, enc=2, dec=2, prune=0.0, seed=5)


if __name__ == "__main__":
    unittest.main()
