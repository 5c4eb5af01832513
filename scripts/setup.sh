#!/usr/bin/env bash
# Makes libtorch 2.13.0 (what tch 0.26 links against) available to cargo as ./.libtorch.
#
# Order of preference: an existing ./.libtorch; the torch 2.13.0 of $SEQKD_PYTHON or of python3 on
# PATH; otherwise a venv ./.venv made once with `pip install torch==2.13.0` (the PyPI wheel: ~4.7 GB
# with its CUDA libraries, a few minutes; the CPU-only wheel from PyTorch's own index works too).
# Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
want=2.13.0

torch_dir_of() { # python -> torch package dir, if it has torch $want
  "$1" - <<PY 2>/dev/null
import os, torch
assert torch.__version__.split('+')[0] == "$want", torch.__version__
print(os.path.dirname(torch.__file__))
PY
}

if [ -f .libtorch/lib/libtorch_cpu.so ] && grep -q "__version__ = '$want" .libtorch/version.py 2>/dev/null; then
  exit 0
fi

dir=""
for py in "${SEQKD_PYTHON:-}" python3 .venv/bin/python; do
  [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
  dir=$(torch_dir_of "$py") && break || dir=""
done

if [ -z "$dir" ]; then
  echo "setup: installing torch==$want into .venv (once; several GB)..." >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  for attempt in 1 2 3; do
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==$want" && break
    echo "setup: pip failed (attempt $attempt), retrying..." >&2
    sleep 5
  done
  dir=$(torch_dir_of .venv/bin/python) || { echo "setup: torch $want could not be installed" >&2; exit 1; }
fi

ln -sfn "$dir" .libtorch
echo "setup: using libtorch from $dir" >&2
