#!/usr/bin/env python3
"""This machine's matrix-product peak, and the fraction of it seqkd's training and decoding reach
(issue 21, "the physical limit").

1. Peak: the best GFLOP/s of square f32 and bf16 matrix products (libtorch's oneDNN/MKL kernels,
   the fastest this CPU offers) on --threads threads, sizes 512..4096.
2. Training: `seqkd bench --json` (its own Transformer, the step `seqkd train` runs): model FLOPs
   per step = 3 × the forward pass's matrix-product FLOPs (forward, and backward's two products per
   forward product), counted from the model's shape.
3. Decoding: `seqkd translate --engine native` greedy, and `seqkd distill topk` (teacher-forced),
   over --sentences lines of --input with --model, wall time of the whole command; FLOPs of the
   encoder, the decoder rows actually run and the output layer, counted per subword (greedy's
   output lengths from re-encoding its text, which may segment a few words differently).

FLOPs count multiply-adds as 2 and include attention's score and context products; embeddings,
softmax and layer norms are left out (a few % at these sizes). Run:

    python3 scripts/gemm-peak.py --model runs/teacher-bench --input ../shared/data/multi30k/train.en \\
        --tgt ../shared/data/multi30k/train.de --bench-json bench.json
"""
import argparse, json, os, subprocess, sys, tempfile, time, tomllib


def gemm_peak(dtype, threads):
    import torch

    torch.set_num_threads(threads)
    best = (0.0, 0)
    for n in (512, 1024, 2048, 3072, 4096):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)  # warm-up
        for _ in range(3):  # the best of 3 rounds of at least half a second each
            reps, start = 0, time.perf_counter()
            while reps == 0 or time.perf_counter() - start < 0.5:
                torch.mm(a, b)
                reps += 1
            best = max(best, (2 * n**3 * reps / (time.perf_counter() - start) / 1e9, n))
    return best


def transformer_flops(cfg, vocab, src_len, tgt_len, rows=1):
    """Matrix-product FLOPs of one forward pass of a pair (teacher-forced: every target position),
    with `rows` decoder rows per target position (a beam of K: K rows, a lower bound of its work)."""
    d, ff = cfg["d_model"], cfg["d_ff"]
    enc, dec = cfg["encoder_layers"], cfg["decoder_layers"]
    per_src = enc * (2 * (4 * d * d + 2 * d * ff) + 4 * src_len * d) + dec * 2 * (2 * d * d)
    per_tgt = dec * (2 * (6 * d * d + 2 * d * ff) + 4 * d * (tgt_len + 1) / 2 + 4 * d * src_len) + 2 * d * vocab
    return src_len * per_src + rows * tgt_len * per_tgt


def subword_lengths(seqkd, vocab, path):
    out = subprocess.run([seqkd, "vocab", "encode", "--vocab", vocab], stdin=open(path), capture_output=True,
                         text=True, check=True).stdout
    return [len(line.split()) for line in out.splitlines()]


