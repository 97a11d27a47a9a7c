"""One object that owns a run's timing: steps/s, the ETA and the wall time across resumes.

Training steps per second are measured over a logging window with the time spent on
evaluation, diagnostics and checkpoints (``side()``) taken out; the ETA uses the whole
window, side work included. ``elapsed()`` counts every session of the run up to now: its
``state()`` is saved with each checkpoint and handed back to ``resume(state)`` on restart.
"""

from __future__ import annotations

import contextlib
import time


def every(step: int, n: int) -> bool:
    """Whether something done every ``n`` steps (0: never) is due at ``step``."""
    return bool(n) and step % n == 0


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Chrono:
    def __init__(self):
        self.before = 0.0  # wall seconds of the earlier sessions of this run
        self.session_start = time.perf_counter()
        self.start_window()

    def resume(self, state: dict) -> None:
        """Continue the clock of a checkpoint's ``state()`` (nothing for a fresh run)."""
        self.before = float(state.get("elapsed_s", 0.0))

    def start_window(self) -> None:
        self.window_start, self.window_steps, self.side_s = time.perf_counter(), 0, 0.0

    def tick(self) -> None:
        """One training step done."""
        self.window_steps += 1

    @contextlib.contextmanager
    def side(self):
        """Time spent here is not training: it counts for the ETA, not for steps/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.side_s += time.perf_counter() - start

    def end_window(self, steps_left: int) -> tuple[float, float]:
        """(training steps/s, seconds left at the window's pace); starts the next window."""
        elapsed = time.perf_counter() - self.window_start
        rate = self.window_steps / max(elapsed - self.side_s, 1e-9)
        eta = steps_left * max(elapsed, 1e-9) / max(self.window_steps, 1)
        self.start_window()
        return rate, eta

    def elapsed(self) -> float:
        """Wall seconds of every session of this run up to now."""
        return self.before + time.perf_counter() - self.session_start

    def state(self) -> dict:
        return {"elapsed_s": self.elapsed()}
