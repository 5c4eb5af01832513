"""PyTorch reference for `seqkd bench`: the same Transformer, the same batch, the same timed work.

It mirrors `crates/nmt/src/bench/speed.rs` (`seqkd bench` runs it as a subprocess and prints seqkd/PyTorch ratios) and the
definition in shared/notes/frameworks.md:

* Model: pre-norm Transformer encoder-decoder, d_model 256, 4 heads, FFN 1024, 3+3 layers, dropout 0.1,
  one shared vocabulary of 8000 with tied embeddings (source, target, output layer), sinusoidal
  positions, `F.scaled_dot_product_attention` - layer for layer what crates/nmt/src/model/ builds.
* Training step (timed): batch of 64 pairs; 23 random subword ids (>= 4) per side, so, as in
  seqkd's `Batch`, source `x1..x23 </s>`, decoder input `<s> y1..y23`, labels `y1..y23 </s>`: every
  tensor is 64 x 24 and there are 64 x 24 = 1536 target tokens. Forward, label-smoothed cross-entropy
  (sum / target tokens), backward, gradient clipping at norm 1.0, Adam (betas 0.9/0.98, eps 1e-9).
  `--warmup` untimed steps, then `--steps` timed ones -> ms/step and target tokens/s.
* Greedy decoding, fixed work (timed): the same 64 x 24 source batch, one encoder pass, then exactly 24
  decoder steps with a hand-written per-layer key/value cache (grown by concatenation, like seqkd's),
  argmax, no early stop, under `torch.inference_mode()` -> ms/batch and target tokens/s (64 x 24).
  `--warmup` untimed batches, then `--steps` timed ones.

Prints one JSON object on stdout. Usage:
    python benches/pytorch_reference.py --threads 2 --steps 20 --warmup 3 [--device cpu|cuda]
"""

import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS = 0, 1, 2
FIRST_REAL_ID = 4  # 0..3 are <pad> <s> </s> <unk>
VOCAB = 8000
D_MODEL, HEADS, D_FF, LAYERS, DROPOUT = 256, 4, 1024, 3, 0.1
BATCH, LEN = 64, 24  # tensor lengths; sentences are LEN - 1 ids plus </s> or <s>
LABEL_SMOOTHING = 0.1
LR = 5e-4  # constant: the schedule does not change the cost of a step
SEED = 1234


def sinusoidal_positions(start, length, d_model, device):
    """Rows start..start+length of the interleaved sin/cos table, [length, d_model]. Like seqkd's
    `sinusoidal_positions`, recomputed at every call (not a cached buffer) so both do the same work."""
    pos = torch.arange(start, start + length, dtype=torch.float32, device=device).unsqueeze(1)
    i = torch.arange(0, d_model, 2, dtype=torch.float32, device=device)
    freq = torch.exp(i * (-math.log(10000.0) / d_model))
    angles = pos * freq.unsqueeze(0)
    return torch.stack([angles.sin(), angles.cos()], 2).view(length, d_model)


class MultiHeadAttention(nn.Module):
    """Separate q/k/v/out projections so cross-attention keys/values can be computed once and cached."""

    def __init__(self, d_model, n_heads, dropout):
        super().__init__()
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.n_heads, self.d_head, self.dropout = n_heads, d_model // n_heads, dropout

    def split_heads(self, x):
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory):
        return self.split_heads(self.k_proj(memory)), self.split_heads(self.v_proj(memory))

    def attend(self, x, k, v, mask, causal):
        b, q_len, _ = x.shape
        q = self.split_heads(self.q_proj(x))
        dropout = self.dropout if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        return self.out_proj(ctx.transpose(1, 2).contiguous().view(b, q_len, self.n_heads * self.d_head))


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, dropout):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = dropout

    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), self.dropout, self.training))


class EncoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(D_MODEL)
        self.self_attn = MultiHeadAttention(D_MODEL, HEADS, DROPOUT)
        self.ffn_norm = nn.LayerNorm(D_MODEL)
        self.ffn = FeedForward(D_MODEL, D_FF, DROPOUT)


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(D_MODEL)
        self.self_attn = MultiHeadAttention(D_MODEL, HEADS, DROPOUT)
        self.cross_attn_norm = nn.LayerNorm(D_MODEL)
        self.cross_attn = MultiHeadAttention(D_MODEL, HEADS, DROPOUT)
        self.ffn_norm = nn.LayerNorm(D_MODEL)
        self.ffn = FeedForward(D_MODEL, D_FF, DROPOUT)