def output_vocab(weights):
    """Rows of the output layer (the target embedding when tied), from the safetensors header."""
    with open(weights, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    for name in ("model.out_proj.weight", "model.tgt_embed.weight", "model.src_embed.weight"):
        if name in header:
            return header[name]["shape"][0]
    sys.exit(f"{weights}: no output layer found")


def timed(cmd, stdout=subprocess.DEVNULL):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=stdout, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="model directory for the decoding rows (a Transformer)")
    ap.add_argument("--input", help="source sentences for decoding")
    ap.add_argument("--tgt", help="their targets, for the teacher-forced top-k row")
    ap.add_argument("--sentences", type=int, default=10000)
    ap.add_argument("--bench-json", help="`seqkd bench --json` output, for the training row")
    ap.add_argument("--seqkd", default="target/release/seqkd")
    ap.add_argument("--beam", type=int, default=0,
                    help="also the Seq-KD pass with this beam on both engines (FLOPs: beam rows per output "
                         "position of the chosen translation, a lower bound: a beam runs past its best)")
    args = ap.parse_args()

    import torch

    f32, f32_n = gemm_peak(torch.float32, args.threads)
    bf16, bf16_n = gemm_peak(torch.bfloat16, args.threads)
    print(f"GEMM peak, {args.threads} threads (torch {torch.__version__}): f32 {f32:.0f} GFLOP/s (n={f32_n}), "
          f"bf16 {bf16:.0f} GFLOP/s (n={bf16_n}), bf16/f32 {bf16 / f32:.2f}x\n")
    print("| workload | GFLOP/s | of the f32 peak |\n|---|---:|---:|")
    row = lambda what, g: print(f"| {what} | {g:.1f} | {100 * g / f32:.0f}% |")

    if args.bench_json:
        b = json.load(open(args.bench_json))
        # seqkd bench's model (src/cli/bench.rs): d256, FFN 1024, 3+3, vocabulary 8000, pairs 24 × 24.
        cfg = dict(d_model=256, d_ff=1024, encoder_layers=3, decoder_layers=3)
        pairs, length = 64, 24
        step = 3 * pairs * transformer_flops(cfg, 8000, length, length)
        row("seqkd train step (seqkd bench), f32", step / (b["train"]["ms_per_step"] / 1e3) / 1e9)
        if "pytorch" in b:
            row("PyTorch train step (same model), f32", step / (b["pytorch"]["train_ms_per_step"] / 1e3) / 1e9)

    if args.model and args.input:
        model = tomllib.load(open(os.path.join(args.model, "config.toml"), "rb"))["model"]
        vocab_file = os.path.join(args.model, "vocab.json")
        vocab = output_vocab(os.path.join(args.model, "model.safetensors"))
        with tempfile.TemporaryDirectory() as work:
            src = os.path.join(work, "src.txt")
            with open(args.input) as f, open(src, "w") as o:
                o.writelines(line for _, line in zip(range(args.sentences), f))
            src_lens = subword_lengths(args.seqkd, vocab_file, src)
            hyp = os.path.join(work, "hyp.txt")
            secs = timed([args.seqkd, "translate", "--model", args.model, "--input", src, "--engine", "native",
                          "--threads", str(args.threads), "--beam", "1"], stdout=open(hyp, "w"))
            hyp_lens = subword_lengths(args.seqkd, vocab_file, hyp)
            flops = sum(transformer_flops(model, vocab, s + 1, t + 1) for s, t in zip(src_lens, hyp_lens))
            row(f"native greedy translate, {len(src_lens)} sentences, f32", flops / secs / 1e9)
            if args.beam:
                for engine in ("native", "torch"):
                    out = os.path.join(work, f"{engine}.seq-kd")
                    secs = timed([args.seqkd, "distill", "seq-kd", "--teacher", args.model, "--src", src, "--out", out,
                                  "--beam", str(args.beam), "--engine", engine, "--threads", str(args.threads),
                                  "--quiet"])
                    out_lens = subword_lengths(args.seqkd, vocab_file, out)
                    flops = sum(transformer_flops(model, vocab, s + 1, t + 1, args.beam)
                                for s, t in zip(src_lens, out_lens))
                    row(f"{engine} Seq-KD pass (beam {args.beam}), {len(src_lens)} sentences, f32, at least",
                        flops / secs / 1e9)
            if args.tgt:
                tgt = os.path.join(work, "tgt.txt")
                with open(args.tgt) as f, open(tgt, "w") as o:
                    o.writelines(line for _, line in zip(range(args.sentences), f))
                tgt_lens = subword_lengths(args.seqkd, vocab_file, tgt)
                flops = sum(transformer_flops(model, vocab, s + 1, t + 1) for s, t in zip(src_lens, tgt_lens))
                for engine in ("native", "torch"):
                    secs = timed([args.seqkd, "distill", "topk", "--teacher", args.model, "--src", src, "--tgt", tgt,
                                  "--out", os.path.join(work, f"{engine}.topk"), "--engine", engine,
                                  "--threads", str(args.threads), "--quiet"])
                    row(f"{engine} teacher-forced top-k (k 8), {len(src_lens)} sentences, f32", flops / secs / 1e9)


main()
