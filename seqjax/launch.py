"""Launchers: where the jobs of a sweep (one per lone member or vmapped group) run.

``inprocess`` (the default) trains them one after another in this process (seqjax.sweep).
``local`` runs ``workers`` of them at once on this machine, each in its own process pinned
to its share of the cores; ``slurm`` submits them as ONE array job (at most ``workers`` at
once) with a partition, a time limit, GPUs and CPUs per task. Both go through submitit:
each job is a fresh Python process that unpickles ``group_job`` and its arguments, trains,
and pickles back the summaries; the parent waits, and ``seqjax.sweep`` records each outcome
as it arrives, exactly as an in-process sweep does.

The launcher is a setting of the machine, not of the experiment: it is the command-line
flag ``--launcher`` (``--launcher=local --launcher.workers=2``), never part of config.json,
and changing it between a run and its resumption changes nothing a run computes.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from typing import Any, Callable, Iterator

import ml_collections
from absl import flags
from ml_collections import config_flags

from seqjax import sweep
from seqjax.errors import TrainingInterrupted

KINDS = ("inprocess", "local", "slurm")
LOCAL_TIMEOUT_MIN = 60 * 24 * 365        # a local job has no time limit but the user's


def defaults(kind: str = "inprocess") -> ml_collections.ConfigDict:
    """The fields of ``--launcher``: one ConfigDict, whatever the kind."""
    return ml_collections.ConfigDict({
        "kind": kind,
        "workers": 0,        # jobs at once; local: 0 = one per core; slurm: 0 = no limit
        "partition": "",     # slurm: --partition ("" = the cluster's default)
        "time": 24 * 60,     # slurm: --time in minutes, per job
        "gpus": 0,           # slurm: GPUs per task (--gpus-per-node, one task per job)
        "cpus": 0,           # slurm: --cpus-per-task (0 = the cluster's default)
        "account": "",       # slurm: --account ("" = the user's default)
        "setup": "",         # slurm: shell lines before the job, ';'-separated (module load ...)
        "folder": "",        # submitit's scripts and logs ("" = <workdir>/launcher)
    })


def check(launcher) -> None:
    if launcher.kind not in KINDS:
        raise ValueError(f"--launcher={launcher.kind}: choose one of {', '.join(KINDS)}")
    if launcher.workers < 0:
        raise ValueError(f"--launcher.workers={launcher.workers}: must be 0 (auto) or more")


class SweepInterrupted(TrainingInterrupted):
    """SIGTERM/SIGINT reached the parent of launched jobs: the running jobs were told to
    checkpoint and stop; a rerun resumes them."""

    def __init__(self, signum: int, workdir: str, running: int):
        Exception.__init__(self, f"{signal.Signals(signum).name} received; {running} running "
                                 f"sweep job(s) were told to save a checkpoint and stop "
                                 f"(logs in {workdir})")
        self.signum, self.step, self.checkpoint_dir, self.saved = signum, 0, workdir, True


# --------------------------------------------------------------------------- in the job


def core_shares(workers: int, cores: list[int] | None = None) -> list[list[int]]:
    """The cores of each of ``workers`` slots: contiguous, as equal as can be; with more
    workers than cores, slots share cores round-robin."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else list(cores)
    if workers >= len(cores):
        return [[cores[k % len(cores)]] for k in range(workers)]
    size, extra = divmod(len(cores), workers)
    shares, start = [], 0
    for k in range(workers):
        n = size + (k < extra)
        shares.append(cores[start:start + n])
        start += n
    return shares


def pin(cores: list[int]) -> None:
    """This process on ``cores`` only. Must run before the first JAX computation: XLA's
    CPU backend sizes its thread pools from the affinity mask when it starts (importing
    jax does not start it), so a worker's pools fit its share. Nothing else is changed:
    ``--xla_cpu_multi_thread_eigen=false`` changes the last bits of results (Eigen's single-
    threaded contraction sums in another order), and TensorFlow's
    ``intra_op_parallelism_threads`` is no XLA flag (XLA stops on it)."""
    os.sched_setaffinity(0, cores)


def group_job(train_job: Callable, runs: list[tuple[Any, str]], group_dir: str | None,
              cores: list[int] | None) -> dict:
    """One job, in its own process: ``train_job(runs, group_dir)`` (seqjax.train.sweep_job)
    on ``cores``, its outcome as ``sweep.job_outcome`` gives it (anything but NaN/Inf
    raises, and reaches the parent through submitit). Unpickling ``train_job`` imported jax,
    but XLA's backend starts only at the first computation, after ``pin``."""
    if cores:
        pin(cores)
    return sweep.job_outcome(train_job, runs, group_dir)


# --------------------------------------------------------------------------- in the parent


def error_line(e: BaseException) -> str:
    """The last ``SomethingError: ...`` line of a job's traceback (submitit sends the text)."""
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    errors = [l for l in lines if re.match(r"^[\w.]*(Error|Exception|Interrupted): ", l)]
    return errors[-1] if errors else (lines[-1] if lines else type(e).__name__)


def outcome(job) -> dict:
    """A finished job's result, or {"failed": error line, "log": its stderr file}."""
    try:
        return job.result()
    except Exception as e:  # the job raised, was killed, or timed out
        return {"failed": error_line(e), "log": str(job.paths.stderr)}


