"""One writer for a run: metrics.jsonl and TensorBoard events (tensorboardX).

Only process 0 writes (``enabled``); other processes get a writer that does nothing.
metrics.jsonl holds one JSON object per logged step: ``{"step": n, "train/...": ...,
"eval/...": ..., "grad/...": ...}``. On resume from step s, lines with step > s (written
by the interrupted run after its last checkpoint) are dropped, and TensorBoard events
from step s + 1 on are purged, so the logs read as those of an uninterrupted run. A line
damaged in the middle of the file is left out of the resumed log, and the file as it was
is kept beside it (``metrics.jsonl.corrupt-<stamp>``) with a warning; a last line cut
short by a kill is simply dropped.
Rewrites are atomic (a temporary file, then a rename): a kill mid-rewrite leaves the old
file whole. A run that starts from step 0 again (killed before its first checkpoint)
drops the event files of the attempt before, as it drops its metrics.jsonl.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import math
import os
import shutil
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
    """Write ``text`` to ``path`` via a temporary file and a rename: never half a file. The
    file and then its directory are fsync'ed, so after a power cut ``path`` holds either the
    old text or the new one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_SECTION = "## step {step}\n\n"


def write_step_section(path: str, step: int, text: str) -> None:
    """Append ``text`` to the markdown file ``path`` as the section ``## step <step>``; the
    sections of this step and later ones already there (written before a restart resumed
    from an earlier checkpoint) are dropped first, so the file reads as one run's."""
    kept = []
    if os.path.exists(path):
        with open(path) as f:
            for part in f.read().split("## step ")[1:]:
                head = part.split("\n", 1)[0]
                if head.isdigit() and int(head) < step:
                    kept.append("## step " + part)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, "".join(kept) + _SECTION.format(step=step) + text.rstrip() + "\n\n")


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def scan_metrics(workdir: str) -> tuple[list[dict], list[int]]:
    """(rows, numbers of the damaged lines) of ``metrics.jsonl``. A last line cut short by
    a kill mid-write is not counted as damage: it is simply not a row yet."""
    path = os.path.join(workdir, rundir.METRICS_FILE)
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        lines = f.read().split("\n")
    rows, damaged = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # a complete line (a newline follows) that does not parse
                damaged.append(number)
    return rows, damaged


def read_metrics(workdir: str) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (damaged lines left out)."""
    return scan_metrics(workdir)[0]


def _keep_damaged_aside(path: str, damaged: list[int]) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = f"{path}.corrupt-{stamp}"
    shutil.copy2(path, aside)
    print(f"warning: {path} has {len(damaged)} damaged line(s) (line "
          f"{', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''}); the "
          f"file as it was is kept in {aside}, and the resumed log keeps every other row",
          file=sys.stderr, flush=True)
    return aside


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
            rows, damaged = scan_metrics(workdir)
            if damaged:
                _keep_damaged_aside(path, damaged)
            keep = [r for r in rows if r.get("step", -1) <= resume_step]
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

    def scalars(self, step: int, scalars: dict[str, Any]) -> None:
        """TensorBoard scalars that stay out of metrics.jsonl (the learning rate)."""
        if self.enabled and scalars:
            with self._io(self._events_path()):
                for k, v in scalars.items():
                    self._tb.add_scalar(k, float(v), int(step))
                self._tb.flush()

    def hparams(self, step: int, hparams: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The run's hyper-parameters and final metrics, for TensorBoard's HParams tab.

        The three hparams summaries (experiment, session start, session end) go into this
        run's own event file (``SummaryWriter.add_hparams`` would make a sub-run of its
        own), and each metric is a scalar at ``step`` under its tag, which the experiment
        names. Values that are not a number, a string or a bool are written as text."""
        if not self.enabled:
            return
        metrics = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
        summaries = _tensorboardx().summary.hparams(
            {k: _hparam_value(v) for k, v in hparams.items()}, metrics)
        with self._io(self._events_path()):
            for summary in summaries:
                self._tb._get_file_writer().add_summary(summary, int(step))
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, int(step))
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


def _hparam_value(v):
    v = v.item() if hasattr(v, "item") else v
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def _raw_file(events):
    writer = getattr(getattr(events, "_ev_writer", None), "_py_recordio_writer", None)
    return getattr(writer, "_writer", None)


# viridis at 9 evenly spaced points, interpolated linearly in between
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], np.float64)


def log10_norms(mat) -> np.ndarray:
    """log10 of gradient norms (floored at 1e-30); overflowed (inf/nan) entries become nan."""
    mat = np.asarray(mat, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log10(np.maximum(mat, 1e-30))
    return np.where(np.isfinite(logm), logm, np.nan)


def heatmap_rgb(steps, mat, min_size: int = 256) -> np.ndarray:
    """An RGB image (H, W, 3) uint8 of log10 ‖∂L/∂h_t‖ over (training step, t), for
    TensorBoard: t runs left to right, training steps bottom to top, viridis from the
    smallest (dark) to the largest (yellow) finite value; overflowed entries are black.
    Drawn with numpy alone, so training never loads a plotting library."""
    logm = log10_norms(np.asarray(mat, np.float64).reshape(len(steps), -1))
    finite = np.isfinite(logm)
    lo, hi = (logm[finite].min(), logm[finite].max()) if finite.any() else (0.0, 1.0)
    u = np.where(finite, (logm - lo) / max(hi - lo, 1e-12), 0.0) * (len(_VIRIDIS) - 1)
    i = np.clip(np.floor(u).astype(int), 0, len(_VIRIDIS) - 2)
    rgb = _VIRIDIS[i] + (u - i)[..., None] * (_VIRIDIS[i + 1] - _VIRIDIS[i])
    rgb = np.where(finite[..., None], rgb, 0.0)[::-1]  # first logged step at the bottom
    sy = max(1, -(-min_size // rgb.shape[0]))
    sx = max(1, -(-min_size // rgb.shape[1]))
    return np.repeat(np.repeat(rgb, sy, axis=0), sx, axis=1).round().astype(np.uint8)
