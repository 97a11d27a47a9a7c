"""SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) on a real training process.

The run saves a checkpoint of the step it had reached, exits with 128 + the signal number
and prints the command that resumes; that printed command, run as printed, resumes from the
saved step. The drill chains them: SIGTERM, resume by the printed command, SIGINT; the logs
so far then equal the uninterrupted run's up to that step. (The kill drill runs a resumed
run to its end.)
"""

import re
import shlex
import signal
import subprocess
import sys

from tests.reliability import drill


def _resume_command(stderr: str) -> list[str]:
    """The printed command (``cd <repo> && python -m experiments.main ...``), as argv."""
    m = re.search(r"To resume, run:\n  cd (\S+) && python (-m experiments\.main .*)$", stderr, re.M)
    assert m, stderr[-2000:]
    assert m.group(1) == str(drill.REPO)
    return [sys.executable, *shlex.split(m.group(2))]


def _interrupt(child, sig, at_step, workdir):
    assert drill.wait_for(child, lambda: child.progress() >= at_step), child.stderr[-2000:]
    child.send(sig)
    rc = child.wait()
    err = child.stderr
    assert rc == 128 + sig, (rc, err[-2000:])
    assert drill.no_traceback(err), err
    m = re.search(rf"{signal.Signals(sig).name} received; stopped after step (\d+), checkpoint "
                  rf"of step \1 saved in {re.escape(str(workdir))}/checkpoints\.", err)
    assert m, err
    step = int(m.group(1))
    assert step >= at_step and step in drill.complete_steps(workdir)
    assert drill.metrics(workdir)[-1]["step"] <= step  # nothing logged past the checkpoint
    return step, _resume_command(err)


def test_sigterm_and_sigint_save_and_print_the_resume_command(reference, cache_dir, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    # --config.train.resume=False on the first command: the printed command must drop it.
    first = drill.Child(drill.cli(workdir, *drill.DRILL_ARGS, "--config.train.resume=False"),
                        str(cache_dir), logs)
    term_step, command = _interrupt(first, signal.SIGTERM, 2, workdir)
    assert "--config.train.resume" not in " ".join(command)
    assert f"--workdir={workdir}" in command

    second = drill.Child(command, str(cache_dir), logs)
    int_step, command = _interrupt(second, signal.SIGINT, term_step + 3, workdir)

    assert second.resumed_from() == term_step
    print(f"SIGTERM after step {term_step}, SIGINT after step {int_step} (resumed from "
          f"{term_step}); resume command: {' '.join(command[1:])}")
    # the SIGTERM checkpoint, off the logging grid (log_every=2), carried the open window
    uninterrupted = [r for r in drill.metrics(reference["a"]["workdir"]) if r["step"] <= int_step]
    assert drill.metrics(workdir) == uninterrupted
    assert (workdir / "checkpoints" / str(int_step)).is_dir()
