"""NaN/Inf in a real process: the CLI stops, names the step and the last good checkpoint
(no traceback); with ``train.skip_nonfinite`` the same workdir resumes from that checkpoint,
skips the bad step and counts it."""

import json

import pytest

from tests.reliability import drill

NAN_AT_STEP_5 = {"SEQJAX_DRILL_NAN_BATCH": "4"}  # see nan_main.py
ARGS = drill.DRILL_ARGS + ("--config.train.diagnostics_every=0",)  # not needed here: faster


def nan_cli(workdir, *extra):
    return drill.cli(workdir, *ARGS, *extra, module="tests.reliability.nan_main")


@pytest.fixture(scope="module")
def runs(cache_dir, tmp_path_factory):
    """The two diverging runs, side by side: {name: (rc, child, workdir)}."""
    tmp = tmp_path_factory.mktemp("nonfinite")
    cmds = {"nan-batch": (nan_cli(tmp / "nan-batch"), NAN_AT_STEP_5),
            "huge-lr": drill.cli(tmp / "huge-lr", *ARGS,
                                 "--config.train.learning_rate=1e30", "--config.train.grad_clip=0",
                                 "--config.train.checkpoint_every=1", "--config.train.log_every=1")}
    done = drill.run_all(cmds, cache_dir, tmp / "logs")
    return {name: (rc, child, tmp / name) for name, (rc, child) in done.items()}


def test_nan_batch_stops_then_resumes_skipping_it(runs, cache_dir, tmp_path):
    rc, child, workdir = runs["nan-batch"]
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr)
    assert message.startswith(f"error: loss or gradient became NaN/Inf at step 5 (run: {workdir} "
                              f"at step 5); the parameters were not updated with it.")
    assert "--config.train.skip_nonfinite=True" in message
    assert f"Last good checkpoint: step 4 in {workdir}/checkpoints" in message
    assert drill.complete_steps(workdir) == [4]  # nothing saved after the NaN
    rc, child = drill.run(nan_cli(workdir, "--config.train.skip_nonfinite=True"), cache_dir,
                          tmp_path / "logs", extra_env=NAN_AT_STEP_5)
    assert rc == 0, child.stderr[-3000:]
    assert child.resumed_from() == 4
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["nonfinite_steps"] == 1
    rows = drill.metrics(workdir)
    assert all(r["train/nonfinite_steps"] == (1 if r["step"] >= 5 else 0)
               for r in rows if "train/nonfinite_steps" in r)
    assert all(isinstance(r[k], float) for r in rows for k in r if k.startswith("eval/"))


def test_huge_learning_rate_stops_at_the_step_it_diverges(runs):
    rc, child, workdir = runs["huge-lr"]
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr)
    assert message.startswith("error: loss or gradient became NaN/Inf at step 2 ")
    assert "a lower learning rate (now 1e+30)" in message
    assert f"Last good checkpoint: step 1 in {workdir}/checkpoints" in message
