#!/usr/bin/env bash
# The accelerator suite (benchmarks/accelerator_suite.py): at most 8 minutes on one GPU,
# one JSON and one markdown table under --out. PYTHON picks the interpreter (default: the
# project's .venv; on a machine with JAX's CUDA build preinstalled, PYTHON=python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" benchmarks/accelerator_suite.py "$@"
