#!/usr/bin/env python3
"""Golden numbers from sacrebleu 2.6.0 for the Rust metrics in crates/text/src/metrics/.

Run with the tools venv (see below). For each reference file in SEQKD_DATA this builds hypotheses by
perturbing the references deterministically (splitmix64 PRNG, whitespace-split words, characters by
code point) and records what sacrebleu says about them. `crates/text/tests/metrics_golden.rs`
rebuilds the very same hypotheses in Rust (`perturb` below is mirrored there line by line) and checks
every number. The golden file holds only file names, recipe names, seeds, options and scores: no text
from the corpora, whose licenses forbid redistribution.

It also writes `python_unicode.json`: the Python facts the metrics depend on (str.isspace, str.lower,
the \\p{P}/\\p{S}/\\p{N} classes of the `regex` module used by the `intl` tokenizer), so that the Rust
tables are checked code point by code point.

    python3 -m venv .venv-tools && .venv-tools/bin/pip install sacrebleu==2.6.0
    .venv-tools/bin/python scripts/sacrebleu_golden.py            # writes crates/text/tests/golden/
    .venv-tools/bin/python scripts/sacrebleu_golden.py --sets unseen --out /tmp/g.json

Any file can be checked: `--file REL_PATH[:TOKENIZE]` (repeatable) replaces the built-in list; the
Rust test reads whatever entries the JSON lists.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import regex
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

assert sacrebleu.__version__ == "2.6.0", f"need sacrebleu 2.6.0, have {sacrebleu.__version__}"

ROOT = Path(__file__).resolve().parent.parent
MASK = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------
# Deterministic perturbation. Mirrored exactly in crates/text/tests/metrics_golden.rs: every
# PRNG draw happens in the same order there, so change both or neither.
# ---------------------------------------------------------------------------------------------


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def chance(self, permille):
        return self.next() % 1000 < permille


# Whole tokens inserted between words: Unicode quotes and dashes, numbers with periods, commas and
# hyphens (13a treats those specially), XML entities (13a unescapes four of them), `<skipped>`,
# every ASCII punctuation class of 13a, symbols and punctuation for `intl`, a combining mark,
# and cased non-ASCII words for lowercasing (final sigma, dotted I, titlecase digraph).
INSERTS = [
    "\u201e", "\u201c", "\u201d", "\u201a", "\u2018", "\u2019", "\u00ab", "\u00bb", "\u2039", "\u203a",
    "\u2013", "\u2014", "-", "--", "\u2026", "...", "3.5", "1,000", "12.", "2,5", ".5", "0,75",
    "1999-2000", "10-", "-3", "4.-5.", "1.000.000,50", "&quot;", "&amp;", "&lt;", "&gt;", "&apos;",
    "&quot", "&amp;quot;", "&amp;lt;", "<skipped>", "<skip<skipped>ped>", '"', "'", "(", ")", "[",
    "]", "{", "}", "$", "\u20ac", "\u00a3", "%", "\u00b0", "\u00a7", "\u00a9", "\u00b7", "\u00bf",
    "\u00a1", "@", "#", "*", "+", "=", "~", "^", "|", "\\", "/", ":", ";", "!", "?", "`", "_", "<",
    ">", "&", "\u00bd", "\u00b2", "\u2460", "\u0663", "\u066b", "\u01c5", "\u038c\u03a3\u039f\u03a3",
    "\u03a3\u0391\u03a3.", "\u0130stanbul", "\U0001d518", "\U0001f642", "\u0301", "\ufb01",
    "a.b,c", "x-5", "5-x", "U.S.A.", "e.g.,", "z.B.", "Nr.5", "(1)", "[2]", "\u00bc-\u00bd",
]

# Glued to the start or the end of a word, no space: exercises the "unless preceded/followed by a
# digit" rules of 13a and intl and chrF++'s punctuation splitting.
GLUE = [
    ".", ",", "!", "?", ":", ";", '"', "'", ")", "(", "\u201c", "\u201d", "\u201e", "\u00bb",
    "\u00ab", "\u2026", "-", "\u2013", ".5", ",5", "5.", "5,", "-5", "5-", "&quot;", "&amp;", "%",
    "$", "\u20ac", "\u2019s", "'s", "/", "*", "\u0301", "-\n", "..", ".,", ",.", "9", "\u00b2",
]

# Word separators: Python's str.split() whitespace, including the \x1c-\x1f separators and \x85
# that Rust's char::is_whitespace disagrees on, a non-whitespace zero-width space, newlines
# (13a maps "\n" to a space and drops "-\n").
SEPS = [
    "  ", "\t", "\u00a0", "\u2009", "\u3000", "\x85", "\x1c", "\x1d", "\x1e", "\x1f", "\u2028",
    " \u00a0 ", "\u200b", "\x0b", "\x0c", "\u202f", "\n", "\r", " \n ", "\u1680", "\u205f", "\u180e",
]

# Per-mille rates of each perturbation.
RECIPES = {
    "identity": dict(empty=0, drop=0, typo=0, case=0, glue=0, insert=0, swap=0, space=0),
    "light": dict(empty=0, drop=20, typo=10, case=0, glue=20, insert=10, swap=20, space=0),
    "mix": dict(empty=20, drop=60, typo=40, case=50, glue=80, insert=80, swap=60, space=40),
    "punct": dict(empty=0, drop=0, typo=0, case=0, glue=300, insert=300, swap=0, space=0),
    "spaces": dict(empty=50, drop=0, typo=0, case=100, glue=0, insert=0, swap=0, space=400),
    "heavy": dict(empty=50, drop=250, typo=150, case=150, glue=200, insert=200, swap=200, space=150),
}


def ascii_upper(w):
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in w)


def ascii_lower(w):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in w)


def typo(w, rng):
    cs = list(w)
    k = rng.below(3)
    i = rng.below(len(cs))
    if k == 0 and len(cs) > 1:
        del cs[i]
    elif k == 1:
        cs.insert(i, cs[i])
    elif k == 2 and i + 1 < len(cs):
        cs[i], cs[i + 1] = cs[i + 1], cs[i]
    return "".join(cs)


def recase(w, rng):
    k = rng.below(3)
    if k == 0:
        return ascii_upper(w)
    if k == 1:
        return ascii_lower(w)
    first = w[0]
    first = ascii_upper(first) if "a" <= first <= "z" else ascii_lower(first)
    return first + w[1:]


def perturb(line, rng, r):
    if rng.chance(r["empty"]):
        return ""
    out = []
    for w in line.split():
        if rng.chance(r["drop"]):
            continue
        if rng.chance(r["typo"]):
            w = typo(w, rng)
        if rng.chance(r["case"]):
            w = recase(w, rng)
        if rng.chance(r["glue"]):
            g = GLUE[rng.below(len(GLUE))]
            w = w + g if rng.below(2) == 0 else g + w
        if rng.chance(r["insert"]):
            out.append(INSERTS[rng.below(len(INSERTS))])
        out.append(w)
    for i in range(len(out) - 1):
        if rng.chance(r["swap"]):
            out[i], out[i + 1] = out[i + 1], out[i]
    s = SEPS[rng.below(len(SEPS))] if rng.chance(r["space"]) else ""
    for i, w in enumerate(out):
        if i > 0:
            s += SEPS[rng.below(len(SEPS))] if rng.chance(r["space"]) else " "
        s += w
    if rng.chance(r["space"]):
        s += SEPS[rng.below(len(SEPS))]
    return s


def make_hyps(refs, recipe, seed):
    rng = SplitMix64(seed)
    return [perturb(line, rng, RECIPES[recipe]) for line in refs]


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


# ---------------------------------------------------------------------------------------------
# What is scored.
# ---------------------------------------------------------------------------------------------

# (path relative to SEQKD_DATA, default tokenizer, split). "dev" sets were used while writing the
# Rust code; "unseen" sets were not looked at and only checked at the end.
SETS = [
    ("multi30k/test2016.de", "13a", "dev"),
    ("multi30k/val.de", "13a", "dev"),
    ("wmt-newstest/newstest2013.de", "13a", "dev"),
    ("tatoeba-deu-eng/test.en", "13a", "dev"),
    ("iwslt14-de-en/test.en", "none", "dev"),
    ("wmt-newstest/newstest2012.de", "13a", "unseen"),
    ("wmt-newstest/newstest2012.en", "13a", "unseen"),
    ("iwslt14-de-en/valid.de", "none", "unseen"),
    ("iwslt14-de-en/valid.en", "13a", "unseen"),
    ("multi30k/test2016.en", "13a", "unseen"),
    ("tatoeba-deu-eng/test.de", "13a", "unseen"),
    ("wmt-sample-10k/newstest2012-first3000.tok.de", "13a", "unseen"),
]

SMOOTHS = ["exp", "floor", "add-k", "none"]
# Sentence-level samples per (set, recipe): many on the noisy recipes, a few elsewhere (the
# golden file stays under 1 MB).
SENT_LINES = {"mix": 150, "heavy": 150}
SENT_LINES_UNSEEN = 100  # for mix and heavy on the unseen sets
SENT_LINES_OTHER = 30
SENT_LINES_OPT = 40  # per extra option combination of the "mix" recipe
# Recipes run on the unseen sets (all recipes run on the dev sets).
UNSEEN_RECIPES = ["identity", "mix", "heavy"]


def sample_indices(n, k, seed):
    """k distinct line indices spread over the file (first and last included), seeded."""
    if n <= k:
        return list(range(n))
    rng = SplitMix64(seed ^ 0x5EED)
    picked = {0, n - 1}
    while len(picked) < k:
        picked.add(rng.below(n))
    return sorted(picked)


def bleu_entry(hyps, refs, tokenize, lowercase):
    out = {}
    for sm in SMOOTHS:
        m = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=sm, force=True)
        s = m.corpus_score(hyps, [refs])
        out[sm] = dict(score=s.score, signature=str(m.get_signature()))
        if sm == "exp":
            out[sm]["line"] = str(s)
            out["counts"] = list(s.counts)
            out["totals"] = list(s.totals)
            out["sys_len"] = s.sys_len
            out["ref_len"] = s.ref_len
            out["bp"] = s.bp
            out["precisions"] = list(s.precisions)
            out["json"] = json.loads(s.format(signature=str(m.get_signature()), is_json=True))
    return out


def chrf_entry(hyps, refs, word_order, lowercase, eps):
    m = CHRF(word_order=word_order, lowercase=lowercase, eps_smoothing=eps)
    s = m.corpus_score(hyps, [refs])
    sig = str(m.get_signature())
    return dict(
        word_order=word_order, lowercase=lowercase, eps_smoothing=eps, score=s.score,
        signature=sig, line=str(s), json=json.loads(s.format(signature=sig, is_json=True)),
    )


def sentence_rows(hyps, refs, idx, tokenize, lowercase, all_smooth):
    """[line, bleu per smoothing..., chrF] with sacrebleu.sentence_bleu's defaults otherwise."""
    rows = []
    smooths = SMOOTHS if all_smooth else ["exp"]
    for i in idx:
        row = [i]
        for sm in smooths:
            row.append(sacrebleu.sentence_bleu(hyps[i], [refs[i]], smooth_method=sm, tokenize=tokenize,
                                               lowercase=lowercase).score)
        if all_smooth:
            row.append(sacrebleu.sentence_chrf(hyps[i], [refs[i]]).score)
        rows.append(row)
    return rows


