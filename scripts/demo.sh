#!/usr/bin/env bash
# Set up on first use, then run the headline experiment: tanh RNN vs LSTM on the adding
# problem, with the gradient reaching each timestep measured; figures in runs/vanishing/figures.
# Run again, it finds the finished run and only redraws the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m experiments.main --config=configs/vanishing.py --workdir=runs/vanishing "$@"
