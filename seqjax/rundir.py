"""The run directory: the names of its files, and how to find the runs under a workdir.

A run directory holds ``config.json``, ``metrics.jsonl``, TensorBoard events,
``checkpoints/`` and, once finished, ``summary.json``; a sweep member that stopped on
NaN/Inf also holds ``diverged.json``. A sweep's workdir holds ``sweep.json`` (its members,
each a run directory below it) and the sweep's ``summary.json``; a vmapped group of
members keeps its shared checkpoints in ``<workdir>/<group>/`` with ``group.json``.
Figures and reports read runs through this module, without importing the trainer.
"""

from __future__ import annotations

import json
import os

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
DIVERGED_FILE = "diverged.json"  # a sweep member that stopped on NaN/Inf (removed by a rerun)
SWEEP_FILE = "sweep.json"
GROUP_FILE = "group.json"
CHECKPOINTS_DIR = "checkpoints"
FIGURES_DIR = "figures"

# The per-timestep ‖∂L/∂h_t‖ vector in a metrics row.
HIDDEN_NORMS = "grad/hidden_norms"


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(os.path.abspath(run_dir), CHECKPOINTS_DIR)


def is_sweep(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, SWEEP_FILE))


def run_dirs(workdir: str) -> list[str]:
    """The run directories under ``workdir``: its sweep members, or itself."""
    path = os.path.join(workdir, SWEEP_FILE)
    if os.path.exists(path):
        with open(path) as f:
            return [os.path.join(workdir, m) for m in json.load(f)["members"]]
    return [workdir]
