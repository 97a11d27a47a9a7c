"""Two real processes as two hosts: ``--config.distributed=True`` under a (simulated) SLURM
job on this machine, each process with 2 CPU devices, cross-process all-reduce through gloo.

``jax.distributed.initialize()`` reads the SLURM variables itself (coordinator = the first
node of SLURM_STEP_NODELIST, port from SLURM_JOB_ID), exactly as on a cluster; only the
node list (localhost) is ours.
"""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _host_env(rank: int, job_id: int) -> dict:
    env = dict(os.environ)
    env.update(SLURM_JOB_ID=str(job_id), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS="2",
               SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in env.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    return env


def _losses(text: str) -> list[str]:
    return re.findall(r"step +\d+/\d+ +loss (\S+)", text)


def test_two_hosts_train_one_model_and_only_host_0_writes(tmp_path):
    workdir = tmp_path / "run"  # one shared directory, as on a cluster's shared file system
    job_id = random.randrange(1, 1 << 30)
    cmd = [sys.executable, "-m", "experiments.main", "--config=configs/adding.py:smoke",
           "--config.distributed=True", f"--workdir={workdir}"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=_host_env(rank, job_id), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"host {rank}:\n{out[-3000:]}"
    # one program over 4 devices on 2 hosts: both hosts see the same global loss every step
    assert _losses(outs[0]) and _losses(outs[0]) == _losses(outs[1])
    assert "on 4 device(s)" in outs[0]
    # host 0 alone writes: each step once in metrics.jsonl, one summary, the figures
    steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    summary = json.load(open(workdir / "summary.json"))
    assert summary["devices"] == 4 and summary["steps"] == 6
    assert "figures:" in outs[0] and "figures:" not in outs[1]
    assert len(list(workdir.glob("events.out.tfevents.*"))) == 1


def _start_hosts(workdir, *extra):
    job_id = random.randrange(1, 1 << 30)
    cmd = [sys.executable, "-m", "experiments.main", "--config=configs/adding.py:smoke",
           "--config.distributed=True", f"--workdir={workdir}", *extra]
    return [subprocess.Popen(cmd, cwd=REPO, env=_host_env(rank, job_id), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for rank in (0, 1)]


@pytest.mark.slow  # two more host processes; SIGTERM on one host is drilled in tests/reliability/test_signals.py
def test_sigterm_on_one_host_stops_both_at_the_same_step(tmp_path):
    """A preempted host must not leave the other waiting in a collective: the hosts agree
    on stopping at each step boundary, both save and exit with 143."""
    import signal
    import time
    workdir = tmp_path / "run"
    procs = _start_hosts(workdir, "--config.train.num_steps=100000",
                         "--config.train.log_every=1", "--config.train.eval_every=0",
                         "--config.train.diagnostics_every=0")
    lines, deadline = [], time.monotonic() + 300
    for line in procs[0].stdout:  # host 0's progress, read until it is training
        lines.append(line)
        if re.search(r"step +5/", line) or time.monotonic() > deadline:
            break
    procs[1].send_signal(signal.SIGTERM)
    outs = ["".join(lines) + procs[0].communicate(timeout=120)[0],
            procs[1].communicate(timeout=120)[0]]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 143, f"host {rank}:\n{out[-3000:]}"
    stops = [re.search(r"SIGTERM received; stopped after step (\d+)", out) for out in outs]
    assert all(stops), outs
    assert stops[0].group(1) == stops[1].group(1)
    assert (workdir / "checkpoints" / stops[0].group(1)).is_dir()


@pytest.mark.slow  # two more host processes; the lock itself is drilled in tests/reliability/test_workdir.py
def test_a_busy_workdir_stops_every_host(tmp_path):
    from seqjax import rundir
    workdir = tmp_path / "run"
    with rundir.locked(str(workdir)):
        procs = _start_hosts(workdir)
        outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [1, 1], outs
    assert "is in use by another run" in outs[0]
    assert "could not be taken by process 0" in outs[1]
    assert not (workdir / "config.json").exists()
