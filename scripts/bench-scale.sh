#!/usr/bin/env bash
# The data stages at scale (issue 23): for each corpus size N (training pairs), time and peak RSS of
#   gen-corpus · check-corpus (both sides) · vocab train (joint BPE 8000) ·
#   train to its first update (reading, encoding, filtering, batching the corpus; one update of a
#   small Transformer), in memory and with `[data] stream` (encoding the ids into the model
#   directory, then a restart that maps them) · Seq-KD pass and top-k store over the first PASS sentences (native engine,
#   a tiny teacher trained on the 200k-independent dev corpus, so the pass cost does not grow with N)
# and prints one markdown row per stage and size. Writes only under a temporary directory.
#
#   scripts/bench-scale.sh [SIZES="200000 1000000 2000000"] [PASS=0]
set -euo pipefail
sizes=${1:-"200000 1000000 2000000"}
seqkd=${SEQKD:-$(pwd)/target/release/seqkd}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| pairs | stage | seconds | peak RSS (MiB) | output |"
echo "|---:|---|---:|---:|---|"
stage() { # N NAME OUTPUT_DESCRIPTION CMD...
  local n=$1 name=$2 what=$3; shift 3
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  read -r secs kb < "$work/time"
  printf '| %s | %s | %s | %.0f | %s |\n' "$n" "$name" "$secs" "$((kb / 1024))" "$(eval "$what")"
}
for n in $sizes; do
  d="$work/c$n"
  stage "$n" gen-corpus "du -sh $d | cut -f1" "$seqkd" gen-corpus --out "$d" --train "$n" --valid 500 --test 500
  stage "$n" check-corpus "tail -1 $work/log" "$seqkd" check-corpus "$d/train.en" "$d/train.syn"
  stage "$n" "vocab train" "echo 8000 ids" "$seqkd" vocab train --input "$d/train.en" "$d/train.syn" --size 8000 --out "$d/vocab.json"
  cat > "$d/train.toml" <<TOML
[data]
train_src = "train.en"
train_tgt = "train.syn"
valid_src = "valid.en"
valid_tgt = "valid.syn"
vocab_path = "vocab.json"

[model]
arch = "transformer"
d_model = 64
n_heads = 4
d_ff = 128
encoder_layers = 1
decoder_layers = 1

[train]
batch_tokens = 4096
max_steps = 1
valid_every = 1000000
valid_bleu_sentences = 0
threads = 2
TOML
  stage "$n" "train, to the first update" "grep -o 'trained [0-9]* step[s]*' $work/log | head -1" \
    "$seqkd" train --config "$d/train.toml" --model-dir "$d/model" --quiet
  sed 's/^\[data\]$/[data]\nstream = true/' "$d/train.toml" > "$d/stream.toml"
  stage "$n" "train streamed, to the first update (encodes the ids)" \
    "du -ch $d/smodel/train.*.ids | tail -1 | cut -f1" \
    "$seqkd" train --config "$d/stream.toml" --model-dir "$d/smodel" --quiet
  stage "$n" "train streamed, restarted (maps the ids), to its update" \
    "grep -o 'trained [0-9]* step[s]*' $work/log | head -1" \
    "$seqkd" train --config "$d/stream.toml" --model-dir "$d/smodel" --quiet --resume --max-steps 2
  rm -rf "$d"
done
