"""PyTorch reference for seqkd's LSTM (crates/nmt/src/model/lstm.rs): the same model written
independently, parameter for parameter, to check seqkd's loss, gradients and training curve.

The model (Luong et al. 2015; Kim & Rush 2016), with seqkd's parameter names:

* `src_embed.weight`, `tgt_embed.weight` [V, E]; encoder: stacked LSTM `encoder.lstm.*_l{i}`
  (PyTorch's `nn.LSTM` names and gate order i, f, g, o), optionally bidirectional with
  `*_l{i}_reverse` and hidden/2 units per direction, outputs and final states `[fwd; bwd]`.
  Here every cell is written out by hand (no `nn.LSTM`, no packing): a padded position leaves the
  state untouched, so each sentence's final state is the one at its own last token.
* Decoder initial state: the encoder's final (h, c) per layer, or with the bridge
  `h0 = tanh(W_h h + b_h)`, `c0 = W_c c + b_c` (`decoder.bridge.{h,c}_l{i}`); `h~_0 = 0`.
* Step: input feeding `[emb(y_{t-1}); h~_{t-1}]` into `decoder.lstm.*_l{i}`, general attention
  `score = h_t^T W_a h_s` (`decoder.attn_score.weight`), masked softmax over real source positions,
  `h~_t = tanh(W_c [c_t; h_t])` (`decoder.attn_out.weight`), dropout, logits `W_out h~_t + b`
  (`out_proj.weight`, or `tgt_embed.weight` when tied; `out_proj.bias`).
* Loss: label-smoothed cross-entropy summed over non-pad targets, divided by the target tokens;
  Adam (torch.optim.Adam with seqkd's betas and eps) after `clip_grad_norm_`.

`--write-golden FILE` builds two tiny models (the paper's unidirectional one with tied output
layer; a bidirectional one with the bridge, untied), random weights and batches laid out as seqkd's
`Batch` does (source `x </s>`, decoder input `<s> y`, labels `y </s>`, right-padded with 0), and
writes the weights, the batches, PyTorch's loss and gradients on the first batch and its loss over
`--updates` Adam updates to one safetensors file. `crates/nmt/tests/lstm_reference.rs` loads the
same weights into seqkd and checks its loss, gradients and curve against them.

    .venv/bin/pip install safetensors   # once
    .venv/bin/python benches/lstm_reference.py --write-golden crates/nmt/tests/golden/lstm_reference.safetensors
"""

import argparse
import json

import torch
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2
FIRST_REAL_ID = 4
INIT = 0.1  # uniform [-0.1, 0.1], as seqkd initialises every parameter

CONFIGS = {
    # name: (vocab, embed, hidden, layers, tied, bidirectional, bridge)
    "paper": dict(vocab=23, embed_dim=8, hidden=8, layers=2, tied_embeddings=True, bidirectional=False, bridge=False),
    "brnn_bridge": dict(vocab=23, embed_dim=6, hidden=8, layers=2, tied_embeddings=False, bidirectional=True, bridge=True),
}
LABEL_SMOOTHING = 0.1
LR, BETAS, EPS, CLIP = 3e-3, (0.9, 0.98), 1e-9, 1.0
BATCHES, PAIRS_PER_BATCH = 4, 6


def param_shapes(c):
    """seqkd's parameter names and shapes for config `c`."""
    v, e, h, n = c["vocab"], c["embed_dim"], c["hidden"], c["layers"]
    dirs = ["", "_reverse"] if c["bidirectional"] else [""]
    u = h // len(dirs)
    shapes = {"src_embed.weight": [v, e], "tgt_embed.weight": [v, e]}
    for i in range(n):
        for d in dirs:
            inp = e if i == 0 else h
            shapes[f"encoder.lstm.weight_ih_l{i}{d}"] = [4 * u, inp]
            shapes[f"encoder.lstm.weight_hh_l{i}{d}"] = [4 * u, u]
            shapes[f"encoder.lstm.bias_ih_l{i}{d}"] = [4 * u]
            shapes[f"encoder.lstm.bias_hh_l{i}{d}"] = [4 * u]
        inp = e + h if i == 0 else h
        shapes[f"decoder.lstm.weight_ih_l{i}"] = [4 * h, inp]
        shapes[f"decoder.lstm.weight_hh_l{i}"] = [4 * h, h]
        shapes[f"decoder.lstm.bias_ih_l{i}"] = [4 * h]
        shapes[f"decoder.lstm.bias_hh_l{i}"] = [4 * h]
        if c["bridge"]:
            for s in "hc":
                shapes[f"decoder.bridge.{s}_l{i}.weight"] = [h, h]
                shapes[f"decoder.bridge.{s}_l{i}.bias"] = [h]
    shapes["decoder.attn_score.weight"] = [h, h]
    shapes["decoder.attn_out.weight"] = [h, 2 * h]
    if not c["tied_embeddings"]:
        shapes["out_proj.weight"] = [v, h]
    shapes["out_proj.bias"] = [v]
    return shapes


def cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step, written out: gates i, f, g, o."""
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def encode(p, c, src, dropout, train):
    """src [B, S] -> outputs [B, S, H] (zero at pads), final h and c: lists over layers of [B, H]."""
    b, s_len = src.shape
    real = (src != PAD).float()  # [B, S]
    dirs = ["", "_reverse"] if c["bidirectional"] else [""]
    u = c["hidden"] // len(dirs)
    x = p["src_embed.weight"][src]  # [B, S, E]
    hs, cs = [], []
    for i in range(c["layers"]):
        if i > 0:
            x = F.dropout(x, dropout, train)
        outs, finals_h, finals_c = [], [], []
        for d in dirs:
            w = [p[f"encoder.lstm.{k}_l{i}{d}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h = x.new_zeros(b, u)
            cc = x.new_zeros(b, u)
            out = [None] * s_len
            times = range(s_len) if d == "" else reversed(range(s_len))
            for t in times:
                m = real[:, t : t + 1]
                h_new, c_new = cell(x[:, t], h, cc, *w)
                h = m * h_new + (1 - m) * h
                cc = m * c_new + (1 - m) * cc
                out[t] = h * m
            outs.append(torch.stack(out, 1))
            finals_h.append(h)
            finals_c.append(cc)
        x = torch.cat(outs, -1)
        hs.append(torch.cat(finals_h, -1))
        cs.append(torch.cat(finals_c, -1))
    return x, hs, cs


def logits(p, c, src, tgt_in, dropout=0.0, train=False):
    enc, hs, cs = encode(p, c, src, dropout, train)
    pad = src == PAD  # [B, S]
    if c["bridge"]:
        hs = [torch.tanh(F.linear(h, p[f"decoder.bridge.h_l{i}.weight"], p[f"decoder.bridge.h_l{i}.bias"])) for i, h in enumerate(hs)]
        cs = [F.linear(x, p[f"decoder.bridge.c_l{i}.weight"], p[f"decoder.bridge.c_l{i}.bias"]) for i, x in enumerate(cs)]
    keys = enc @ p["decoder.attn_score.weight"].T  # [B, S, H]: W_a h_s
    h_tilde = enc.new_zeros(src.shape[0], c["hidden"])
    emb = p["tgt_embed.weight"][tgt_in]  # [B, T, E]
    outs = []
    for t in range(tgt_in.shape[1]):
        x = torch.cat([emb[:, t], h_tilde], -1)
        for i in range(c["layers"]):
            if i > 0:
                x = F.dropout(x, dropout, train)
            w = [p[f"decoder.lstm.{k}_l{i}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            hs[i], cs[i] = cell(x, hs[i], cs[i], *w)
            x = hs[i]
        scores = (keys @ x.unsqueeze(2)).squeeze(2).masked_fill(pad, float("-inf"))
        a = torch.softmax(scores, -1)
        ctx = (a.unsqueeze(1) @ enc).squeeze(1)
        h_tilde = F.dropout(torch.tanh(torch.cat([ctx, x], -1) @ p["decoder.attn_out.weight"].T), dropout, train)
        outs.append(h_tilde)
    w_out = p["tgt_embed.weight"] if c["tied_embeddings"] else p["out_proj.weight"]
    return torch.stack(outs, 1) @ w_out.T + p["out_proj.bias"]


def loss_of(p, c, batch):
    src, tgt_in, tgt_out = batch
    z = logits(p, c, src, tgt_in)
    total = F.cross_entropy(z.reshape(-1, c["vocab"]), tgt_out.reshape(-1), ignore_index=PAD,
                            reduction="sum", label_smoothing=LABEL_SMOOTHING)
    return total / (tgt_out != PAD).sum()


def pad(rows):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.int64)


def make_batch(gen, vocab):
    """Pairs of random lengths 1..7 as seqkd's `Batch` lays them out."""
    def sentence():
        n = int(torch.randint(1, 8, (1,), generator=gen))
        return torch.randint(FIRST_REAL_ID, vocab, (n,), generator=gen).tolist()

    pairs = [(sentence(), sentence()) for _ in range(PAIRS_PER_BATCH)]
    return (pad([s + [EOS] for s, _ in pairs]), pad([[BOS] + t for _, t in pairs]), pad([t + [EOS] for _, t in pairs]))


def golden(updates):
    out, meta = {}, {"label_smoothing": LABEL_SMOOTHING, "lr": LR, "betas": BETAS, "eps": EPS, "clip_norm": CLIP,
                     "updates": updates, "batches": BATCHES, "configs": CONFIGS}
    for name, c in CONFIGS.items():
        gen = torch.Generator().manual_seed(1234)
        params = {k: (torch.rand(shape, generator=gen) * 2 * INIT - INIT).requires_grad_()
                  for k, shape in param_shapes(c).items()}
        batches = [make_batch(gen, c["vocab"]) for _ in range(BATCHES)]
        for k, v in params.items():
            out[f"{name}.weight.{k}"] = v.detach().clone()
        for j, (src, tgt_in, tgt_out) in enumerate(batches):
            out[f"{name}.batch{j}.src"], out[f"{name}.batch{j}.tgt_in"], out[f"{name}.batch{j}.tgt_out"] = src, tgt_in, tgt_out
        loss = loss_of(params, c, batches[0])
        loss.backward()
        out[f"{name}.loss"] = loss.detach().reshape(1)
        for k, v in params.items():
            out[f"{name}.grad.{k}"] = v.grad.detach().clone()
            v.grad = None
        opt = torch.optim.Adam(params.values(), lr=LR, betas=BETAS, eps=EPS)
        curve = []
        for step in range(updates):
            opt.zero_grad()
            loss = loss_of(params, c, batches[step % BATCHES])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params.values(), CLIP)
            opt.step()
            curve.append(loss.item())
        out[f"{name}.curve"] = torch.tensor(curve, dtype=torch.float64)
        print(f"{name}: first-batch loss {out[f'{name}.loss'].item():.6f}; curve {curve[0]:.4f} -> {curve[-1]:.4f}")
    return out, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-golden", required=True, metavar="FILE")
    ap.add_argument("--updates", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    tensors, meta = golden(args.updates)
    save_file({k: v.contiguous() for k, v in tensors.items()}, args.write_golden, metadata={"about": json.dumps(meta)})


if __name__ == "__main__":
    main()