def golden_for(rel, default_tok, split, data, max_lines):
    text = (data / rel).read_bytes()
    refs = text.decode("utf-8").split("\n")
    if refs and refs[-1] == "":
        refs.pop()
    n_lines = len(refs)
    # Only the first max_lines lines are scored, to keep the (debug-mode) Rust test quick.
    refs = refs[:max_lines] if max_lines > 0 else refs
    entry = dict(file=rel, split=split, n_lines=n_lines, lines_used=len(refs), fnv1a64=f"{fnv1a64(text):016x}",
                 runs=[])
    for ri, recipe in enumerate(RECIPES):
        if split != "dev" and recipe not in UNSEEN_RECIPES:
            continue
        seed = (fnv1a64(rel.encode()) + ri) & MASK
        hyps = make_hyps(refs, recipe, seed)
        # Option combinations: the file's tokenizer for every recipe; the others on "mix" only.
        opts = [(default_tok, False)]
        if recipe == "mix":
            for tok in ["13a", "intl", "char", "none"]:
                for lc in [False, True]:
                    if (tok, lc) not in opts:
                        opts.append((tok, lc))
        k = SENT_LINES.get(recipe, SENT_LINES_OTHER)
        if split == "unseen":
            k = min(k, SENT_LINES_UNSEEN)
        idx = sample_indices(len(refs), k, seed)
        idx_opt = sample_indices(len(refs), SENT_LINES_OPT, seed + 1)
        for oi, (tok, lc) in enumerate(opts):
            main = oi == 0
            run = dict(recipe=recipe, seed=seed, tokenize=tok, lowercase=lc,
                       bleu=bleu_entry(hyps, refs, tok, lc))
            if main:
                run["chrf"] = [chrf_entry(hyps, refs, 0, False, False)]
                if recipe == "mix":
                    run["chrf"] += [chrf_entry(hyps, refs, 2, False, False),
                                    chrf_entry(hyps, refs, 0, True, False),
                                    chrf_entry(hyps, refs, 2, True, True)]
            run["sentence"] = sentence_rows(hyps, refs, idx if main else idx_opt, tok, lc, main)
            entry["runs"].append(run)
    return entry


