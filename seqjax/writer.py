"""One writer for a run: metrics.jsonl and TensorBoard events (tensorboardX).

Only process 0 writes (``enabled``); other processes get a writer that does nothing.
metrics.jsonl holds one JSON object per logged step: ``{"step": n, "train/...": ...,
"eval/...": ..., "grad/...": ...}``. On resume from step s, lines with step > s (written
by the interrupted run after its last checkpoint) are dropped, and TensorBoard events
from step s + 1 on are purged, so the logs read as those of an uninterrupted run.
Rewrites are atomic (a temporary file, then a rename): a kill mid-rewrite leaves the old
file whole. A run that starts from step 0 again (killed before its first checkpoint)
drops the event files of the attempt before, as it drops its metrics.jsonl.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import sys
from typing import Any

import numpy as np

from seqjax import rundir


def _jsonable(v: Any):
    if isinstance(v, (np.ndarray, list, tuple)) or hasattr(v, "shape") and np.ndim(v) > 0:
        return [_jsonable(x) for x in np.asarray(v).tolist()]
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan" / "inf": valid JSON, still readable
    return v


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: never half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _tensorboardx():
    """tensorboardX, imported without torch: it imports torch when installed (2-3 s of CPU
    per run, torch being here only for benchmarks), and we only hand it numpy arrays."""
    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        import tensorboardX
        return tensorboardX
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which it handles
    try:
        import tensorboardX
    finally:
        del sys.modules["torch"]
    return tensorboardX


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, rundir.METRICS_FILE)
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
    """metrics.jsonl + TensorBoard events of one run. Everything is written (and flushed) in
    the caller's thread, so a full or read-only disk raises an OSError naming the file in
    the training loop; after one, the writer writes nothing more (see ``_sync_events``)."""

    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int | None = None):
        self.workdir, self.enabled = workdir, enabled
        self._tb = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        path = self._path = os.path.join(workdir, rundir.METRICS_FILE)
        for name in (rundir.METRICS_FILE, rundir.CONFIG_FILE, rundir.SUMMARY_FILE):  # a killed atomic_write's
            for stale in glob.glob(os.path.join(workdir, f"{name}.tmp-*")):
                os.remove(stale)
        if resume_step is not None:
            keep = [r for r in read_metrics(workdir) if r.get("step", -1) <= resume_step]
            atomic_write(path, "".join(json.dumps(r) + "\n" for r in keep))
        else:
            for old in [path] + glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
                if os.path.exists(old):
                    os.remove(old)
        self._jsonl = open(path, "a")
        purge = None if resume_step is None else resume_step + 1
        self._tb = _tensorboardx().SummaryWriter(logdir=workdir, purge_step=purge,
                                                 flush_secs=10)
        self._events = _sync_events(self._tb)

    @contextlib.contextmanager
    def _io(self, path: str | None):
        try:
            yield
        except OSError as e:
            self._abandon()
            raise OSError(e.errno, e.strerror or str(e), e.filename or path) from e

    def _abandon(self) -> None:
        """After a failed write: stop, without another try at the buffered bytes (at exit
        they would fail again and print a traceback)."""
        self.enabled = False
        for f in (self._jsonl, _raw_file(self._events)):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        try:
            self._events._closed = True  # its atexit close() and add_event() do nothing
            self._events._worker.stop()
        except (AttributeError, OSError):
            pass

    def _events_path(self) -> str | None:
        return getattr(getattr(self._events, "_ev_writer", None), "_file_name", None)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """Scalars and per-timestep vectors for one step: one JSON line, TB scalars."""
        if not self.enabled or not metrics:
            return
        row = {"step": int(step)} | {k: _jsonable(v) for k, v in metrics.items()}
        with self._io(self._path):
            self._jsonl.write(json.dumps(row) + "\n")
            self._jsonl.flush()
        with self._io(self._events_path()):
            for k, v in metrics.items():
                if np.ndim(v) == 0:
                    self._tb.add_scalar(k, float(v), int(step))
            self._tb.flush()

    def histograms(self, step: int, arrays: dict[str, Any]) -> None:
        if self.enabled:
            with self._io(self._events_path()):
                for k, v in arrays.items():
                    v = np.asarray(v, np.float32).ravel()
                    v = v[np.isfinite(v)]  # an exploding gradient overflows to inf
                    if not v.size:  # (tensorboardX refuses an empty histogram)
                        continue
                    try:
                        self._tb.add_histogram(k, v, int(step))
                    except ValueError:  # values spanning ~1e38 overflow its binning
                        pass

    def image(self, step: int, tag: str, rgb_HxWx3: np.ndarray) -> None:
        if self.enabled:
            with self._io(self._events_path()):
                self._tb.add_image(tag, rgb_HxWx3, int(step), dataformats="HWC")

    def text(self, step: int, tag: str, text: str) -> None:
        if self.enabled:
            with self._io(self._events_path()):
                self._tb.add_text(tag, text, int(step))

    def flush(self) -> None:
        if self.enabled:
            with self._io(self._path):
                self._jsonl.flush()
                self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            with self._io(self._path):
                self._jsonl.close()
                self._tb.close()
            self.enabled = False


def _sync_events(tb):
    """Make tensorboardX write events in the caller's thread.

    tensorboardX queues events for a writer thread; when a write fails (disk full) that
    thread dies with a traceback and the next ``add_*`` blocks forever on the full queue: a
    run that hangs instead of stopping. Writing through to the file instead (its writer is
    locked, so the thread's periodic flush stays safe; with nothing queued it never writes)
    makes the error reach the caller. Returns tensorboardX's EventFileWriter.
    """
    events = getattr(getattr(tb, "_get_file_writer", lambda: None)(), "event_writer", None)
    direct = getattr(getattr(events, "_ev_writer", None), "write_event", None)
    if direct is not None:
        events.add_event = direct
    return events


def _raw_file(events):
    writer = getattr(getattr(events, "_ev_writer", None), "_py_recordio_writer", None)
    return getattr(writer, "_writer", None)


# viridis at 9 evenly spaced points, interpolated linearly in between
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], np.float64)


def heatmap_rgb(steps, mat, min_size: int = 256) -> np.ndarray:
    """An RGB image (H, W, 3) uint8 of log10 ‖∂L/∂h_t‖ over (training step, t), for
    TensorBoard: t runs left to right, training steps bottom to top, viridis from the
    smallest (dark) to the largest (yellow) finite value; overflowed entries are black.
    Drawn with numpy alone, so training never loads a plotting library."""
    mat = np.asarray(mat, np.float64).reshape(len(steps), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log10(np.maximum(mat, 1e-30))
    finite = np.isfinite(logm)
    lo, hi = (logm[finite].min(), logm[finite].max()) if finite.any() else (0.0, 1.0)
    u = np.where(finite, (logm - lo) / max(hi - lo, 1e-12), 0.0) * (len(_VIRIDIS) - 1)
    i = np.clip(np.floor(u).astype(int), 0, len(_VIRIDIS) - 2)
    rgb = _VIRIDIS[i] + (u - i)[..., None] * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    rgb = np.where(finite[..., None], rgb, 0.0)[::-1]  # first logged step at the bottom
    sy = max(1, -(-min_size // rgb.shape[0]))
    sx = max(1, -(-min_size // rgb.shape[1]))
    return np.repeat(np.repeat(rgb, sy, axis=0), sx, axis=1).round().astype(np.uint8)