class Transformer(nn.Module):
    """Pre-norm: x + dropout(sublayer(LayerNorm(x))), a final LayerNorm per stack, tied embeddings."""

    def __init__(self):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, D_MODEL)
        nn.init.normal_(self.src_embed.weight, 0.0, D_MODEL**-0.5)
        self.encoder = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.encoder_norm = nn.LayerNorm(D_MODEL)
        self.decoder = nn.ModuleList(DecoderLayer() for _ in range(LAYERS))
        self.decoder_norm = nn.LayerNorm(D_MODEL)

    def embed(self, tokens, start):
        x = self.src_embed(tokens) * math.sqrt(D_MODEL)
        x = x + sinusoidal_positions(start, tokens.shape[1], D_MODEL, tokens.device)
        return F.dropout(x, DROPOUT, self.training)

    def project_out(self, y):
        return y.matmul(self.src_embed.weight.t())  # tied output layer, no bias (as seqkd)

    def encode_t(self, src):
        mask = (src != PAD).unsqueeze(1).unsqueeze(1)  # [b, 1, 1, src_len], True = attend
        x = self.embed(src, 0)
        for layer in self.encoder:
            h = layer.self_attn_norm(x)
            k, v = layer.self_attn.project_kv(h)
            x = x + F.dropout(layer.self_attn.attend(h, k, v, mask, False), DROPOUT, self.training)
            h = layer.ffn_norm(x)
            x = x + F.dropout(layer.ffn(h), DROPOUT, self.training)
        return self.encoder_norm(x), mask

    def forward(self, src, tgt_in):
        memory, mask = self.encode_t(src)
        y = self.embed(tgt_in, 0)
        for layer in self.decoder:
            h = layer.self_attn_norm(y)
            k, v = layer.self_attn.project_kv(h)
            y = y + F.dropout(layer.self_attn.attend(h, k, v, None, True), DROPOUT, self.training)
            h = layer.cross_attn_norm(y)
            k, v = layer.cross_attn.project_kv(memory)
            y = y + F.dropout(layer.cross_attn.attend(h, k, v, mask, False), DROPOUT, self.training)
            h = layer.ffn_norm(y)
            y = y + F.dropout(layer.ffn(h), DROPOUT, self.training)
        return self.project_out(self.decoder_norm(y))

    def encode(self, src):
        """For decoding: (mask, per-layer cross-attention keys/values) and empty self-attention caches."""
        memory, mask = self.encode_t(src)
        n = src.shape[0]
        cross = [layer.cross_attn.project_kv(memory) for layer in self.decoder]
        empty = torch.zeros(n, HEADS, 0, D_MODEL // HEADS, device=src.device)
        cache = [(empty, empty) for _ in self.decoder]
        return (mask, cross), cache

    def step(self, memory, cache, prev, t):
        """One decoder step for tokens prev [n] at position t: log-probabilities [n, vocab]; grows cache."""
        mask, cross = memory
        y = self.embed(prev.unsqueeze(1), t)
        for i, layer in enumerate(self.decoder):
            h = layer.self_attn_norm(y)
            k_new, v_new = layer.self_attn.project_kv(h)
            k = torch.cat([cache[i][0], k_new], 2)
            v = torch.cat([cache[i][1], v_new], 2)
            y = y + layer.self_attn.attend(h, k, v, None, False)
            cache[i] = (k, v)
            h = layer.cross_attn_norm(y)
            y = y + layer.cross_attn.attend(h, cross[i][0], cross[i][1], mask, False)
            h = layer.ffn_norm(y)
            y = y + layer.ffn(h)
        return self.project_out(self.decoder_norm(y)).squeeze(1).log_softmax(-1)


def make_batch(device):
    """src/tgt_in/tgt_out [64, 24] from 23 random ids >= 4 per side (seeded), as seqkd's `Batch::new`."""
    g = torch.Generator().manual_seed(SEED)
    src_ids = torch.randint(FIRST_REAL_ID, VOCAB, (BATCH, LEN - 1), generator=g)
    tgt_ids = torch.randint(FIRST_REAL_ID, VOCAB, (BATCH, LEN - 1), generator=g)
    eos = torch.full((BATCH, 1), EOS, dtype=torch.long)
    bos = torch.full((BATCH, 1), BOS, dtype=torch.long)
    src = torch.cat([src_ids, eos], 1)
    tgt_in = torch.cat([bos, tgt_ids], 1)
    tgt_out = torch.cat([tgt_ids, eos], 1)
    return src.to(device), tgt_in.to(device), tgt_out.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(device, steps, warmup, bf16=False):
    torch.manual_seed(SEED)
    model = Transformer().to(device).train()
    # PyTorch's default Adam implementation: per-parameter loop on CPU (like seqkd's Optimizer),
    # `foreach` multi-tensor kernels on CUDA (seqkd has no equivalent).
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-9)
    src, tgt_in, tgt_out = make_batch(device)
    n_tokens = int((tgt_out != PAD).sum())

    def one_step():
        # set_to_none=False: zero the gradients in place, as seqkd's Optimizer::zero_grad does.
        opt.zero_grad(set_to_none=False)
        # bf16: the forward pass under CPU autocast, the loss in f32 (seqkd's precision = "bf16").
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt_in)
        loss = F.cross_entropy(
            logits.float().view(-1, VOCAB), tgt_out.view(-1), ignore_index=PAD,
            label_smoothing=LABEL_SMOOTHING, reduction="sum",
        )
        (loss / n_tokens).backward()
        # seqkd computes the same global norm but only rescales when it exceeds 1.0.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(warmup):
        one_step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    sync(device)
    secs = time.perf_counter() - start
    # Where a step's time goes, by phase (stderr; mirrors seqkd bench's breakdown).
    phases = [0.0] * 4
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.float().view(-1, VOCAB), tgt_out.view(-1), ignore_index=PAD,
                               label_smoothing=LABEL_SMOOTHING, reduction="sum")
        t1 = time.perf_counter()
        (loss / n_tokens).backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for i, d in enumerate([t1 - t0, t2 - t1, t3 - t2, t4 - t3]):
            phases[i] += 1000 * d / steps
    print("pytorch reference: training step phases%s (ms): forward+loss %.1f, backward %.1f, clip %.1f, optimizer %.1f"
          % (((", bf16" if bf16 else ""),) + tuple(phases)), file=sys.stderr)
    return model, secs / steps, n_tokens


