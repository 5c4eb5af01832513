#!/usr/bin/env bash
# Makes the tiny MarianMTModel teachers of issue 20's tests (see make-tiny.py) in OUT_DIR, with a venv
# of transformers, torch and sentencepiece outside the repository (MARIAN_VENV, default
# ../peers/marian-venv next to the repo). SEQKD_DATA: the shared data (../shared/data).
#
#   scripts/marian/make-tiny.sh crates/nmt/tests/data/marian     # ~10 min on 2 cores
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: make-tiny.sh OUT_DIR}
data=$(cd "${SEQKD_DATA:-$repo/../shared/data}" && pwd)/multi30k
venv=${MARIAN_VENV:-$repo/../peers/marian-venv}
case "$(mkdir -p "$(dirname "$venv")" && cd "$(dirname "$venv")" && pwd)/" in
  "$repo"/*) echo "make-tiny: MARIAN_VENV must be outside the repository" >&2; exit 2;;
esac
if [[ ! -x $venv/bin/marian-ready ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    transformers==5.25.0 sentencepiece==0.2.1 safetensors
  # torch: the one scripts/setup.sh installed for the build (no second 4.7 GB download), else pip's.
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [[ -x $repo/.venv/bin/python ]] && "$repo/.venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.13.0")' 2>/dev/null; then
    "$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/zz-seqkd-torch.pth"
  else
    "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0
  fi
  touch "$venv/bin/marian-ready" && chmod +x "$venv/bin/marian-ready"
fi
"$venv/bin/python" "$repo/scripts/marian/make-tiny.py" "$data" "$out"
# The pickle path of the import: shared-swish as a pytorch_model.bin (make-bin.py).
"$venv/bin/python" "$repo/scripts/marian/make-bin.py" "$out/shared-swish" "$out/shared-swish.bin"