def slurm_executor(launcher, folder: str):
    import submitit
    executor = submitit.SlurmExecutor(folder=folder)
    params = dict(job_name="seqjax-sweep", time=int(launcher.time), ntasks_per_node=1,
                  array_parallelism=int(launcher.workers) or 256)
    params |= {k: launcher[k] for k in ("partition", "account") if launcher[k]}
    params |= {k: int(launcher[f]) for k, f in (("cpus_per_task", "cpus"),
                                                 ("gpus_per_node", "gpus")) if launcher[f]}
    if launcher.setup:
        params["setup"] = [line.strip() for line in launcher.setup.split(";") if line.strip()]
    executor.update_parameters(**params)
    return executor


def local_workers(launcher) -> int:
    return launcher.workers or len(os.sched_getaffinity(0))


def runner(launcher, train_job: Callable) -> Callable | None:
    """The ``run_jobs`` that seqjax.sweep.run_sweep takes; None in process."""
    if launcher is None or launcher.kind == "inprocess":
        return None
    check(launcher)
    return lambda jobs, workdir: run_jobs(launcher, train_job, jobs, workdir)


def run_jobs(launcher, train_job: Callable, jobs: list[tuple[list, str | None]],
             workdir: str) -> Iterator[tuple[int, dict]]:
    """Runs ``train_job`` on each of ``jobs`` ([(runs, group_dir)]) with ``launcher``;
    yields (job index, outcome) in the order they finish. SIGTERM/SIGINT: the running jobs
    are told to checkpoint and stop, then ``SweepInterrupted``."""
    folder = launcher.folder or os.path.join(workdir, "launcher")
    running: dict = {}
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: received.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        how = _local if launcher.kind == "local" else _slurm
        source = how(launcher, train_job, jobs, folder, running, received)
        yield from source
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise SweepInterrupted(received[0], folder, len(running))


def _local(launcher, train_job, jobs, folder, running, received):
    """A rolling window of ``workers`` submitit local jobs, each pinned to its slot's cores."""
    import submitit
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
    workers = local_workers(launcher)
    shares = core_shares(workers)
    print(f"[sweep] {len(jobs)} job(s), {workers} at a time, cores {shares} (logs in "
          f"{folder})", flush=True)
    free, pending = list(range(workers)), list(enumerate(jobs))
    while (pending and not received) or running:
        while pending and free and not received:
            slot = free.pop(0)
            index, (runs, group_dir) = pending.pop(0)
            # SIGINT ignored while submitting: the job's controller inherits that, so a
            # Ctrl-C reaches the trainer alone and lets it save (the controller would kill it)
            handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                job = executor.submit(group_job, train_job, runs, group_dir, shares[slot])
            finally:
                signal.signal(signal.SIGINT, handler)
            running[job] = (index, slot)
        if received:
            _stop_local(running)
            return
        time.sleep(0.2)
        for job in [j for j in running if j.done()]:
            index, slot = running.pop(job)
            free.append(slot)
            yield index, outcome(job)


def _stop_local(running: dict, grace_s: float = 60.0) -> None:
    """Each job told to checkpoint and stop: SIGTERM to its submitit controller, which
    forwards it (a second signal, such as the Ctrl-C the job got too, is then ignored by
    the job: submitit's handlers). A job not yet in its training loop ignores it; after
    ``grace_s`` what still runs is killed (its last periodic checkpoint stays)."""
    processes = [job._process for job in running if job._process is not None]
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            _kill_tree(process.pid)
            process.wait()


def _kill_tree(pid: int) -> None:
    """SIGKILL to ``pid`` and its descendants (Linux: /proc/<pid>/task/*/children)."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
        except OSError:
            pass
    for child in children:
        _kill_tree(child)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _slurm(launcher, train_job, jobs, folder, running, received):
    """ONE array job; polled (through submitit's rate-limited sacct watcher) until done."""
    executor = slurm_executor(launcher, folder)
    n = len(jobs)
    submitted = executor.map_array(group_job, [train_job] * n, [r for r, _ in jobs],
                                   [g for _, g in jobs], [None] * n)
    print(f"[sweep] submitted array job {submitted[0].job_id.split('_')[0]} "
          f"({len(jobs)} jobs; logs in {folder})", file=sys.stderr, flush=True)
    running.update({job: (i, None) for i, job in enumerate(submitted)})
    while running and not received:
        time.sleep(10)
        for job in [j for j in running if j.done()]:
            yield running.pop(job)[0], outcome(job)
    if received:
        for job in running:
            job.cancel(check=False)


# --------------------------------------------------------------------------- the flag


class KindOrFields(flags.ArgumentParser):
    """``--launcher=local`` (a kind: the defaults with that kind) as well as the dotted
    fields of a config_dict flag (``--launcher.workers=2``), which ml_collections applies
    after the kind; a kind given after a dotted field is refused by ml_collections."""

    def __init__(self, inner: flags.ArgumentParser):
        self.inner = inner

    def parse(self, argument):
        if isinstance(argument, str):
            if argument not in KINDS:
                raise ValueError(f"choose one of {', '.join(KINDS)}")
            argument = defaults(argument)
        return self.inner.parse(argument)

    def flag_type(self) -> str:
        return "launcher kind or fields"


def define_flag(name: str = "launcher") -> flags.FlagHolder:
    """``--launcher``: see ``defaults`` for its fields, docs/scale.md for its use."""
    holder = config_flags.DEFINE_config_dict(
        name, defaults(), f"where a sweep's members run: {' | '.join(KINDS)}, then fields "
        f"(--{name}=local --{name}.workers=2; --{name}=slurm --{name}.partition=gpu "
        f"--{name}.time=120 --{name}.gpus=1 --{name}.cpus=8)")
    flags.FLAGS[name].parser = KindOrFields(flags.FLAGS[name].parser)
    return holder