# ---------------------------------------------------------------------------------------------
# Python facts the Rust code mirrors.
# ---------------------------------------------------------------------------------------------


def ranges(pred):
    out, start = [], None
    for c in range(sys.maxunicode + 2):
        inside = c <= sys.maxunicode and pred(c)
        if inside and start is None:
            start = c
        elif not inside and start is not None:
            out.append([start, c - 1])
            start = None
    return out


def python_unicode():
    def is_surrogate(c):
        return 0xD800 <= c <= 0xDFFF

    lower = [[c, chr(c).lower()] for c in range(sys.maxunicode + 1)
             if not is_surrogate(c) and chr(c).lower() != chr(c)]
    classes = {}
    for cls in ["P", "S", "N"]:
        r = regex.compile(r"\p{%s}" % cls)
        classes[cls] = ranges(lambda c, r=r: not is_surrogate(c) and r.match(chr(c)) is not None)
    # Strings whose lowercase depends on context (final sigma) or on special casing.
    sigma_cases = ["\u03a3", "A\u03a3", "\u03a3A", "A\u03a3 ", "A\u03a3.", "A\u0301\u03a3", "A\u03a3\u0301",
                   "A\u03a3\u0301B", "1\u03a3", "\u03a3\u03a3", "A\u03a3\u03a3", "\u038c\u03a3\u039f\u03a3",
                   "A'\u03a3", "A\u00ad\u03a3", "A\u03a3\u00adB", "\u0345\u03a3", "\u1fbc\u03a3",
                   "\u0130", "I\u0307", "\u01c5\u01c4", "\u1e9e", "\u2126", "\u212a"]
    return dict(
        python=sys.version.split()[0],
        unicodedata=__import__("unicodedata").unidata_version,
        regex_module=regex.__version__,
        isspace=[c for c in range(sys.maxunicode + 1) if chr(c).isspace()],
        lower=lower,
        lower_contexts=[[s, s.lower()] for s in sigma_cases],
        classes=classes,
    )


