#!/usr/bin/env bash
# Set up on first use, then run the test suite (slow tests excluded; add -m slow for those).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -q -n auto "$@"
