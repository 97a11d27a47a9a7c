"""SIGKILL a real training process at random moments, restart it, again and again.

Each round starts ``python -m experiments.main`` on the same workdir and SIGKILLs it at one
of three kinds of moment, chosen at random (``SEQJAX_DRILL_SEED`` replays a sequence):

* ``save``: once the child has completed a checkpoint past its resume point, while it writes
  the next one (a ``<step>.orbax-checkpoint-tmp`` directory exists);
* ``step``: a random 0-8 logged steps after the child completed a checkpoint past its resume
  point, plus a random 0-20 ms (so anywhere: training, logging, evaluating, saving);
* ``startup``: a random 0.1-2.5 s after launch (imports), or as soon as the child says it
  restored a checkpoint (while it rewrites the logs and compiles), or as soon as it says it
  compiled the train step; or 4 steps in, whichever comes first.

Checked after every kill: the next child resumes from the newest complete checkpoint on disk
(never from a partial one, which orbax leaves as ``*.orbax-checkpoint-tmp``); at the end,
no partial checkpoint remains and metrics.jsonl equals the uninterrupted run's bit for bit
(wall-clock fields apart). 3 kills in the default run, 20 with ``-m slow``.
"""

import signal
import time

import pytest

from tests.reliability import drill

MODES = ("save", "step", "startup")


def kill_drill(workdir, args, kills, cache_dir, logdir, *, span=8):
    """Kill ``kills`` children of ``args`` on ``workdir``; returns (log of kills, final child)."""
    rng, seed = drill.rng()
    log = []
    while len(log) < kills:
        before = drill.complete_steps(workdir)
        newest = before[-1] if before else None
        mode = MODES[len(log)] if len(log) < len(MODES) else rng.choice(MODES)
        child = drill.Child(drill.cli(workdir, *args), str(cache_dir), logdir)
        base = newest or 0

        def new_checkpoint():  # this child has completed a checkpoint past its resume point
            steps = drill.complete_steps(workdir)
            return bool(steps) and steps[-1] > base

        if mode == "save":  # the next checkpoint is being written
            hit = drill.wait_for(child, lambda: (new_checkpoint() and drill.partial_saves(workdir))
                                 or child.progress() >= base + 24)
        elif mode == "step":
            hit = drill.wait_for(child, new_checkpoint)
            target = child.progress() + rng.randint(0, span)
            hit = hit and drill.wait_for(child, lambda: child.progress() >= target)
            time.sleep(rng.uniform(0, 0.02))
        else:  # imports, restore and the rewrite of the logs, or compilation
            moment = rng.choice(("launch", "restored", "compiled"))
            delay = rng.uniform(0.1, 2.5)
            marks = {"launch": lambda: time.monotonic() - child.start > delay,
                     "restored": lambda: "resuming " in child.stdout or "compiled" in child.stdout,
                     "compiled": lambda: "compiled the train step" in child.stdout}
            hit = drill.wait_for(child, lambda: marks[moment]() or child.progress() >= base + 4)
            mode = f"startup/{moment}"
        assert hit, (f"seed {seed}: round {len(log)} ({mode}) ended before its kill:\n"
                     f"{child.stderr[-2000:]}")
        saving = drill.partial_saves(workdir)
        child.send(signal.SIGKILL)
        rc = child.wait()
        assert rc == -signal.SIGKILL, (rc, child.stderr[-2000:])
        resumed = child.resumed_from()  # None: killed before it restored, or nothing to restore
        assert resumed is None or resumed == newest, (seed, mode, resumed, newest)
        log.append({"mode": mode, "resume_point": newest, "resumed_from": resumed,
                    "killed_after_step": child.progress(), "saving_at_kill": saving,
                    "partial_left": drill.partial_saves(workdir),
                    "complete_after": drill.complete_steps(workdir)})
    before = drill.complete_steps(workdir)
    rc, final = drill.run(drill.cli(workdir, *args), cache_dir, logdir)
    assert rc == 0, final.stderr[-3000:]
    assert final.resumed_from() == (before[-1] if before else None), (final.stdout, before)
    assert not drill.partial_saves(workdir)
    return log, final


def _report(log):
    for i, k in enumerate(log):
        print(f"kill {i + 1:2d} [{k['mode']:17s}] resumed from {k['resumed_from']}, killed after "
              f"step {k['killed_after_step']}, partial save left: {k['partial_left'] or '-'}, "
              f"complete: {k['complete_after']}")


@pytest.mark.slow  # three restarts (40 s); an exact resume after a kill is checked in tests/test_train.py
def test_three_kills_resume_from_newest_complete_checkpoint(reference, cache_dir, tmp_path):
    workdir = tmp_path / "run"
    log, final = kill_drill(workdir, drill.DRILL_ARGS, 3, cache_dir, tmp_path / "logs")
    _report(log)
    # every child that got as far as restoring took the newest complete checkpoint
    assert all(k["resumed_from"] == k["resume_point"] for k in log if k["resumed_from"] is not None)
    assert drill.metrics(workdir) == drill.metrics(reference["a"]["workdir"])


@pytest.mark.slow
def test_twenty_kills(cache_dir, tmp_path):
    args = drill.DRILL_ARGS + ("--config.train.num_steps=240",)
    rc, ref = drill.run(drill.cli(tmp_path / "reference", *args), cache_dir, tmp_path / "logs")
    assert rc == 0, ref.stderr[-3000:]
    workdir = tmp_path / "run"
    log, final = kill_drill(workdir, args, 20, cache_dir, tmp_path / "logs", span=8)
    _report(log)
    assert len(log) == 20
    assert all(k["resumed_from"] == k["resume_point"] for k in log if k["resumed_from"] is not None)
    assert any(k["partial_left"] for k in log), "no kill landed during a checkpoint write"
    assert drill.metrics(workdir) == drill.metrics(tmp_path / "reference")