def floats_as_text(obj, key=None):
    """Floats become their repr strings: JSON readers need not parse 17 digits correctly (serde_json
    without `float_roundtrip` is off by one ulp at times), Rust's str::parse::<f64> does. sacrebleu's
    own JSON objects (key "json") are kept as sacrebleu prints them."""
    if key == "json":
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: floats_as_text(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [floats_as_text(v) for v in obj]
    return obj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("SEQKD_DATA", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--out", default=str(ROOT / "crates/text/tests/golden/sacrebleu_golden.json"))
    ap.add_argument("--unicode-out", default=str(ROOT / "crates/text/tests/golden/python_unicode.json"))
    ap.add_argument("--sets", choices=["all", "dev", "unseen"], default="all")
    ap.add_argument("--max-lines", type=int, default=3000, help="score the first N lines of each file (0: all)")
    ap.add_argument("--file", action="append", default=[],
                    help="REL_PATH[:TOKENIZE] under --data; replaces the built-in list")
    args = ap.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"data directory {data} not found (set SEQKD_DATA)")

    if args.file:
        sets = []
        for f in args.file:
            rel, _, tok = f.partition(":")
            sets.append((rel, tok or "13a", "custom"))
    else:
        sets = [s for s in SETS if args.sets in ("all", s[2])]

    entries = []
    for rel, tok, split in sets:
        print(f"{rel} ({split}, tok {tok})", file=sys.stderr)
        entries.append(golden_for(rel, tok, split, data, args.max_lines))
    golden = dict(
        sacrebleu=sacrebleu.__version__,
        python=sys.version.split()[0],
        note="Scores of sacrebleu on perturbed references; see scripts/sacrebleu_golden.py.",
        # The perturbation's tables, so that the Rust side cannot drift from them.
        perturbation=dict(inserts=INSERTS, glue=GLUE, seps=SEPS, recipes=RECIPES),
        sets=entries,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(floats_as_text(golden), f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)
    if args.unicode_out != "-":
        with open(args.unicode_out, "w", encoding="utf-8") as f:
            json.dump(python_unicode(), f, ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {args.unicode_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
