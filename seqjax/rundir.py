"""The run directory: the names of its files, and how to find the runs under a workdir.

A run directory holds ``config.json``, ``metrics.jsonl``, TensorBoard events,
``checkpoints/`` and, once finished, ``summary.json``; a sweep member that stopped on
NaN/Inf also holds ``diverged.json``. A sweep's workdir holds ``sweep.json`` (its members,
each a run directory below it) and the sweep's ``summary.json``; a vmapped group of
members keeps its shared checkpoints in ``<workdir>/<group>/`` with ``group.json``.
Figures and reports read runs through this module, without importing the trainer.

A run holds ``run.lock`` in its workdir for its whole life (``locked``): a POSIX record lock
(``fcntl.lockf``) that the kernel releases when the process ends, however it ends, so a lock
left by a killed run never blocks a restart. The file names the holder (pid, host, start).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket

from seqjax.errors import WorkdirInUse

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
DIVERGED_FILE = "diverged.json"  # a sweep member that stopped on NaN/Inf (removed by a rerun)
SWEEP_FILE = "sweep.json"
GROUP_FILE = "group.json"
CHECKPOINTS_DIR = "checkpoints"
FIGURES_DIR = "figures"
LOCK_FILE = "run.lock"

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


def _holder(path: str) -> str:
    try:
        with open(path) as f:
            h = json.load(f)
        return f"pid {h['pid']} on host {h['host']}, since {h['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # being written by its holder
        return "a process that is starting"


@contextlib.contextmanager
def locked(workdir: str):
    """Hold ``workdir``'s lock for the block; a second process (on this host or, on a
    file system with working POSIX locks, another) gets ``WorkdirInUse`` at once, naming
    the holder. On NFS this needs the server's lock manager (NFSv4, or v3 with lockd)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise WorkdirInUse(
            f"workdir {workdir} is in use by another run ({_holder(path)}). Wait for it to "
            f"finish (or stop it: it resumes from its checkpoint when run again), or choose "
            f"another --workdir.") from None
    try:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": stamp}).encode())
            os.fsync(fd)
        except OSError as e:  # a full disk: name the file
            raise OSError(e.errno, e.strerror, path) from e
        yield path
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)  # the only descriptor of the file in this process (POSIX locks drop
        # when any of a process's descriptors of the file closes)
