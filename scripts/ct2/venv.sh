#!/usr/bin/env bash
# Creates .venv-ct2 at the repo root with scripts/ct2/requirements.txt installed (CTranslate2,
# tokenizers, numpy, sacrebleu). Idempotent: a no-op when the venv already satisfies the file.
# Usage: bash scripts/ct2/venv.sh   then   .venv-ct2/bin/python scripts/ct2/export.py ...
set -euo pipefail
cd "$(dirname "$0")/../.."
req=scripts/ct2/requirements.txt
venv=.venv-ct2
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x $venv/bin/python ] && [ "$(cat $stamp 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x $venv/bin/python ] || python3 -m venv $venv
for attempt in 1 2 3; do
  if $venv/bin/pip install --quiet --disable-pip-version-check -r "$req"; then
    echo "$want" >$stamp
    exit 0
  fi
  echo "ct2 venv: pip failed (attempt $attempt), retrying..." >&2
  sleep 5
done
echo "ct2 venv: could not install $req" >&2
exit 1
