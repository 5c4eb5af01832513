#!/usr/bin/env python3
"""Exports a seqkd Transformer model directory to a CTranslate2 model directory.

    bash scripts/ct2/venv.sh
    .venv-ct2/bin/python scripts/ct2/export.py runs/X/models/teacher /tmp/ct2-teacher [--quantization int8]

The seqkd model directory holds `config.toml` ([model], [decode]), `vocab.json` (a HuggingFace
`tokenizers` BPE, ids <pad>=0 <s>=1 </s>=2 <unk>=3, joint source/target) and `model.safetensors`
(f32 tensors named `model.<path>`; pruned matrices stored compactly as `.__mask`/`.__values`/
`.__shape` are densified; int8 models' `.__int8` + per-row `.__scale` are dequantized to f32).
The model is filled into `ctranslate2.specs.TransformerSpec` the way CTranslate2's own converters
do it (see ctranslate2/converters/fairseq.py), matching crates/nmt/src/model/{transformer,layers}.rs:

- pre-norm layers `x + f(LayerNorm(x))`, a final LayerNorm on each stack, LayerNorm eps 1e-5;
- token embeddings × sqrt(d_model) (CT2's `scale_embeddings`);
- sinusoidal positions with sin/cos *interleaved* (PE[p, 2i] = sin, PE[p, 2i+1] = cos), which is not
  CT2's built-in table (concatenated halves), so the table is written explicitly, positions from 0;
- separate q/k/v projections, fused into CT2's [q;k;v] (self-attention) and q + [k;v] (cross);
- ReLU feed-forward; tied embeddings: one matrix for source/target embeddings and output layer
  (no output bias), or `tgt_embed` + `out_proj` (with bias) when untied;
- source = subwords + `</s>` (CT2 `add_source_eos`), decoder starts from `<s>` (batch.rs).

Besides CTranslate2's files, the output directory gets `seqkd.json`: the [decode] table of the
model's config and the size of the position table, which scripts/ct2/translate.py uses as defaults.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tomllib

import numpy as np

PREFIX = "model."
MASK_SUFFIX = ".__mask"
VALUES_SUFFIX = ".__values"
SHAPE_SUFFIX = ".__shape"
INT8_SUFFIX = ".__int8"  # `seqkd quantize`: i8 [out, in] with a per-row f32 `.__scale`, w = scale·int8
SCALE_SUFFIX = ".__scale"
SPECIALS = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
LAYER_NORM_EPS = 1e-5  # tch's nn::layer_norm default (crates/nmt/src/model/layers.rs)

_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "F64": np.float64,
    "U8": np.uint8,
    "I8": np.int8,
    "I32": np.int32,
    "I64": np.int64,
    "BOOL": np.bool_,
}


class ExportError(Exception):
    pass


def read_safetensors(path):
    """All tensors of a safetensors file as numpy arrays (little-endian, copied)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ExportError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ExportError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        le = np.dtype(dtype).newbyteorder("<")
        arr = np.frombuffer(data, dtype=le, count=(end - start) // le.itemsize, offset=base + start)
        out[name] = arr.reshape(info["shape"]).astype(dtype, copy=True)
    return out


def unpack_bits(packed, n):
    """Bit i of byte i/8 = element i, least significant bit first (crates/nmt/src/prune.rs)."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8).reshape(-1), bitorder="little")
    if bits.size < n:
        raise ExportError(f"mask has {bits.size} bits, need {n}")
    return bits[:n].astype(bool)


def densify(tensors):
    """Replaces compactly stored pruned tensors (`X.__mask`, `X.__values`, `X.__shape`) by dense `X`."""
    names = sorted(k[: -len(MASK_SUFFIX)] for k in tensors if k.endswith(MASK_SUFFIX))
    for name in names:
        try:
            shape = [int(s) for s in tensors.pop(name + SHAPE_SUFFIX).reshape(-1)]
            values = tensors.pop(name + VALUES_SUFFIX).reshape(-1)
        except KeyError as e:
            raise ExportError(f"{name}: compact tensor without {e.args[0]}") from None
        n = math.prod(shape)
        mask = unpack_bits(tensors.pop(name + MASK_SUFFIX), n)
        if int(mask.sum()) != values.size:
            raise ExportError(f"{name}: the mask keeps {int(mask.sum())} weights but {values.size} values are stored")
        dense = np.zeros(n, dtype=values.dtype)
        dense[mask] = values  # masked_scatter: kept values in row-major order
        tensors[name] = dense.reshape(shape)
    return names


def dequantize(tensors):
    """Replaces int8-stored matrices (`X.__int8` i8 [out, in], `X.__scale` f32 [out]) by f32 `X`."""
    names = sorted(k[: -len(INT8_SUFFIX)] for k in tensors if k.endswith(INT8_SUFFIX))
    for name in names:
        q = tensors.pop(name + INT8_SUFFIX)
        try:
            scale = tensors.pop(name + SCALE_SUFFIX).astype(np.float32)
        except KeyError:
            raise ExportError(f"{name}: int8 tensor without {SCALE_SUFFIX}") from None
        if q.ndim != 2 or scale.shape != (q.shape[0],):
            raise ExportError(f"{name}: int8 shape {list(q.shape)} does not fit scale shape {list(scale.shape)}")
        tensors[name] = q.astype(np.float32) * scale[:, None]
    return names


def sinusoidal_positions(n_positions, d_model):
    """seqkd's table: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...), computed in f32 like
    libtorch does (layers.rs `sinusoidal_positions`)."""
    pos = np.arange(n_positions, dtype=np.float32)[:, None]
    i = np.arange(0, d_model, 2, dtype=np.float32)
    freq = np.exp(i * np.float32(-(math.log(10000.0)) / d_model)).astype(np.float32)
    angles = (pos * freq[None, :]).astype(np.float32)
    return np.stack([np.sin(angles), np.cos(angles)], axis=2).reshape(n_positions, d_model).astype(np.float32)


def load_vocab(path):
    """The id → token list of a `tokenizers` JSON (model vocab plus added tokens), in id order."""
    with open(path, encoding="utf-8") as f:
        tok = json.load(f)
    by_id = {}
    for token, i in tok["model"]["vocab"].items():
        by_id[int(i)] = token
    for added in tok.get("added_tokens", []):
        i = int(added["id"])
        if i in by_id and by_id[i] != added["content"]:
            raise ExportError(f"{path}: id {i} is both {by_id[i]!r} and added token {added['content']!r}")
        by_id[i] = added["content"]
    n = len(by_id)
    if sorted(by_id) != list(range(n)):
        raise ExportError(f"{path}: vocabulary ids are not 0..{n - 1}")
    tokens = [by_id[i] for i in range(n)]
    if len(set(tokens)) != n:
        raise ExportError(f"{path}: duplicate tokens in the vocabulary")
    for token, i in SPECIALS.items():
        if tokens[i] != token:
            raise ExportError(f"{path}: id {i} is {tokens[i]!r}, expected {token!r}")
    return tokens


class Weights:
    """The model's tensors by name (without the `model.` prefix); remembers which were used."""

    def __init__(self, tensors):
        self.t = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        others = [k for k in tensors if not k.startswith(PREFIX)]
        if others:
            raise ExportError(f"tensors outside '{PREFIX}': {others[:5]}")
        self.used = set()

    def __call__(self, name):
        if name not in self.t:
            raise ExportError(f"missing tensor {PREFIX}{name}")
        self.used.add(name)
        return np.ascontiguousarray(self.t[name], dtype=np.float32)

    def has(self, name):
        return name in self.t

    def unused(self):
        return sorted(set(self.t) - self.used)


def set_layer_norm(spec, w, name):
    spec.gamma = w(name + ".weight")
    spec.beta = w(name + ".bias")


def set_linear(spec, w, name, bias=True):
    spec.weight = w(name + ".weight")  # tch Linear: [out, in], like CT2
    if bias:
        spec.bias = w(name + ".bias")


def fuse(spec, w, scope, parts):
    spec.weight = np.concatenate([w(f"{scope}.{p}.weight") for p in parts])
    spec.bias = np.concatenate([w(f"{scope}.{p}.bias") for p in parts])


def set_self_attention(spec, w, scope, norm):
    set_layer_norm(spec.layer_norm, w, norm)
    fuse(spec.linear[0], w, scope, ["q_proj", "k_proj", "v_proj"])
    set_linear(spec.linear[1], w, scope + ".out_proj")


def set_cross_attention(spec, w, scope, norm):
    set_layer_norm(spec.layer_norm, w, norm)
    set_linear(spec.linear[0], w, scope + ".q_proj")
    fuse(spec.linear[1], w, scope, ["k_proj", "v_proj"])
    set_linear(spec.linear[2], w, scope + ".out_proj")


def set_ffn(spec, w, scope, norm):
    set_layer_norm(spec.layer_norm, w, norm)
    set_linear(spec.linear_0, w, scope + ".fc1")
    set_linear(spec.linear_1, w, scope + ".fc2")


def build_spec(model_dir, max_positions):
    import ctranslate2
    from ctranslate2.specs import common_spec, transformer_spec

    with open(os.path.join(model_dir, "config.toml"), "rb") as f:
        config = tomllib.load(f)
    m = config.get("model", {})
    arch = m.get("arch", "transformer")
    if arch != "transformer":
        raise ExportError(
            f"{model_dir}: arch = {arch!r}; only Transformer models can be exported "
            "(CTranslate2 has no Luong-attention LSTM encoder-decoder)"
        )
    d = int(m["d_model"])
    heads = int(m["n_heads"])
    enc_layers, dec_layers = int(m["encoder_layers"]), int(m["decoder_layers"])
    tied = bool(m.get("tied_embeddings", True))
    if d % heads or d % 2:
        raise ExportError(f"d_model {d} must be even and divisible by n_heads {heads}")

    tokens = load_vocab(os.path.join(model_dir, "vocab.json"))
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    pruned = densify(tensors)
    quantized = dequantize(tensors)
    w = Weights(tensors)

    spec = transformer_spec.TransformerSpec.from_config(
        (enc_layers, dec_layers),
        heads,
        pre_norm=True,
        activation=common_spec.Activation.RELU,
    )
    positions = sinusoidal_positions(max_positions, d)

    src_embed = w("src_embed.weight")
    if src_embed.shape != (len(tokens), d):
        raise ExportError(f"src_embed is {src_embed.shape}, expected ({len(tokens)}, {d}) from vocab.json and d_model")
    if tied:
        tgt_embed, out_weight, out_bias = src_embed, src_embed, None
    else:
        tgt_embed = w("tgt_embed.weight")
        out_weight, out_bias = w("out_proj.weight"), w("out_proj.bias")

    enc = spec.encoder
    enc.embeddings[0].weight = src_embed
    enc.scale_embeddings = True  # × sqrt(d_model)
    enc.position_encodings.encodings = positions
    set_layer_norm(enc.layer_norm, w, "encoder_norm")
    for i, layer in enumerate(enc.layer):
        p = f"encoder.{i}"
        set_self_attention(layer.self_attention, w, p + ".self_attn", p + ".self_attn_norm")
        set_ffn(layer.ffn, w, p + ".ffn", p + ".ffn_norm")

    dec = spec.decoder
    dec.embeddings.weight = tgt_embed
    dec.scale_embeddings = True
    dec.position_encodings.encodings = positions
    set_layer_norm(dec.layer_norm, w, "decoder_norm")
    dec.projection.weight = out_weight
    if out_bias is not None:
        dec.projection.bias = out_bias
    for i, layer in enumerate(dec.layer):
        p = f"decoder.{i}"
        set_self_attention(layer.self_attention, w, p + ".self_attn", p + ".self_attn_norm")
        set_cross_attention(layer.attention, w, p + ".cross_attn", p + ".cross_attn_norm")
        set_ffn(layer.ffn, w, p + ".ffn", p + ".ffn_norm")

    unused = w.unused()
    if unused:
        raise ExportError(f"tensors not used by the export (config/model mismatch?): {unused[:8]}")

    spec.config.layer_norm_epsilon = LAYER_NORM_EPS
    spec.config.unk_token = "<unk>"
    spec.config.bos_token = "<s>"
    spec.config.eos_token = "</s>"
    spec.config.decoder_start_token = "<s>"  # decoder input: <s> y1 .. ym
    spec.config.add_source_bos = False
    spec.config.add_source_eos = True  # source: x1 .. xn </s>
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)

    info = {
        "exported_from": os.path.abspath(model_dir),
        "ctranslate2_version": ctranslate2.__version__,
        "model": m,
        "decode": config.get("decode", {}),
        "max_positions": max_positions,
        "vocab_size": len(tokens),
        "pruned_tensors": pruned,
        "int8_tensors": quantized,
    }
    return spec, info


