"""Checkpoints of a run: the orbax manager, an integrity digest, restore with fallback to
the previous checkpoint, and what a storage error means for the user.

Each checkpoint holds the train state (arrays, ``StandardSave``) and a JSON item with the
data iterators' positions, the unlogged part of the logging window, the run's wall time and
a CRC-32 of the state's arrays (orbax reads flipped bits back without complaint; the digest
notices them). orbax writes a checkpoint into ``<step>.orbax-checkpoint-tmp`` and renames it
when done, so a kill at any moment leaves only complete checkpoints listed; what a killed
save left is cleaned up by the next manager. A newest checkpoint that does not restore is
reported, moved aside to ``<step>.corrupt-<stamp>``, and the one before it is used.
"""

from __future__ import annotations

import datetime
import errno
import gc
import os
import re
import sys
import traceback
import warnings
import zlib
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from seqjax import rundir

# errno values that mean "this storage cannot take the run's files".
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                  errno.EFBIG, errno.ENOTDIR)


def digest(tree) -> str:
    """CRC-32 of every array of ``tree`` (bytes, dtype, shape)."""
    crc = 0
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        a = np.ascontiguousarray(leaf)
        crc = zlib.crc32(f"{a.dtype}{a.shape}".encode() + a.tobytes(), crc)
    return f"{crc:08x}"


def storage_errno(e: BaseException) -> tuple[int | None, str | None]:
    """(errno, file) of an OSError, or of the tensorstore error orbax raises instead
    (``ValueError('RESOURCE_EXHAUSTED: Error writing local file "...": ... [os_error_code='28']')``),
    looked for along the exception's causes."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            return e.errno, e.filename
        code = re.search(r"os_error_code='?(\d+)", str(e))
        if code:
            path = re.search(r'local file "([^"]+)"', str(e))
            return int(code.group(1)), path.group(1) if path else None
        e = e.__cause__ or e.__context__
    return None, None


def complete_steps(ckpt_dir: str) -> list[int]:
    """Steps of the finished checkpoints in ``ckpt_dir`` (orbax renames a step's directory
    to its bare number only once every file is written)."""
    try:
        return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
    except OSError:
        return []


def latest_params(run_dir: str) -> tuple[int, Any]:
    """(step, params) of the newest checkpoint of a run directory, for scripts that evaluate
    a finished run (figures, probes). Read without a target structure (nested dicts of
    arrays) and without the trainer's digest check and fallback (``Checkpointer.restore``)."""
    directory = rundir.checkpoint_dir(run_dir)
    if not complete_steps(directory):
        raise ValueError(f"{run_dir} has no checkpoint to evaluate (none in {directory})")
    manager = ocp.CheckpointManager(directory, item_names=("state", "data"))
    try:
        step = manager.latest_step()
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
    finally:
        manager.close()
    return step, restored["state"]["params"]


def run_config(run_dir: str):
    """The ConfigDict of a run directory's config.json (cheap: reads no data, no checkpoint),
    for a script that checks what a run is before loading it."""
    import json

    import ml_collections

    path = os.path.join(run_dir, rundir.CONFIG_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir}: no {rundir.CONFIG_FILE} in it (not a run directory)")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def trained_model(run_dir: str):
    """(config, task, model, step, params) of a run directory's newest checkpoint: the run's
    config.json, its task (which reads its data and vocabulary), the flax module the trainer
    built (``task.build_model`` or ``models.build_model``) and the parameters."""
    import ml_collections

    from seqjax import models
    from seqjax.tasks import get_task_class

    config = run_config(run_dir)
    step, params = latest_params(run_dir)
    task = get_task_class(config.task.name)(config)
    model_config = ml_collections.FrozenConfigDict(config.model)
    model = (task.build_model(model_config) if hasattr(task, "build_model")
             else models.build_model(model_config, task.input_spec()))
    return config, task, model, step, params


def storage_message(code: int, filename: str | None, run_dir: str) -> str:
    """What failed, the newest checkpoint to resume from, and what to do."""
    ckpt_dir = rundir.checkpoint_dir(run_dir)
    steps = complete_steps(ckpt_dir)
    fix = {errno.ENOSPC: "Free some space (or move the workdir to another disk)",
           errno.EDQUOT: "Free some space (or move the workdir to another disk)",
           errno.EFBIG: "Free some space (or move the workdir to another disk)",
           errno.ENOTDIR: "A parent of the workdir is a file: choose another --workdir"
           }.get(code, "Make it writable (or choose a --workdir elsewhere)")
    what = f"cannot write {filename or run_dir}: {os.strerror(code)}."
    if steps:
        return (f"{what} The run stopped; its newest complete checkpoint is step "
                f"{steps[-1]} in {ckpt_dir}. {fix}, then rerun the same command to "
                f"resume from it.")
    return f"{what} {fix}, then run again (no checkpoint was written: it starts at step 0)."


RESTORE_LOG = "restore.log"


