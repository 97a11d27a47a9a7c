"""The figure and report command lines as a user meets them: a directory that is no run, a run
that has only just started, a comparison of runs of different tasks, and one of two cells.
Every refusal is one ``error: ...`` line on stderr with exit status 1, never a traceback."""

import importlib
import os
import shutil
import subprocess
import sys

import pytest

from seqjax import plots, report, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(module, *args):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def smoke(task, **model):
    c = importlib.import_module(f"configs.{task}").get_config("smoke")
    c.train.num_steps = c.train.eval_every = c.train.checkpoint_every = 2
    c.train.diagnostics_every = 0
    c.model.update(model)
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished smoke runs: adding with an LSTM (and a copy of it: same label), adding with a
    GRU, temporal order (headline metric accuracy, not mse)."""
    root = tmp_path_factory.mktemp("runs")
    for name, task, model in (("lstm", "adding", {"cell": "lstm"}),
                              ("gru", "adding", {"cell": "gru"}),
                              ("order", "temporal_order", {})):
        train.train_and_evaluate(smoke(task, **model), str(root / name))
    shutil.copytree(root / "lstm", root / "lstm again")
    return root


@pytest.mark.parametrize("module", ["experiments.figures", "experiments.report"])
def test_not_a_run_directory(module, tmp_path):
    assert_one_error(cli(module, tmp_path), str(tmp_path), "is not a run directory",
                     "config.json", "sweep.json")
    if module == "experiments.figures":  # one check of a missing path is enough (3 s a call)
        assert_one_error(cli(module, tmp_path / "missing"), "does not exist")


@pytest.mark.parametrize("module", ["experiments.figures", "experiments.report"])
def test_run_that_has_just_started(module, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    assert_one_error(cli(module, tmp_path), str(tmp_path), "no config.json yet",
                     "try again shortly")


@pytest.mark.slow  # trains three runs
def test_comparison_needs_out_and_one_metric(runs, tmp_path):
    a, b = runs / "lstm", runs / "order"
    assert_one_error(cli("experiments.figures", a, b), "--out")
    line = assert_one_error(cli("experiments.figures", a, b, f"--out={tmp_path / 'cmp'}"),
                            f"{a} (eval mse)", f"{b} (eval accuracy)")
    assert "headline metrics differ" in line
    assert not (tmp_path / "cmp").exists() and not (a / "figures").exists()


@pytest.mark.slow  # trains three runs
def test_comparison_of_two_cells_goes_to_out_with_distinct_labels(runs, tmp_path):
    dirs = [runs / "lstm", runs / "lstm again", runs / "gru"]
    out = tmp_path / "cmp"
    proc = cli("experiments.figures", *dirs, f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    assert os.path.getsize(out / "learning_curves.png") > 10_000
    assert not any((d / "figures").exists() for d in dirs)  # each run's own figures untouched
    labels = [r["label"] for r in plots.unique_labels([plots.load_run(str(d)) for d in dirs])]
    assert labels == [f"LSTM (forget bias 1) [{dirs[0]}]", f"LSTM (forget bias 1) [{dirs[1]}]",
                      "GRU"]


@pytest.mark.slow  # trains three runs
def test_report_quotes_a_logdir_with_spaces(runs, capsys):
    report.print_report(str(runs / "lstm again"))
    assert f"tensorboard --logdir '{runs / 'lstm again'}'" in capsys.readouterr().out
