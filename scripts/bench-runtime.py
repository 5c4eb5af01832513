#!/usr/bin/env python3
"""Decoding speed of one seqkd model, side by side on this machine: seqkd's libtorch engine, seqkd's
native engine (f32 and int8) and CTranslate2 (float32 and int8) on the same exported model.

    bash scripts/ct2/venv.sh && cargo build --release
    .venv-ct2/bin/python scripts/bench-runtime.py --model runs/X/models/student --threads 2 --out /tmp/bench

Configurations, run one after the other (never two at once), each --repeats times (the fastest
repeat counts; all are reported), the repeats interleaved so that a change in the machine's load
hits all engines alike:

    engines   torch-f32    seqkd translate --engine torch          (the model dir)
              native-f32   seqkd translate --engine native         (the model dir)
              native-int8  seqkd translate --engine native         (`seqkd quantize` of the model dir)
              ct2-f32      scripts/ct2/translate.py --compute-type float32   (export.py, float32)
              ct2-int8     scripts/ct2/translate.py --compute-type int8      (export.py --quantization int8)
    modes     greedy/b64   beam 1, batches of up to 64 sentences
              beam5/b64    beam 5, batches of up to 64 sentences
              greedy/1     beam 1, one sentence at a time
              beam5/1      beam 5, one sentence at a time

Batches of 64 are seqkd's `--max-sentences 64 --batch-tokens 100000` (the token budget never binds:
sentences sorted by source length, longest first, cut every 64) and translate.py's
`--batch-size 64 --batching sorted` (the same cut). CTranslate2 takes one maximum output length
per batch, so there a batch's sentences all get the limit of its longest one (seqkd: each its own,
ceil(max_len_a · src_len) + max_len_b); outputs differ only for sentences that reach their limit.
One at a time is `--max-sentences 1` and `--one-by-one` (exact limits on both sides).

Metrics: source words/s = whitespace words of the input / seconds of translation, and target
tokens/s = subword tokens of the output (re-encoded with the model's vocab.json, no specials) /
the same seconds. seqkd's seconds are those of its stderr line `translated N sentences in X.XXs (Y
source words/s)`: translation including the input's subword encoding, model load excluded.
CTranslate2's are translate.py's `seconds`: translation only, subword encoding excluded (it is
reported as encode_seconds in results.json), which if anything favours CTranslate2.

Also: BLEU of every output against --ref (sacrebleu, default tokenization), lines identical between
engines in the same mode, and the targets of the issue: native int8 ≥ 1.0× CTranslate2 int8 and
native f32 ≥ 1.0× CTranslate2 float32 in words/s, for batches of 64 and for one sentence at a time.

--out DIR (default: a new temporary directory) receives results.json, results.md, input.txt (the
sentences translated), ref.txt, out/<engine>.<mode>.txt (the translations of the last repeat),
logs/ and the model copies ct2-float32/, ct2-int8/, seqkd-int8/.
"""

import argparse
import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CT2_DIR = os.path.join(REPO, "scripts", "ct2")

