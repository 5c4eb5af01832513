"""A numpy re-implementation of seqkd's Transformer forward pass (crates/nmt/src/model/
{transformer,layers}.rs), independent of CTranslate2: the yardstick test_export.py checks the
exported CT2 model against. Slow (no caching); for tests and small checks only."""

import math

import numpy as np

from export import densify, read_safetensors, sinusoidal_positions

EOS, BOS = 2, 1


class Reference:
    def __init__(self, safetensors_path, d_model, n_heads, tied=True, eps=1e-5):
        t = read_safetensors(safetensors_path)
        densify(t)
        self.w = {k[len("model."):]: v.astype(np.float32) for k, v in t.items()}
        self.d, self.h, self.eps = d_model, n_heads, eps
        self.enc_layers = len({k.split(".")[1] for k in self.w if k.startswith("encoder.")})
        self.dec_layers = len({k.split(".")[1] for k in self.w if k.startswith("decoder.")})
        self.src = self.w["src_embed.weight"]
        self.tgt = self.src if tied else self.w["tgt_embed.weight"]
        self.tied = tied
        self.pe = sinusoidal_positions(1024, d_model)

    def _ln(self, x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def _lin(self, x, p):
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def _attn(self, x, mem, p, causal):
        dh = self.d // self.h
        q, k, v = (self._lin(x if n == "q" else mem, f"{p}.{n}_proj") for n in "qkv")
        tq, tk = q.shape[0], k.shape[0]
        q = q.reshape(tq, self.h, dh).transpose(1, 0, 2)
        k = k.reshape(tk, self.h, dh).transpose(1, 0, 2)
        v = v.reshape(tk, self.h, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        if causal:
            s = s + np.triu(np.full((tq, tk), -np.inf, np.float32), 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = s / s.sum(-1, keepdims=True)
        return self._lin((a @ v).transpose(1, 0, 2).reshape(tq, self.d), p + ".out_proj")

    def _ffn(self, x, p):
        return self._lin(np.maximum(self._lin(x, p + ".fc1"), 0), p + ".fc2")

    def encode(self, src_ids):
        """Source ids (without </s>, which is appended as in batch.rs) → memory [len+1, d]."""
        ids = list(src_ids) + [EOS]
        x = self.src[ids] * math.sqrt(self.d) + self.pe[: len(ids)]
        for i in range(self.enc_layers):
            p = f"encoder.{i}"
            h = self._ln(x, p + ".self_attn_norm")
            x = x + self._attn(h, h, p + ".self_attn", False)
            x = x + self._ffn(self._ln(x, p + ".ffn_norm"), p + ".ffn")
        return self._ln(x, "encoder_norm")

    def log_probs(self, memory, tgt_in):
        """Decoder input `<s> y1 .. ym` → log-probabilities [m+1, vocab] of the next tokens."""
        y = self.tgt[list(tgt_in)] * math.sqrt(self.d) + self.pe[: len(tgt_in)]
        for i in range(self.dec_layers):
            p = f"decoder.{i}"
            h = self._ln(y, p + ".self_attn_norm")
            y = y + self._attn(h, h, p + ".self_attn", True)
            y = y + self._attn(self._ln(y, p + ".cross_attn_norm"), memory, p + ".cross_attn", False)
            y = y + self._ffn(self._ln(y, p + ".ffn_norm"), p + ".ffn")
        y = self._ln(y, "decoder_norm")
        z = y @ self.src.T if self.tied else self._lin(y, "out_proj")
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    def score(self, src_ids, tgt_ids):
        """Log-probability of each of `y1 .. ym </s>`."""
        lp = self.log_probs(self.encode(src_ids), [BOS] + list(tgt_ids))
        return lp[np.arange(len(tgt_ids) + 1), list(tgt_ids) + [EOS]]

    def greedy(self, src_ids, max_len):
        """seqkd's greedy search (decode/greedy.rs): ids without <s>/</s>."""
        memory = self.encode(src_ids)
        out = [BOS]
        for _ in range(max_len):
            tok = int(np.argmax(self.log_probs(memory, out)[-1]))
            if tok == EOS:
                break
            out.append(tok)
        return out[1:]
