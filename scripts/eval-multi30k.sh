#!/usr/bin/env bash
# Translates Multi30k test2016 (En→De) with a trained model, greedy and beam 5, and scores it the
# sacrebleu way (detokenized, 13a). Usage: scripts/eval-multi30k.sh MODEL_DIR [DATA_DIR]
set -euo pipefail
model=$1
data=${2:-${SEQKD_DATA:-$(dirname "$0")/../../shared/data}}
seqkd=${SEQKD:-target/release/seqkd}
for beam in 1 5; do
  out="$model/test2016.beam$beam.de"
  "$seqkd" translate --model "$model" --input "$data/multi30k/test2016.en" --beam "$beam" > "$out"
  echo "== beam $beam: $out"
  "$seqkd" score --ref "$data/multi30k/test2016.de" --hyp "$out"
done