def _short(e: BaseException) -> str:
    """The first sentence of an error, for one line on the terminal."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text.split('. ')[0][:200]}"


def _no_restore_message(directory: str, failures, log_path: str) -> str:
    steps = ", ".join(str(s) for s, _ in failures)
    reasons = "; ".join(f"step {s}: {_short(e)}" for s, e in failures)
    if all("shape" in str(e) for _, e in failures):
        advice = ("They hold arrays of other shapes than this config's model: they were not "
                  "written with this config (config.json was changed, or another run wrote "
                  "here). Use another --workdir, or --config.train.resume=False to move the "
                  "old run aside and start anew.")
    elif all(isinstance(e, (ValueError, OSError)) and "checksum" in str(e) or
             isinstance(e, FileNotFoundError) for _, e in failures):
        advice = ("They are damaged (files missing or changed since they were written). Move "
                  "them aside, or start anew with --config.train.resume=False.")
    else:
        advice = ("If seqjax was updated since they were written, resume them with the version "
                  "that wrote them; else start anew with --config.train.resume=False (which "
                  "moves the old run aside) or use another --workdir.")
    return (f"no checkpoint in {directory} restores ({reasons}). {advice} The full errors are "
            f"in {log_path}.")


class _DetailsTo:
    """Within the block, library tracebacks and warnings (orbax's unawaited coroutines,
    reported when they are collected, as an unraisable exception or as a RuntimeWarning
    "coroutine ... was never awaited") and the restore errors go to a log file instead of
    stderr. After a failed restore, the coroutines of the failed reads may be collected later
    still (as the process exits): the hooks then stay, sending those to the log and anything
    else to the hooks they replaced."""

    def __init__(self, path: str):
        self.path, self._previous, self.failed = path, None, False
        self._previous_warning = None

    def _write(self, text: str) -> None:
        try:
            with open(self.path, "a") as f:
                f.write(text.rstrip() + "\n\n")
        except OSError:  # a read-only workdir: the details are lost, the message is not
            pass

    def exception(self, what: str, e: BaseException) -> None:
        self.failed = True
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        self._write(f"[{stamp}] {what} does not restore:\n" +
                    "".join(traceback.format_exception(e)))

    def _unraisable(self, unraisable) -> None:
        if self._depth == 0 and "coroutine" not in repr(unraisable.object):
            return self._previous(unraisable)
        self._write(f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n" +
                    "".join(traceback.format_exception(unraisable.exc_value)))

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        if self._depth == 0 and "coroutine" not in str(message):
            return self._previous_warning(message, category, filename, lineno, file, line)
        self._write(warnings.formatwarning(message, category, filename, lineno, line))

    def __enter__(self):
        self._previous, sys.unraisablehook, self._depth = sys.unraisablehook, self._unraisable, 1
        self._previous_warning, warnings.showwarning = warnings.showwarning, self._warning
        return self

    def __exit__(self, *exc):
        gc.collect()  # most of the failed reads' coroutines report here, into the log
        self._depth = 0
        if not self.failed:
            sys.unraisablehook = self._previous
            warnings.showwarning = self._previous_warning


class Checkpointer:
    """The checkpoints of one run directory (or of a vmapped group's shared directory)."""

    def __init__(self, run_dir: str, keep: int, *, is_main: bool = True):
        self.run_dir, self.is_main = run_dir, is_main
        self.directory = rundir.checkpoint_dir(run_dir)
        self.manager = ocp.CheckpointManager(
            self.directory,
            # cleanup: remove what a killed save left (<step>.orbax-checkpoint-tmp)
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                 cleanup_tmp_directories=True),
            item_names=("state", "data"))
        self.last_save: str | None = None  # the directory the newest save writes into

    def save(self, step: int, state, data: dict[str, Any]) -> None:
        """Start saving ``state`` and the JSON ``data`` (orbax finishes in the background)."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data | {"digest": digest(state)})))
        self.last_save = os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp")

    def saved(self, step: int) -> bool:
        return step in complete_steps(self.directory)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    def settle(self) -> None:
        """After an error: let a checkpoint being written finish, so a rerun resumes from it."""
        try:
            self.close()
        except Exception:  # the save itself failed (disk full): it stays incomplete, unused
            pass

    def _restore_step(self, step: int, state, accept: Callable[[dict], None]):
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(state), data=ocp.args.JsonRestore()))
        got = int(np.atleast_1d(jax.device_get(restored["state"].step))[0])
        if got != step:
            raise ValueError(f"it holds the state of step {got}")
        data = restored["data"]
        if "digest" in data and digest(restored["state"]) != data["digest"]:
            raise ValueError("its arrays do not match the checksum saved with them")
        accept(data)
        return restored["state"], data

    def restore(self, state, accept: Callable[[dict], None]):
        """(step, state, data) of the newest checkpoint that restores, or (None, state, {}).

        ``state`` gives the structure; ``accept(data)`` applies the JSON item (iterator
        positions) and raises if it does not fit. A checkpoint that fails is reported in one
        line and, once an older one restored, moved aside so that its step can be saved
        again. If none restores, nothing is moved and one paragraph says why and what to
        do. Full tracebacks (orbax and TensorStore print many) go to ``restore.log`` in the
        run directory, never to the terminal.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        failures = []
        with _DetailsTo(os.path.join(self.run_dir, RESTORE_LOG)) as details:
            for step in steps:
                try:
                    restored, data = self._restore_step(step, state, accept)
                except Exception as e:  # orbax/tensorstore raise many types for damaged files
                    details.exception(f"checkpoint step {step} in {self.directory}", e)
                    failures.append((step, e))
                    continue
                for bad, e in failures:
                    print(f"warning: checkpoint step {bad} in {self.directory} does not restore "
                          f"({_short(e)}); falling back to step {step}", file=sys.stderr,
                          flush=True)
                self._move_aside([bad for bad, _ in failures])
                return step, restored, data
        if failures:
            raise ValueError(_no_restore_message(self.directory, failures, details.path))
        return None, state, {}

    def _move_aside(self, bad_steps: list[int]) -> None:
        if not bad_steps or not self.is_main:
            return
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for bad in bad_steps:
            aside = os.path.join(self.directory, f"{bad}.corrupt-{stamp}")
            os.rename(os.path.join(self.directory, str(bad)), aside)
            print(f"warning: moved the damaged checkpoint to {aside}", file=sys.stderr)
        self.manager.reload()
