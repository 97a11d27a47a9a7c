"""Fixtures of the reliability drills: a compilation cache and the uninterrupted reference
runs, each made once per test session (once for all pytest-xdist workers together)."""

import json
import os
import threading

import pytest

from tests.reliability import drill


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory):
    """A directory of this test session that every xdist worker sees (its own basetemp
    without xdist; the workers' common parent with it)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return root / "reliability-shared"


@pytest.fixture(scope="session")
def cache_dir(shared_root):
    path = shared_root / "jax-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build_reference(path, cache_dir):
    cmds = {name: drill.cli(path / name, *drill.DRILL_ARGS, *extra) for name, extra in
            (("a", ()), ("b", ()), ("c", ("--config.seed=1", "--config.train.num_steps=2")))}
    # a alone first: it fills the compilation cache that b, c and every later child load
    done = drill.run_all({"a": cmds.pop("a")}, cache_dir, path / "logs")
    done |= drill.run_all(cmds, cache_dir, path / "logs")
    info = {name: {"workdir": str(path / name), "rc": rc, "stdout": child.stdout,
                   "stderr": child.stderr} for name, (rc, child) in done.items()}
    (path / "runs.json").write_text(json.dumps(info))


@pytest.fixture(scope="session", autouse=True)
def _reference_started(request, shared_root, cache_dir):
    """Starts the reference runs in the background as the first drill starts (if a selected
    test needs them), so the bad-input children (which need neither them nor much of the
    cache) run meanwhile."""
    box = {}
    if not any("reference" in item.fixturenames for item in request.session.items):
        yield None, box
        return

    def build():
        try:
            box["path"] = drill.shared_once(shared_root, "reference").get(
                lambda path: _build_reference(path, cache_dir))
        except BaseException as e:  # re-raised by the fixture that waits for it
            box["error"] = e
    thread = threading.Thread(target=build, name="reference-runs", daemon=True)
    thread.start()
    yield thread, box
    thread.join()


@pytest.fixture(scope="session")
def reference(_reference_started):
    """Three uninterrupted CLI runs of the drill config: ``a`` and ``b`` with seed 0 (the
    kill/signal/corruption drills compare with ``a``; determinism compares ``a`` with ``b``),
    ``c`` with seed 1 and 2 steps (the constant learning rate makes its first rows those of a
    40-step run). Returns {name: {"workdir", "rc", "stdout", "stderr"}}."""
    thread, box = _reference_started
    assert thread is not None, "the reference runs were not started"
    thread.join()
    if "error" in box:
        raise box["error"]
    runs = json.loads((box["path"] / "runs.json").read_text())
    for name, r in runs.items():
        assert r["rc"] == 0, f"reference run {name} failed:\n{r['stderr'][-3000:]}"
    return runs