ENGINES = ["torch-f32", "native-f32", "native-int8", "ct2-f32", "ct2-int8"]
MODES = {  # name: (beam, batch of up to 64 sentences?)
    "greedy/b64": (1, True),
    "beam5/b64": (5, True),
    "greedy/1": (1, False),
    "beam5/1": (5, False),
}
BATCH = 64
# The CTranslate2 engine compared with each native one (same precision), and libtorch's.
CT2_PEER = {"native-f32": "ct2-f32", "native-int8": "ct2-int8"}
TORCH_PEER = {"native-f32": "torch-f32", "native-int8": "torch-f32"}
# Pairs of engines whose outputs are compared line by line (in each mode).
AGREEMENT = [
    ("native-f32", "torch-f32"),
    ("native-int8", "native-f32"),
    ("ct2-f32", "native-f32"),
    ("ct2-int8", "native-int8"),
]
SEQKD_LINE = re.compile(r"translated (\d+) sentences in ([0-9.]+)s \(([0-9.]+) source words/s\)")


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def run(cmd, log_path, stdout_path=None, env=None):
    """Runs cmd, stdout to stdout_path (or captured), stderr captured; both logged. Returns (stdout, stderr)."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
    out_f = open(stdout_path, "w", encoding="utf-8") if stdout_path else subprocess.PIPE
    try:
        p = subprocess.run(cmd, stdout=out_f, stderr=subprocess.PIPE, text=True, env=env)
    finally:
        if stdout_path:
            out_f.close()
    stdout = p.stdout if not stdout_path else ""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(stdout + p.stderr + f"[exit {p.returncode}]\n")
    if p.returncode != 0:
        sys.exit(f"bench-runtime: command failed (exit {p.returncode}), see {log_path}:\n  {' '.join(cmd)}\n"
                 + p.stderr[-2000:])
    return stdout, p.stderr


def seqkd_seconds(stderr, words):
    """Seconds of seqkd's `translated ... in X.XXs (Y source words/s)` line. The line rounds the
    seconds to 0.01 s and words/s to 1; words / (words/s) is used where that is more precise."""
    m = SEQKD_LINE.search(stderr)
    if not m:
        sys.exit(f"bench-runtime: no 'translated N sentences in Xs' line in seqkd's stderr:\n{stderr[-2000:]}")
    secs, wps = float(m.group(2)), float(m.group(3))
    if wps > 0 and words > 0 and 0.5 / wps < 0.005 / max(secs, 1e-9):
        return words / wps
    return secs


def config_name(engine, mode):
    return f"{engine} {mode}"


def file_name(engine, mode):
    return f"{engine}.{mode.replace('/', '-')}.txt"


def selected(patterns, engine, mode):
    if not patterns:
        return True
    names = [config_name(engine, mode), f"{engine}/{mode}"]
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


def environment(args):
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        env["cpu"] = names[0] if names else None
    except OSError:
        env["cpu"] = None
    try:
        env["loadavg_start"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        import ctranslate2
        env["ctranslate2"] = ctranslate2.__version__
    except ImportError:
        env["ctranslate2"] = None
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        env["git"] = rev + ("-dirty" if dirty else "")
    except OSError:
        env["git"] = None
    st = os.stat(args.seqkd)
    env["seqkd"] = {"path": os.path.abspath(args.seqkd), "mtime": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                            time.localtime(st.st_mtime))}
    return env


def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def main(argv=None):
    data = os.environ.get("SEQKD_DATA", os.path.join(REPO, "..", "shared", "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="seqkd model directory (a Transformer: CTranslate2 has no LSTM)")
    ap.add_argument("--input", default=os.path.join(data, "multi30k", "test2016.en"),
                    help="source sentences, one a line (default: $SEQKD_DATA/multi30k/test2016.en, "
                         "SEQKD_DATA defaulting to ../shared/data next to the repo)")
    ap.add_argument("--ref", default=None, help="reference translations for BLEU (default: the input's .de "
                                                 "twin if it exists; 'none' to skip)")
    ap.add_argument("--sentences", type=int, default=0, help="translate the first N lines only (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration; the fastest counts")
    ap.add_argument("--out", default=None, help="output directory (default: a new temporary directory)")
    ap.add_argument("--seqkd", default=os.path.join(REPO, "target", "release", "seqkd"))
    ap.add_argument("--configs", default="",
                    help="comma-separated glob patterns over '<engine> <mode>' or '<engine>/<mode>', e.g. "
                         f"'native-*/greedy/*,ct2-*/greedy/*' (engines {', '.join(ENGINES)}; "
                         f"modes {', '.join(MODES)}); default: all")
    args = ap.parse_args(argv)

    import sacrebleu
    from tokenizers import Tokenizer

    if args.repeats < 1 or args.threads < 1 or args.sentences < 0:
        ap.error("--repeats and --threads must be >= 1, --sentences >= 0")
    if not os.access(args.seqkd, os.X_OK):
        ap.error(f"{args.seqkd} is not an executable (cargo build --release?)")
    patterns = [p.strip() for p in args.configs.split(",") if p.strip()]
    configs = [(e, m) for m in MODES for e in ENGINES if selected(patterns, e, m)]
    if not configs:
        ap.error(f"--configs {args.configs!r} selects nothing")
    engines = {e for e, _ in configs}

    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="bench-runtime-"))
    os.makedirs(os.path.join(out, "out"), exist_ok=True)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    env_info = environment(args)
    load = env_info.get("loadavg_start", [0])[0]
    if load > 0.5:
        print(f"bench-runtime: note: load average {load:.2f} at the start: other processes may disturb the timings",
              file=sys.stderr)

    # The sentences (and references) translated, in files every engine reads.
    lines = read_lines(args.input)
    if args.sentences:
        lines = lines[: args.sentences]
    input_path = os.path.join(out, "input.txt")
    write_lines(input_path, lines)
    ref_path = args.ref
    if ref_path is None:
        twin = os.path.splitext(args.input)[0] + ".de"
        ref_path = twin if twin != args.input and os.path.exists(twin) else None
    refs = None
    if ref_path and ref_path != "none":
        refs = read_lines(ref_path)[: len(lines)]
        if len(refs) != len(lines):
            sys.exit(f"bench-runtime: {ref_path} has {len(refs)} lines, the input {len(lines)}")
        write_lines(os.path.join(out, "ref.txt"), refs)
    words = sum(len(line.split()) for line in lines)

    # Model copies: int8 seqkd, CTranslate2 float32 and int8.
    model = os.path.abspath(args.model)
    vocab = os.path.join(model, "vocab.json")
    setup_log = os.path.join(out, "logs", "setup.log")
    models = {"torch-f32": model, "native-f32": model}
    if "native-int8" in engines:
        q = os.path.join(out, "seqkd-int8")
        shutil.rmtree(q, ignore_errors=True)
        run([args.seqkd, "quantize", "--model", model, "--out", q], setup_log)
        models["native-int8"] = q
    for engine, quant in [("ct2-f32", None), ("ct2-int8", "int8")]:
        if engine in engines:
            d = os.path.join(out, "ct2-int8" if quant else "ct2-float32")
            cmd = [sys.executable, os.path.join(CT2_DIR, "export.py"), model, d, "--force"]
            if quant:
                cmd += ["--quantization", quant]
            run(cmd, setup_log)
            models[engine] = d
    print(f"bench-runtime: {len(lines)} sentences, {words} words, {len(configs)} configurations × "
          f"{args.repeats} repeats, {args.threads} threads; output in {out}", file=sys.stderr)

    # Thread settings for every child (the engines' own thread flags are passed too).
    child_env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                     RAYON_NUM_THREADS=str(args.threads))
    results = {config_name(e, m): {"engine": e, "mode": m, "seconds": [], "output_sha256": []} for e, m in configs}
    for rep in range(args.repeats):
        for engine, mode in configs:
            beam, batched = MODES[mode]
            r = results[config_name(engine, mode)]
            out_path = os.path.join(out, "out", file_name(engine, mode))
            log = os.path.join(out, "logs", file_name(engine, mode).replace(".txt", ".log"))
            if engine.startswith("ct2"):
                cmd = [sys.executable, os.path.join(CT2_DIR, "translate.py"), "--model", models[engine],
                       "--vocab", vocab, "--input", input_path, "--output", out_path, "--beam", str(beam),
                       "--threads", str(args.threads),
                       "--compute-type", "int8" if engine == "ct2-int8" else "float32"]
                cmd += ["--batch-size", str(BATCH), "--batching", "sorted"] if batched else ["--one-by-one"]
                stdout, _ = run(cmd, log, env=child_env)
                report = json.loads(stdout.strip().splitlines()[-1])
                secs = float(report["seconds"])
                r.setdefault("encode_seconds", []).append(report.get("encode_seconds"))
                r["batches"] = report.get("batches")
            else:
                cmd = [args.seqkd, "translate", "--model", models[engine], "--input", input_path,
                       "--engine", "torch" if engine == "torch-f32" else "native",
                       "--threads", str(args.threads), "--beam", str(beam)]
                cmd += ["--max-sentences", str(BATCH), "--batch-tokens", "100000"] if batched else ["--max-sentences", "1"]
                _, stderr = run(cmd, log, stdout_path=out_path, env=child_env)
                secs = seqkd_seconds(stderr, words)
            r["seconds"].append(round(secs, 4))
            with open(out_path, "rb") as f:
                r["output_sha256"].append(hashlib.sha256(f.read()).hexdigest())
            r["output"] = out_path
            print(f"  [{rep + 1}/{args.repeats}] {config_name(engine, mode):22s} {secs:8.2f}s "
                  f"{words / max(secs, 1e-9):10.0f} words/s", file=sys.stderr)

    # Metrics of each configuration: speed of the fastest repeat, quality of the (last) output.
    tok = Tokenizer.from_file(vocab)
    outputs = {}
    for name, r in results.items():
        hyps = read_lines(r["output"])
        if len(hyps) != len(lines):
            sys.exit(f"bench-runtime: {r['output']} has {len(hyps)} lines, the input {len(lines)}")
        outputs[name] = hyps
        best = min(r["seconds"])
        r["best_seconds"] = best
        r["target_tokens"] = sum(len(e.ids) for e in tok.encode_batch(hyps, add_special_tokens=False))
        r["words_per_s"] = round(words / best, 2) if best > 0 else None
        r["target_tokens_per_s"] = round(r["target_tokens"] / best, 2) if best > 0 else None
        r["bleu"] = round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2) if refs is not None else None
        r["deterministic"] = len(set(r["output_sha256"])) == 1
    for name, r in results.items():
        e, m = r["engine"], r["mode"]
        for key, peers in [("x_ct2", CT2_PEER), ("x_torch", TORCH_PEER)]:
            peer = results.get(config_name(peers.get(e, ""), m))
            r[key] = round(r["words_per_s"] / peer["words_per_s"], 3) if peer and r["words_per_s"] and peer["words_per_s"] else None

    agreement = []
    for m in MODES:
        for a, b in AGREEMENT:
            ha, hb = outputs.get(config_name(a, m)), outputs.get(config_name(b, m))
            if ha is not None and hb is not None:
                same = sum(x == y for x, y in zip(ha, hb))
                agreement.append({"mode": m, "a": a, "b": b, "identical": same, "sentences": len(lines)})

    targets = []
    for m in MODES:
        for native in ["native-int8", "native-f32"]:
            r = results.get(config_name(native, m))
            ratio = r["x_ct2"] if r else None
            targets.append({"mode": m, "engine": native, "versus": CT2_PEER[native], "ratio": ratio, "goal": 1.0,
                            "status": "n/a" if ratio is None else ("PASS" if ratio >= 1.0 else "FAIL")})

    env_info["loadavg_end"] = list(os.getloadavg())
    notes = [
        f"{len(lines)} sentences, {words} source words, {args.threads} threads, fastest of {args.repeats} repeats.",
        "seqkd seconds include the input's subword encoding (model load excluded); CTranslate2 seconds are "
        "translation only (encoding excluded).",
        "CTranslate2 batches of 64 use the output length limit of the batch's longest sentence for all its "
        "sentences (seqkd: per sentence); this only changes sentences that reach their limit.",
        "×CT2: words/s over CTranslate2's at the same precision and search; ×torch: over seqkd's libtorch f32.",
    ]
    nondet = [n for n, r in results.items() if not r["deterministic"]]
    if nondet:
        notes.append("outputs changed between repeats: " + ", ".join(nondet))
    if load > 0.5 or env_info["loadavg_end"][0] > 0.5:
        notes.append(f"load average {load:.2f} at the start, {env_info['loadavg_end'][0]:.2f} at the end: "
                     "other processes may have disturbed the timings.")

    md = [f"# seqkd decoding engines vs CTranslate2: `{args.model}`", "",
          f"CPU: {env_info.get('cpu')}; ctranslate2 {env_info.get('ctranslate2')}; seqkd {env_info.get('git')} "
          f"(binary {env_info['seqkd']['mtime']}).", "",
          "| configuration | words/s | tokens/s | BLEU | ×CT2 | ×torch | seconds (best) | all repeats |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        md.append(f"| {name} | {fmt(r['words_per_s'])} | {fmt(r['target_tokens_per_s'])} | {fmt(r['bleu'], 2)} | "
                  f"{fmt(r['x_ct2'], 2)} | {fmt(r['x_torch'], 2)} | {r['best_seconds']:.3f} | "
                  f"{', '.join(f'{s:.3f}' for s in r['seconds'])} |")
    if agreement:
        md += ["", "| mode | outputs | identical lines |", "|---|---|---:|"]
        md += [f"| {a['mode']} | {a['a']} = {a['b']} | {a['identical']}/{a['sentences']} |" for a in agreement]
    md += ["", "| target | ratio | result |", "|---|---:|---|"]
    md += [f"| {t['engine']} ≥ 1.0× {t['versus']} words/s, {t['mode']} | {fmt(t['ratio'], 2)} | {t['status']} |"
           for t in targets]
    md += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    text = "\n".join(md) + "\n"

    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": {"model": model, "input": os.path.abspath(args.input), "ref": ref_path,
                                "sentences": len(lines), "source_words": words, "threads": args.threads,
                                "repeats": args.repeats, "batch": BATCH, "configs": args.configs or "all"},
                   "environment": env_info, "models": models, "results": list(results.values()),
                   "agreement": agreement, "targets": targets, "notes": notes}, f, indent=2)
        f.write("\n")
    print(text)
    failed = [t for t in targets if t["status"] == "FAIL"]
    print(f"bench-runtime: {len(failed)} target(s) missed; results in {out}/results.{{md,json}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
