#!/usr/bin/env python3
"""Compares two seqkd top-k stores (SEQKDTK1) position by position: probabilities equal within --tol
(absolute) rank by rank, and ids identical except where two tokens tie within --tol (the order of
a tie, or which of two tied tokens is k-th, depends on the last bit of the logits). Prints the
counts; exit 1 on any other difference.

    python3 scripts/compare-topk.py A.topk B.topk [--tol 1e-5]
"""
import argparse, json, struct, sys
from array import array


def read(path):
    data = open(path, "rb").read()
    if data[-8:] != b"SEQKDTK1":
        sys.exit(f"{path}: not a complete seqkd top-k store")
    (json_len,) = struct.unpack("<Q", data[-16:-8])
    header = json.loads(data[-16 - json_len:-16])
    k, vocab = header["k"], header["vocab_size"]
    id_code, id_bytes = ("H", 2) if vocab <= 1 << 16 else ("I", 4)
    p_code, p_bytes = ("e", 2) if header["precision"] == "f16" else ("f", 4)
    record = k * (id_bytes + p_bytes)
    n = header["n_positions"]
    ids, probs = array(id_code), array("f")
    for r in range(n):
        at = r * record
        ids.frombytes(data[at:at + k * id_bytes])
        probs.extend(struct.unpack(f"<{k}{p_code}", data[at + k * id_bytes:at + record]))
    return header, ids, probs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    (ha, ia, pa), (hb, ib, pb) = read(args.a), read(args.b)
    for key in ("k", "vocab_size", "n_sentences", "n_positions", "targets_hash", "precision", "temperature"):
        if ha[key] != hb[key]:
            sys.exit(f"headers differ in {key}: {ha[key]} vs {hb[key]}")
    k = ha["k"]
    tol = args.tol
    id_diff = untied = positions = 0
    for p in range(ha["n_positions"]):
        a_ids, b_ids = ia[p * k:(p + 1) * k], ib[p * k:(p + 1) * k]
        if a_ids == b_ids:
            continue
        positions += 1
        a_p, b_p = pa[p * k:(p + 1) * k], pb[p * k:(p + 1) * k]
        for r in range(k):
            if a_ids[r] == b_ids[r]:
                continue
            id_diff += 1
            if a_ids[r] in b_ids:
                tied = abs(b_p[b_ids.index(a_ids[r])] - a_p[r]) <= tol
            else:  # left out by the other store: it must tie with the last entry kept
                tied = a_p[r] - a_p[k - 1] <= tol
            untied += not tied
    worst = max((abs(x - y) for x, y in zip(pa, pb)), default=0.0)
    print(
        f"{ha['n_sentences']} sentences, {ha['n_positions']} positions, k={k}: {id_diff} ids differ "
        f"({positions} positions; {untied} not ties), largest probability difference {worst:.2e} (tol {tol:g})"
    )
    sys.exit(0 if untied == 0 and worst <= tol else 1)


main()
