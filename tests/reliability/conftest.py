"""Fixtures of the reliability drills: a compilation cache and the uninterrupted reference
runs, each made once per test session (once for all pytest-xdist workers together)."""

import json
import os

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


@pytest.fixture(scope="session")
def reference(shared_root, cache_dir):
    """Three uninterrupted CLI runs of the drill config: ``a`` and ``b`` with seed 0 (the
    kill/signal/corruption drills compare with ``a``; determinism compares ``a`` with ``b``),
    ``c`` with seed 1 and 2 steps (the constant learning rate makes its first rows those of a
    40-step run). Returns {name: {"workdir", "rc", "stdout", "stderr"}}."""
    def build(path):
        cmds = {name: drill.cli(path / name, *drill.DRILL_ARGS, *extra) for name, extra in
                (("a", ()), ("b", ()), ("c", ("--config.seed=1", "--config.train.num_steps=2")))}
        # a alone first: it fills the compilation cache that b, c and every later child load
        done = drill.run_all({"a": cmds.pop("a")}, cache_dir, path / "logs")
        done |= drill.run_all(cmds, cache_dir, path / "logs")
        info = {name: {"workdir": str(path / name), "rc": rc, "stdout": child.stdout,
                       "stderr": child.stderr} for name, (rc, child) in done.items()}
        (path / "runs.json").write_text(json.dumps(info))

    path = drill.shared_once(shared_root, "reference").get(build)
    runs = json.loads((path / "runs.json").read_text())
    for name, r in runs.items():
        assert r["rc"] == 0, f"reference run {name} failed:\n{r['stderr'][-3000:]}"
    return runs
