#!/usr/bin/env bash
# The JoeyNMT 2.3 peer for issue 19: its recurrent encoder-decoder (LSTM, Luong attention, input
# feeding, bridge) on Multi30k En→De with a joint 8,000-piece BPE vocabulary, trained for a
# wall-clock budget on this machine's threads, then test2016 greedy and beam 5 scored with sacrebleu
# (detokenized, 13a). Everything it installs or writes stays outside the repository.
#
#   scripts/peers/joeynmt-rnn.sh [WORK_DIR]        # default ../peers/joeynmt-rnn next to the repo
#
# Environment: MINUTES (60), THREADS (2), SEQKD_DATA (../shared/data), JOEY_VENV (WORK_DIR/venv).
# The model mirrors configs/multi30k-lstm-brnn.toml: embeddings 256, a 2-layer bidirectional encoder of
# 2×128 (JoeyNMT's hidden_size is per direction), a 2-layer decoder of 256, dropout 0.3, tied
# embeddings and softmax, Adam with label smoothing 0.1 and token batches.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mkdir -p "${1:-$repo/../peers/joeynmt-rnn}" && cd "${1:-$repo/../peers/joeynmt-rnn}" && pwd)
data=$(cd "${SEQKD_DATA:-$repo/../shared/data}" && pwd)/multi30k
minutes=${MINUTES:-60}
threads=${THREADS:-2}
venv=${JOEY_VENV:-$work/venv}
case "$work/" in "$repo"/*) echo "joeynmt-rnn: WORK_DIR must be outside the repository" >&2; exit 2;; esac

if [[ ! -x $venv/bin/joeynmt-ready ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    joeynmt==2.3.0 torch==2.13.0 sentencepiece==0.2.0 sacrebleu==2.6.0 importlib_metadata
  # JoeyNMT 2.3 with torch 2.13: ReduceLROnPlateau no longer takes `verbose` (it was False).
  sed -i '/"verbose": False,/d' "$("$venv/bin/python" -c 'import joeynmt, os; print(os.path.dirname(joeynmt.__file__))')/builders.py"
  touch "$venv/bin/joeynmt-ready" && chmod +x "$venv/bin/joeynmt-ready"
fi
py=$venv/bin/python

# Joint BPE, 8,000 pieces, on the training data of both languages (seqkd's vocab is the same size).
if [[ ! -f $work/spm.model ]]; then
  "$py" - "$data" "$work" <<'PY'
import sys, sentencepiece as spm
data, work = sys.argv[1:3]
spm.SentencePieceTrainer.train(
    input=f"{data}/train.en,{data}/train.de", model_prefix=f"{work}/spm", vocab_size=8000,
    model_type="bpe", character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1)
with open(f"{work}/spm.vocab") as f, open(f"{work}/vocab.txt", "w") as out:
    for line in f:
        piece = line.split("\t")[0]
        if piece != "<unk>":
            out.write(piece + "\n")
PY
fi

cat > "$work/config.yaml" <<YAML
name: "multi30k-ende-rnn"
joeynmt_version: "2.3.0"
model_dir: "$work/model"
use_cuda: False
data:
    train: "$data/train"
    dev: "$data/val"
    test: "$data/test2016"
    dataset_type: "plain"
    sample_dev_subset: 500
    src: {lang: "en", level: "bpe", lowercase: False, max_length: 100, voc_file: "$work/vocab.txt",
          tokenizer_type: "sentencepiece", tokenizer_cfg: {model_file: "$work/spm.model"}}
    trg: {lang: "de", level: "bpe", lowercase: False, max_length: 100, voc_file: "$work/vocab.txt",
          tokenizer_type: "sentencepiece", tokenizer_cfg: {model_file: "$work/spm.model"}}
testing:
    beam_size: 5
    beam_alpha: 1.0
    batch_size: 4096
    batch_type: "token"
    eval_metrics: ["bleu"]
    sacrebleu_cfg: {tokenize: "13a"}
training:
    random_seed: 1
    optimizer: "adam"
    adam_betas: [0.9, 0.999]
    learning_rate: ${JOEY_LR:-0.001}
    learning_rate_min: 1.0e-6
    clip_grad_norm: 5.0
    label_smoothing: 0.1
    batch_size: ${JOEY_BATCH_TOKENS:-2048}
    batch_type: "token"
    normalization: "tokens"
    scheduling: "plateau"
    patience: 3
    decrease_factor: 0.5
    epochs: 1000
    validation_freq: 500
    logging_freq: 100
    early_stopping_metric: "ppl"
    keep_best_ckpts: 1
    overwrite: True
    shuffle: True
    print_valid_sents: [0]
model:
    initializer: "xavier_uniform"
    bias_initializer: "zeros"
    embed_initializer: "normal"
    embed_init_weight: 0.1
    lstm_forget_gate: 1.0
    tied_embeddings: True
    tied_softmax: True
    encoder:
        type: "recurrent"
        rnn_type: "lstm"
        embeddings: {embedding_dim: 256, scale: False}
        hidden_size: 128
        bidirectional: True
        dropout: 0.3
        num_layers: 2
    decoder:
        type: "recurrent"
        rnn_type: "lstm"
        embeddings: {embedding_dim: 256, scale: False}
        hidden_size: 256
        dropout: 0.3
        hidden_dropout: 0.3
        num_layers: 2
        input_feeding: True
        init_hidden: "bridge"
        attention: "luong"
YAML

cd "$work"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
start=$(date +%s)
# The budget: training is stopped after MINUTES (JoeyNMT has no time limit of its own).
timeout --signal=INT "$((minutes * 60))" "$py" -m joeynmt train config.yaml --skip-test || true
echo "joeynmt-rnn: trained for $(( $(date +%s) - start )) s"
grep -h "Epoch\|Validation result\|tokens per sec\|Tokens per Sec" model/train.log | tail -5 || true

for beam in 1 5; do
  sed "s/beam_size: 5/beam_size: $beam/" config.yaml > "test-beam$beam.yaml"
  "$py" -m joeynmt test "test-beam$beam.yaml" --output-path "$work/hyp.beam$beam" > /dev/null 2>&1
  echo "== beam $beam: $work/hyp.beam$beam.test"
  "$venv/bin/sacrebleu" "$data/test2016.de" -i "$work/hyp.beam$beam.test" -m bleu chrf -b -w 2
done
