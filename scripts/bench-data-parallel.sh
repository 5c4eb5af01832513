#!/usr/bin/env bash
# Data-parallel training on one machine: 1 process × T threads against T processes × 1 thread
# (c10d Gloo all-reduce), the same config and global batches. Prints the training tokens/s of
# updates 51–100 (metrics.jsonl's window) for each, and their ratio.
#
#   scripts/bench-data-parallel.sh [CONFIG] [T]      (default: configs/multi30k-transformer.toml, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-configs/multi30k-transformer.toml}
t=${2:-2}
seqkd=target/release/seqkd
work=$(mktemp -d)
# Beside the original, so that its relative data paths still resolve.
tmp_cfg() { echo "$(dirname "$cfg")/.bench-dp-$$-$1.toml"; }
trap 'rm -rf "$work" "$(tmp_cfg 1)" "$(tmp_cfg n)"' EXIT
edit() { # threads -> config with a 100-update budget and no validation until the end
  sed -e 's/^max_minutes *=.*/max_minutes = 0/' -e 's/^max_steps *=.*/max_steps = 100/' \
      -e 's/^max_epochs *=.*/max_epochs = 0/' -e 's/^valid_every *=.*/valid_every = 1000/' \
      -e 's/^valid_bleu_sentences *=.*/valid_bleu_sentences = 10/' -e "s/^threads *=.*/threads = $1/" "$cfg"
}
tokens_per_s() { grep '"step":100,' "$1/metrics.jsonl" | grep -o '"tgt_tokens_per_s":[0-9.]*' | cut -d: -f2; }

edit "$t" > "$(tmp_cfg 1)"
"$seqkd" train --config "$(tmp_cfg 1)" --model-dir "$work/one" --quiet >/dev/null
one=$(tokens_per_s "$work/one")

edit 1 > "$(tmp_cfg n)"
port=$((29000 + RANDOM % 1000))
pids=()
for ((r = t - 1; r >= 0; r--)); do
  "$seqkd" train --config "$(tmp_cfg n)" --model-dir "$work/dp" --quiet \
    --world-size "$t" --rank "$r" --master-port "$port" >/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
dp=$(tokens_per_s "$work/dp")
python3 -c "print(f'1 process x $t threads: {$one:.0f} tgt tok/s; $t processes x 1 thread: {$dp:.0f} tgt tok/s; ratio {$dp/$one:.2f}')"
