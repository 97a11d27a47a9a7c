#!/usr/bin/env bash
# Set up on first use, then run the main experiment. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m experiments.gradient_flow "$@"
