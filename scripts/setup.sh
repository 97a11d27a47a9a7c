#!/usr/bin/env bash
# Create .venv and install seqjax's requirements on first use, and again whenever
# requirements.txt or pyproject.toml change. Needs only python3 (3.10+) with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "seqjax: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.seqjax-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "seqjax: installing requirements into .venv (about a minute on first use)" >&2
  .venv/bin/python -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" >&2 || true
  # -I: not from the current directory, so a failed editable install is caught here
  .venv/bin/python -I -c "import seqjax, jax, flax, optax" || { echo "seqjax: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
