"""One run per workdir, nothing dropped on resume, a signal during the first compile.

Two launches on one workdir, same or different configs, at once or one after the other:
exactly one runs; the other stops at once with one ``error:`` paragraph that names the
holder. A SIGKILLed holder never blocks the next run (the kill drills resume through the
lock every round). A row damaged in the middle of ``metrics.jsonl`` is kept aside and
named when the run resumes; every other row survives.
"""

import json
import re
import signal

import pytest

from tests.reliability import drill

SHORT = ("--config=configs/adding.py:smoke", "--config.train.num_steps=40",
         "--config.train.log_every=2", "--config.train.checkpoint_every=4")


def _refused(child, workdir) -> str:
    rc, err = child.wait(), child.stderr
    assert rc == 1, (rc, err[-2000:])
    assert drill.no_traceback(err), err
    message = drill.error_paragraph(err)
    assert re.search(rf"workdir {re.escape(str(workdir))} is in use by another run \(pid \d+ on "
                     r"host \S+, since [\d\-T:]+\)", message), message
    assert "] step" not in child.stdout  # it trained nothing
    return message


@pytest.mark.slow  # CLI drill (14-18 s)
def test_two_simultaneous_launches_same_config_exactly_one_runs(cache_dir, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    children = [drill.Child(drill.cli(workdir, *SHORT), str(cache_dir), logs) for _ in range(2)]
    codes = sorted(c.wait() for c in children)
    assert codes == [0, 1], [c.stderr[-1500:] for c in children]
    loser = next(c for c in children if c.proc.returncode == 1)
    winner = next(c for c in children if c.proc.returncode == 0)
    _refused(loser, workdir)
    steps = [r["step"] for r in drill.metrics(workdir)]
    assert steps == sorted(set(steps)) and steps[-1] == 40  # one run's rows, each once
    assert json.loads((workdir / "summary.json").read_text())["steps"] == 40
    assert f"pid {winner.proc.pid} " in loser.stderr


@pytest.mark.slow  # a long first run (36 s); refusing another config's checkpoints is checked below
def test_a_second_config_started_later_is_refused_and_the_first_run_is_untouched(
        cache_dir, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    first = drill.Child(drill.cli(workdir, *SHORT, "--config.train.num_steps=200"),
                        str(cache_dir), logs)
    assert drill.wait_for(first, lambda: first.progress() >= 2), first.stderr[-2000:]
    second = drill.Child(drill.cli(workdir, *SHORT, "--config.model.hidden=4"), str(cache_dir),
                         logs)
    _refused(second, workdir)
    assert first.alive()
    assert first.wait() == 0, first.stderr[-2000:]
    assert json.loads((workdir / "config.json").read_text())["model"]["hidden"] == 8
    assert json.loads((workdir / "summary.json").read_text())["steps"] == 200
    # after the holder ended, the workdir is free again: the first command resumes (and
    # finds the run finished)
    rc, again = drill.run(drill.cli(workdir, *SHORT, "--config.train.num_steps=200"),
                          str(cache_dir), logs)
    assert rc == 0 and "resuming" in again.stdout, again.stderr[-2000:]


@pytest.mark.slow  # a restart of the reference run (21 s)
def test_a_damaged_middle_row_is_kept_aside_and_named(reference, cache_dir, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    rc, _ = drill.run(drill.cli(workdir, *drill.DRILL_ARGS, "--config.train.num_steps=20"),
                      str(cache_dir), logs)
    assert rc == 0
    lines = drill.raw_metrics_lines(workdir)
    damaged_step = json.loads(lines[3])["step"]
    lines[3] = lines[3][: len(lines[3]) // 2] + "#"  # a complete line that no longer parses
    (workdir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    rc, resumed = drill.run(drill.cli(workdir, *drill.DRILL_ARGS), str(cache_dir), logs)
    assert rc == 0, resumed.stderr[-2000:]
    asides = list(workdir.glob("metrics.jsonl.corrupt-*"))
    assert len(asides) == 1 and asides[0].read_text().splitlines()[3] == lines[3]
    assert re.search(r"warning: \S+metrics\.jsonl has 1 damaged line\(s\) \(line 4\); the file "
                     r"as it was is kept in \S+metrics\.jsonl\.corrupt-\d+-\d+", resumed.stderr)
    # every other row is there, equal to the uninterrupted run's
    expected = [r for r in drill.metrics(reference["a"]["workdir"]) if r["step"] != damaged_step]
    assert drill.metrics(workdir) == expected


def test_sigterm_during_the_first_compile_stops_before_the_first_evaluation(cache_dir,
                                                                           tmp_path):
    """The signal arrives while the train step compiles (which cannot be interrupted): the
    run stops right after the compile, before evaluating step 0, with no checkpoint."""
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    child = drill.Child(drill.cli(workdir, *SHORT, module="tests.reliability.signal_main"),
                        str(cache_dir), logs,
                        extra_env={"SEQJAX_DRILL_SIGNAL_AT_COMPILE": str(int(signal.SIGTERM))})
    rc, out, err = child.wait(), child.stdout, child.stderr
    assert rc == 128 + signal.SIGTERM, err[-2000:]
    assert drill.no_traceback(err), err
    assert "compiled the train step" in out and "eval @" not in out
    assert "SIGTERM received; stopped after step 0, no step was trained yet" in err
    assert drill.complete_steps(workdir) == []


@pytest.mark.slow  # CLI drill (14-18 s)
def test_checkpoints_of_another_config_give_one_paragraph_that_says_so(cache_dir, tmp_path):
    """A workdir whose config.json no longer matches its checkpoints (edited by hand, or
    written by another run): the restore fails on every checkpoint; the terminal gets one
    paragraph with advice for that cause, the tracebacks go to restore.log."""
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    rc, _ = drill.run(drill.cli(workdir, *SHORT, "--config.train.num_steps=8"), str(cache_dir),
                      logs)
    assert rc == 0
    config = json.loads((workdir / "config.json").read_text())
    config["model"]["hidden"] = 4
    (workdir / "config.json").write_text(json.dumps(config))
    rc, child = drill.run(drill.cli(workdir, *SHORT, "--config.model.hidden=4"), str(cache_dir),
                          logs)
    err = child.stderr
    assert rc == 1 and drill.no_traceback(err) and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: no checkpoint in {workdir}/checkpoints restores (step 8: ")
    assert "is not compatible with the stored shape" in err
    assert "they were not written with this config" in err and "old code" not in err
    assert "Traceback" in (workdir / "restore.log").read_text()