def bench_greedy(model, device, steps, warmup):
    model.eval()
    src, _, _ = make_batch(device)
    n = src.shape[0]

    def one_batch():
        memory, cache = model.encode(src)
        prev = torch.full((n,), BOS, dtype=torch.long, device=device)
        for t in range(LEN):
            logp = model.step(memory, cache, prev, t)
            prev = logp.argmax(-1)
        return prev

    with torch.inference_mode():
        for _ in range(warmup):
            one_batch()
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            one_batch()
        sync(device)
        secs = time.perf_counter() - start
    return secs / steps, n * LEN


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--threads and --steps must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available to this torch {torch.__version__}")

    model, train_secs, train_tokens = bench_train(device, args.steps, args.warmup)
    greedy_secs, greedy_tokens = bench_greedy(model, device, args.steps, args.warmup)
    bf16 = None
    if device.type == "cpu":
        _, bf16_secs, _ = bench_train(device, args.steps, args.warmup, bf16=True)
        bf16 = {"train_bf16_ms_per_step": 1000.0 * bf16_secs,
                "train_bf16_tgt_tokens_per_s": train_tokens / bf16_secs}
    out = {
        "train_ms_per_step": 1000.0 * train_secs,
        "train_tgt_tokens_per_s": train_tokens / train_secs,
        "greedy_ms_per_batch": 1000.0 * greedy_secs,
        "greedy_tgt_tokens_per_s": greedy_tokens / greedy_secs,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "steps": args.steps,
        "warmup": args.warmup,
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **(bf16 or {}),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
