"""The errors a run stops with, each carrying a message a user can act on."""

from __future__ import annotations

import signal


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient) became NaN/Inf; raised with the step and what to try.

    ``diverged``: {run directory: first non-finite step} of the runs that hit it.
    """

    def __init__(self, message: str, diverged: dict | None = None):
        super().__init__(message)
        self.diverged = dict(diverged or {})


class SweepDivergedError(NonFiniteLossError):
    """Some sweep members hit NaN/Inf; the other members ran to the end."""


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; the run stopped with a checkpoint of ``step`` (if step > 0)."""

    def __init__(self, signum: int, step: int, checkpoint_dir: str, saved: bool):
        self.signum, self.step, self.checkpoint_dir, self.saved = signum, step, checkpoint_dir, saved
        where = (f"checkpoint of step {step} saved in {checkpoint_dir}" if saved else
                 "no step was trained yet, so there is no checkpoint")
        super().__init__(f"{signal.Signals(signum).name} received; stopped after step {step}, "
                         f"{where}")


class StorageError(RuntimeError):
    """The workdir could not be written (disk full, read-only, no permission)."""


class WorkdirInUse(RuntimeError):
    """Another live process holds the workdir's lock."""
