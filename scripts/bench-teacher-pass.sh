#!/usr/bin/env bash
# A teacher pass, native runtime vs libtorch, on the same teacher, sentences and threads
# (issue 21). Runs the engines alternately REPEATS times, checks the outputs, and prints
# sentences/s per run and the native/torch ratio of the medians.
#
#   scripts/bench-teacher-pass.sh TEACHER_DIR SRC [SENTENCES=10000] [THREADS=2] [REPEATS=1] [BEAM=5]
#   TGT=TARGET_FILE scripts/bench-teacher-pass.sh ...    # the top-k store (k = $K, default 8) instead
#
# Seq-KD (the default): every output identical byte for byte. Top-k (TGT set): stored in f32 and
# compared by scripts/compare-topk.py (ids identical but for ties, probabilities within 1e-5).
# e.g. scripts/bench-teacher-pass.sh runs/teacher ../shared/data/multi30k/train.en 10000 2
#      TGT=../shared/data/multi30k/train.de scripts/bench-teacher-pass.sh runs/teacher ../shared/data/multi30k/train.en
set -euo pipefail
teacher=$1 src=$2 n=${3:-10000} threads=${4:-2} repeats=${5:-1} beam=${6:-5}
seqkd=${SEQKD:-target/release/seqkd}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n "$n" "$src" > "$work/src.txt"
tgt=${TGT:-} k=${K:-8}
[ -z "$tgt" ] || head -n "$n" "$tgt" > "$work/tgt.txt"
declare -A rates
for r in $(seq 1 "$repeats"); do
  for engine in native torch; do
    out="$work/$engine-$r.txt"
    if [ -z "$tgt" ]; then
      pass=(seq-kd --beam "$beam")
    else
      pass=(topk --tgt "$work/tgt.txt" --k "$k" --precision f32)
    fi
    line=$("$seqkd" distill "${pass[@]}" --teacher "$teacher" --src "$work/src.txt" --out "$out" \
      --threads "$threads" --engine "$engine" --quiet 2>&1 | grep '^wrote')
    rate=$(sed -E 's/.* ([0-9.]+) sentences\/s.*/\1/' <<<"$line")
    rates[$engine]+="$rate "
    echo "run $r $engine: $rate sentences/s"
    if [ -z "$tgt" ]; then
      cmp -s "$out" "$work/native-1.txt" || { echo "OUTPUT DIFFERS: $out vs native-1"; exit 1; }
    elif [ "$out" != "$work/native-1.txt" ]; then
      python3 "$(dirname "$0")/compare-topk.py" "$work/native-1.txt" "$out" || { echo "TOP-K DIFFERS"; exit 1; }
    fi
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
nat=$(median "${rates[native]}") tor=$(median "${rates[torch]}")
what=$([ -z "$tgt" ] && echo "Seq-KD, beam $beam" || echo "top-k store, k $k")
echo "$n sentences, $what, $threads threads: native $nat, torch $tor sentences/s;" \
  "native/torch = $(awk -v a="$nat" -v b="$tor" 'BEGIN {printf "%.2f", a / b}')x; outputs checked"
