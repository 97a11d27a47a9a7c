"""One writer for a run: metrics.jsonl, TensorBoard events (tensorboardX), config.json.

Only process 0 writes (``enabled``); other processes get a writer that does nothing.
metrics.jsonl holds one JSON object per logged step: ``{"step": n, "train/...": ...,
"eval/...": ..., "grad/...": ...}``. On resume from step s, lines with step > s (written
by the interrupted run after its last checkpoint) are dropped, and TensorBoard events
from step s + 1 on are purged, so the logs read as those of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


def _jsonable(v: Any):
    if isinstance(v, (np.ndarray, list, tuple)) or hasattr(v, "shape") and np.ndim(v) > 0:
        return [_jsonable(x) for x in np.asarray(v).tolist()]
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan" / "inf": valid JSON, still readable
    return v


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it is good
    return rows


class Writer:
    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int | None = None):
        self.workdir, self.enabled = workdir, enabled
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        path = os.path.join(workdir, "metrics.jsonl")
        if resume_step is not None:
            keep = [r for r in read_metrics(workdir) if r.get("step", -1) <= resume_step]
            with open(path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in keep)
        elif os.path.exists(path):
            os.remove(path)
        self._jsonl = open(path, "a")
        from tensorboardX import SummaryWriter
        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(logdir=workdir, purge_step=purge, flush_secs=10)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """Scalars and per-timestep vectors for one step: one JSON line, TB scalars."""
        if not self.enabled or not metrics:
            return
        row = {"step": int(step)} | {k: _jsonable(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        for k, v in metrics.items():
            if np.ndim(v) == 0:
                self._tb.add_scalar(k, float(v), int(step))

    def histograms(self, step: int, arrays: dict[str, Any]) -> None:
        if self.enabled:
            for k, v in arrays.items():
                self._tb.add_histogram(k, np.asarray(v, np.float32).ravel(), int(step))

    def image(self, step: int, tag: str, rgb_HxWx3: np.ndarray) -> None:
        if self.enabled:
            self._tb.add_image(tag, rgb_HxWx3, int(step), dataformats="HWC")

    def text(self, step: int, tag: str, text: str) -> None:
        if self.enabled:
            self._tb.add_text(tag, text, int(step))

    def flush(self) -> None:
        if self.enabled:
            self._jsonl.flush()
            self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
            self.enabled = False
