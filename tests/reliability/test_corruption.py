"""Damaged checkpoints on disk: the run says which, moves it aside and uses the one before.

Starts from a copy of the finished reference run (checkpoints 32, 36, 40): its two newest
are damaged in two ways (one silently: a changed value that only the trainer's checksum
notices; one loudly: a truncated file), so the restart falls back twice, to 32, trains 33..40 again and
ends with the reference's metrics. If no checkpoint restores, the run stops with an error
that lists why for each, and moves nothing.
"""

import shutil
from pathlib import Path

import pytest

from tests.reliability import drill


def rewrite_with_other_values(ckpt_root: Path, step: int) -> None:
    """Rewrite checkpoint ``step`` as a valid orbax checkpoint whose parameters differ in one
    value, beside the original JSON item (and its checksum): the silent kind of damage (a
    flipped bit in array data reads back without any error from orbax)."""
    import jax
    import numpy as np
    import orbax.checkpoint as ocp
    mngr = ocp.CheckpointManager(ckpt_root, item_names=("state", "data"))
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                          data=ocp.args.JsonRestore()))
    state, data = jax.tree.map(np.array, restored["state"]), dict(restored["data"])
    w = state["params"]["core"]["layer0"]["W_h"]
    w.flat[0] = np.nextafter(w.flat[0], np.float32(np.inf))  # one bit of one value
    shutil.rmtree(ckpt_root / str(step))
    mngr.reload()
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            data=ocp.args.JsonSave(data)), force=True)
    mngr.wait_until_finished()
    mngr.close()


def truncate_files(step_dir: Path, pattern: str) -> None:
    for p in step_dir.glob(pattern):
        if p.is_file() and p.name != "commit_success.txt":
            with open(p, "r+b") as f:
                f.truncate(p.stat().st_size // 2)


@pytest.fixture(scope="module")
def runs(reference, cache_dir, tmp_path_factory):
    """Both damaged workdirs, restarted side by side: {name: (rc, child, workdir)}."""
    tmp = tmp_path_factory.mktemp("corruption")
    fallback, none = tmp / "fallback", tmp / "none-restores"
    for workdir in (fallback, none):
        shutil.copytree(reference["a"]["workdir"], workdir)
        assert drill.complete_steps(workdir) == [32, 36, 40]
    rewrite_with_other_values(fallback / "checkpoints", 40)
    truncate_files(fallback / "checkpoints" / "36", "data/*")  # the iterator/JSON item
    for step in (32, 36, 40):
        truncate_files(none / "checkpoints" / str(step), "state/**/d/*")
    before = drill.checkpoint_names(none)
    done = drill.run_all({w.name: drill.cli(w, *drill.DRILL_ARGS) for w in (fallback, none)},
                         cache_dir, tmp / "logs")
    return {name: (rc, child, tmp / name) for name, (rc, child) in done.items()} | \
        {"before": before}


@pytest.mark.slow  # two damaged restarts (47 s); restore.log capture is checked below
def test_corrupt_newest_checkpoints_fall_back_to_the_previous(runs, reference):
    rc, child, workdir = runs["fallback"]
    err = child.stderr
    assert rc == 0, err[-3000:]
    print(err)
    assert "warning: checkpoint step 40 in" in err and "does not restore (ValueError: its " \
        "arrays do not match the checksum saved with them)" in err
    assert "warning: checkpoint step 36 in" in err
    assert child.resumed_from() == 32
    aside = sorted(n for n in drill.checkpoint_names(workdir) if ".corrupt-" in n)
    assert [n.split(".")[0] for n in aside] == ["36", "40"]  # kept, not deleted
    assert drill.complete_steps(workdir) == [32, 36, 40]   # 36 and 40 written again
    assert drill.metrics(workdir) == drill.metrics(reference["a"]["workdir"])


@pytest.mark.slow  # two damaged restarts (47 s); restore.log capture is checked below
def test_no_checkpoint_restores_is_an_error_and_moves_nothing(runs):
    rc, child, workdir = runs["none-restores"]
    message = drill.error_paragraph(child.stderr)
    print(message)
    assert rc == 1 and drill.no_traceback(child.stderr)
    assert message.startswith(f"error: no checkpoint in {workdir}/checkpoints restores (step "
                              f"40: ")
    assert all(f"; step {s}: " in message for s in (36, 32))
    # one paragraph on the terminal; orbax's and TensorStore's tracebacks go to restore.log
    assert child.stderr.strip() == message and "warning:" not in child.stderr
    assert message.endswith(f"The full errors are in {workdir}/restore.log.")
    assert (workdir / "restore.log").read_text().count("Traceback") >= 3
    assert "--config.train.resume=False" in message
    assert drill.checkpoint_names(workdir) == runs["before"]


def test_unawaited_coroutine_warnings_of_a_failed_restore_go_to_the_log(tmp_path):
    """A failed read's coroutine may be reported as a RuntimeWarning rather than as an
    unraisable exception, and late (when it is collected): into restore.log, not stderr."""
    import warnings

    from seqjax.checkpoint import _DetailsTo
    log, shown = tmp_path / "restore.log", []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
        with _DetailsTo(str(log)) as details:
            details.exception("checkpoint step 3", ValueError("damaged"))
        warnings.warn("coroutine 'read' was never awaited", RuntimeWarning)  # after the block
        warnings.warn("something else", UserWarning)
    assert shown == ["something else"]
    text = log.read_text()
    assert "ValueError: damaged" in text and "RuntimeWarning: coroutine 'read' was never" in text