def export(model_dir, output_dir, quantization=None, force=False, max_positions=1024):
    if os.path.exists(output_dir) and not force:
        raise ExportError(f"{output_dir} exists; pass --force to replace it")
    spec, info = build_spec(model_dir, max_positions)
    spec.validate()
    spec.optimize(quantization=quantization)
    if os.path.exists(output_dir):
        shutil.rmtree(output_dir)
    os.makedirs(output_dir)
    spec.save(output_dir)
    info["quantization"] = quantization
    with open(os.path.join(output_dir, "seqkd.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="seqkd model directory (config.toml, vocab.json, model.safetensors)")
    ap.add_argument("output_dir", help="CTranslate2 model directory to write")
    ap.add_argument("--quantization", default=None,
                    help="store weights as int8, int8_float32, int16, float16, ... (default: float32); "
                         "the compute type can also be chosen at load time")
    ap.add_argument("--max-positions", type=int, default=1024,
                    help="rows of the position table = longest source (+</s>) or output (default 1024)")
    ap.add_argument("--force", action="store_true", help="replace output_dir if it exists")
    args = ap.parse_args(argv)
    try:
        info = export(args.model_dir, args.output_dir, args.quantization, args.force, args.max_positions)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    m = info["model"]
    print(
        f"exported {args.model_dir} -> {args.output_dir}: {m['encoder_layers']}+{m['decoder_layers']} layers, "
        f"d_model {m['d_model']}, vocab {info['vocab_size']}, "
        f"{len(info['pruned_tensors'])} pruned tensors densified, {len(info['int8_tensors'])} int8 tensors dequantized",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
