"""Running the real CLI (``python -m experiments.main``) as a child process, and watching it.

Every drill starts the trainer the way a user does, then kills, signals, corrupts or starves
it. Children share a persistent JAX compilation cache (``JAX_COMPILATION_CACHE_DIR``), so
after the first child compiles the smoke model the others load it: about 1 s instead of 3-8 s
of a child's start. They inherit the test session's ``XLA_FLAGS`` (tests/conftest.py), and
run on one CPU device (the 8 fake devices of the test session are a ``jax.config`` setting,
not inherited), so every child computes the same way.

Kills are triggered by observed progress (the child's printed ``step N/M`` lines, the
checkpoint directory), never by a sleep alone, so a machine 5x slower only makes them later.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TMP_SUFFIX = ".orbax-checkpoint-tmp"

# The drill run: the adding problem's smoke model, 40 steps, a checkpoint every 4 steps (3
# kept, so old ones are deleted while the run goes on), logs every 2 steps (a checkpoint at
# step 4k+2 falls inside a logging window), eval and gradient diagnostics every 20.
DRILL_ARGS = ("--config=configs/adding.py:smoke", "--config.train.num_steps=40",
              "--config.train.checkpoint_every=4", "--config.train.log_every=2",
              "--config.train.eval_every=20", "--config.train.diagnostics_every=20",
              "--config.train.keep_checkpoints=3")
# Fields that measure the machine, not the run: excluded when runs are compared.
WALL_CLOCK_FIELDS = ("train/steps_per_sec",)


def env(cache_dir: str | os.PathLike) -> dict:
    e = dict(os.environ)
    e.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1", JAX_PLATFORMS="cpu",
             PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
                 [str(REPO)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return e


def cli(workdir, *args, module: str = "experiments.main") -> list[str]:
    return [sys.executable, "-m", module, *args, f"--workdir={workdir}"]


@dataclass
class Child:
    """A child process whose stdout/stderr go to files (no pipe can fill and block it)."""
    cmd: list
    cache_dir: str
    logdir: Path
    extra_env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.logdir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.logdir.glob("*.out")))
        self.out_path, self.err_path = self.logdir / f"{n}.out", self.logdir / f"{n}.err"
        self._out, self._err = open(self.out_path, "w"), open(self.err_path, "w")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=env(self.cache_dir) | self.extra_env,
                                     stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def progress(self) -> int:
        """The last training step this child reported (0 if none yet)."""
        steps = re.findall(r"\] step +(\d+)/", self.stdout)
        return int(steps[-1]) if steps else 0

    def resumed_from(self) -> int | None:
        m = re.search(r"^resuming .* from step (\d+)$", self.stdout, re.M)
        return int(m.group(1)) if m else None

    def wait(self, timeout: float = 600) -> int:
        try:
            deadline = time.monotonic() + timeout
            while self.proc.returncode is None:
                pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:  # reap it here, to read its CPU time
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    self.cpu_s = usage.ru_utime + usage.ru_stime
                    self.wall_s = time.monotonic() - self.start
                    _log_cost(self)
                elif time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(self.cmd, timeout)
                else:
                    time.sleep(0.01)
        finally:
            self._out.close()
            self._err.close()
        return self.proc.returncode

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def alive(self) -> bool:
        if self.proc.returncode is not None:
            return False
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid:
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_s = usage.ru_utime + usage.ru_stime
            self.wall_s = time.monotonic() - self.start
            _log_cost(self)
            return False
        return True


def _log_cost(child: Child) -> None:
    """``SEQJAX_DRILL_COSTS=<file>``: one JSON line per child (CPU and wall seconds)."""
    path = os.environ.get("SEQJAX_DRILL_COSTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"cmd": " ".join(child.cmd[2:])[:160], "cpu_s": round(child.cpu_s, 2),
                                "wall_s": round(child.wall_s, 2), "rc": child.proc.returncode})
                    + "\n")


def run(cmd, cache_dir, logdir, timeout: float = 600, **kw) -> tuple[int, Child]:
    child = Child(list(cmd), str(cache_dir), Path(logdir), **kw)
    return child.wait(timeout), child


def run_all(cmds: dict, cache_dir, logdir, parallel: int = 2, timeout: float = 600) -> dict:
    """{name: (rc, Child)} of independent children, ``parallel`` at a time. ``cmds``:
    {name: argv, or (argv, extra environment)}."""
    todo, running, done = list(cmds.items()), {}, {}
    deadline = time.monotonic() + timeout
    while todo or running:
        while todo and len(running) < parallel:
            name, cmd = todo.pop(0)
            cmd, extra = cmd if isinstance(cmd, tuple) else (cmd, {})
            running[name] = Child(list(cmd), str(cache_dir), Path(logdir) / name, extra)
        for name, child in list(running.items()):
            if not child.alive():
                done[name] = (child.wait(), child)
                del running[name]
        if time.monotonic() > deadline:
            for child in running.values():
                child.send(signal.SIGKILL)
            raise TimeoutError(f"children still running after {timeout} s: {list(running)}")
        time.sleep(0.02)
    return done


def wait_for(child: Child, condition, timeout: float = 300, poll: float = 0.002) -> bool:
    """Poll ``condition()`` until it holds (True) or the child exits (False)."""
    deadline = time.monotonic() + timeout
    while child.alive():
        if condition():
            return True
        if time.monotonic() > deadline:
            child.send(signal.SIGKILL)
            raise TimeoutError(f"{child.cmd}: condition not met in {timeout} s")
        time.sleep(poll)
    return False


def config_json(args) -> str:
    """The config.json a run of ``args`` (``--config=file:variant``, ``--config.x.y=v``)
    writes, made without running it."""
    import ast
    import runpy
    from seqjax import config as config_lib
    path, _, variant = next(a for a in args if a.startswith("--config="))[9:].partition(":")
    config = runpy.run_path(str(REPO / path))["get_config"](variant)
    for a in args:
        if a.startswith("--config."):
            *parents, leaf = a[9:].split("=", 1)[0].split(".")
            node = config
            for part in parents:
                node = node[part]
            node[leaf] = type(node[leaf])(ast.literal_eval(a.split("=", 1)[1]))
    return config_lib.to_json(config)


def checkpoint_names(workdir) -> list[str]:
    try:
        return sorted(os.listdir(Path(workdir) / "checkpoints"))
    except FileNotFoundError:
        return []


def complete_steps(workdir) -> list[int]:
    """Finished checkpoints: orbax renames ``<step>.orbax-checkpoint-tmp`` to ``<step>``
    only after every file of it is written."""
    return sorted(int(n) for n in checkpoint_names(workdir) if n.isdigit())


def partial_saves(workdir) -> list[str]:
    return [n for n in checkpoint_names(workdir) if TMP_SUFFIX in n]


def metrics(workdir) -> list[dict]:
    from seqjax.writer import read_metrics
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS}
            for r in read_metrics(str(workdir))]


def raw_metrics_lines(workdir) -> list[str]:
    return (Path(workdir) / "metrics.jsonl").read_text().splitlines()


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text


def error_paragraph(stderr: str) -> str:
    """The ``error: ...`` message the CLI printed (up to a library log line, if one follows)."""
    i = stderr.find("error: ")
    assert i >= 0, f"no 'error:' line in stderr:\n{stderr[-3000:]}"
    lines = stderr[i:].splitlines()
    end = next((n for n, line in enumerate(lines) if n and re.match(r"[EWIF]\d{4} ", line)),
               len(lines))
    return "\n".join(lines[:end]).strip()


class shared_once:
    """A directory made once per test session, even under pytest-xdist (several worker
    processes): the first worker builds it under a file lock, the others wait and reuse."""

    def __init__(self, root: Path, name: str):
        self.root, self.name = Path(root), name

    def get(self, build) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path, done = self.root / self.name, self.root / f"{self.name}.done"
        with open(self.root / f"{self.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not done.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    build(path)
                    done.write_text(json.dumps({"built": time.time()}))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return path


def rng(default_seed: int = 0) -> tuple[random.Random, int]:
    """The drills' random kill moments: ``SEQJAX_DRILL_SEED`` to vary or replay them."""
    seed = int(os.environ.get("SEQJAX_DRILL_SEED", default_seed))
    return random.Random(seed), seed


def can_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(where)], capture_output=True)
    return ok
