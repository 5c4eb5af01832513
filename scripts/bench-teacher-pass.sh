#!/usr/bin/env bash
# Seq-KD teacher pass, native runtime vs libtorch, on the same teacher, sentences and threads
# (issue 21). Runs the engines alternately REPEATS times, checks that every output is identical
# byte for byte, and prints sentences/s per run and the native/torch ratio of the medians.
#
#   scripts/bench-teacher-pass.sh TEACHER_DIR SRC [SENTENCES=10000] [THREADS=2] [REPEATS=1] [BEAM=5]
#
# e.g. scripts/bench-teacher-pass.sh runs/teacher ../shared/data/multi30k/train.en 10000 2
set -euo pipefail
teacher=$1 src=$2 n=${3:-10000} threads=${4:-2} repeats=${5:-1} beam=${6:-5}
seqkd=${SEQKD:-target/release/seqkd}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -n "$n" "$src" > "$work/src.txt"
declare -A rates
for r in $(seq 1 "$repeats"); do
  for engine in native torch; do
    out="$work/$engine-$r.txt"
    line=$("$seqkd" distill seq-kd --teacher "$teacher" --src "$work/src.txt" --out "$out" \
      --beam "$beam" --threads "$threads" --engine "$engine" --quiet 2>&1 | grep '^wrote')
    rate=$(sed -E 's/.* ([0-9.]+) sentences\/s.*/\1/' <<<"$line")
    rates[$engine]+="$rate "
    echo "run $r $engine: $rate sentences/s"
    cmp -s "$out" "$work/native-1.txt" || { echo "OUTPUT DIFFERS: $out vs native-1"; exit 1; }
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
nat=$(median "${rates[native]}") tor=$(median "${rates[torch]}")
echo "$n sentences, beam $beam, $threads threads: native $nat, torch $tor sentences/s;" \
  "native/torch = $(awk -v a="$nat" -v b="$tor" 'BEGIN {printf "%.2f", a / b}')x; outputs identical"
