"""The trainer end to end on the smoke configs: logs, checkpoints, resume, NaN, TensorBoard."""

import glob
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from seqjax import train
from seqjax.writer import read_metrics
from seqjax.tasks.adding import AddingTask

CONFIG_FILES = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(os.path.dirname(__file__), "..", "configs", "*.py")) if "__init__" not in p)


def load_config(name, variant="smoke"):
    return importlib.import_module(f"configs.{name}").get_config(variant)


def timing_free(rows):
    """metrics rows without wall-clock fields (the only things allowed to differ)."""
    return [{k: v for k, v in r.items() if k != "train/steps_per_sec"} for r in rows]


@pytest.fixture(scope="module")
def adding_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("adding"))
    summary = train.train_and_evaluate(load_config("adding"), workdir)
    return workdir, summary


# ----------------------------------------------------------------- configs


DEFAULT_VARIANTS = ("smoke", "cpu", "gpu", "tpu")
CONFIG_VARIANTS = [(name, v) for name in CONFIG_FILES for v in getattr(
    importlib.import_module(f"configs.{name}"), "VARIANTS", DEFAULT_VARIANTS)]


@pytest.mark.parametrize("name,variant", CONFIG_VARIANTS)
def test_every_config_and_variant_loads_and_validates(name, variant):
    """Every variant a config declares (VARIANTS, default smoke/cpu/gpu/tpu) loads and validates."""
    from seqjax import config as config_lib
    from seqjax.tasks import get_task_class
    c = load_config(name, variant)
    config_lib.validate(c, get_task_class(c.task.name).config_defaults)
    assert importlib.import_module(f"configs.{name}").__doc__.count("python -m experiments.main") >= 1


def test_unknown_variant():
    with pytest.raises(ValueError, match=r"unknown variant 'big'; choose one of: smoke, cpu, gpu, tpu"):
        load_config("adding", "big")


def test_unknown_key_task_and_cell_fail_clearly(tmp_path):
    c = load_config("adding")
    with c.unlocked():
        c.model.hiden = 3
    with pytest.raises(ValueError, match=r"unknown config key 'model.hiden'; did you mean 'model.hidden'\?"):
        train.train_and_evaluate(c, str(tmp_path / "a"))
    c = load_config("adding")
    c.task.name = "adder"
    with pytest.raises(ValueError, match=r"unknown task 'adder'; valid tasks: adding, .*copy, .*temporal_order"):
        train.train_and_evaluate(c, str(tmp_path / "b"))
    c = load_config("adding")
    c.model.cell = "lsmt"
    with pytest.raises(ValueError, match=r"model.cell='lsmt' is not a cell; valid cells: .*lstm"):
        train.train_and_evaluate(c, str(tmp_path / "c"))
    c = load_config("adding")
    c.train.optimizer = "adagrad"
    with pytest.raises(ValueError, match=r"train.optimizer='adagrad' is not allowed; choose one of: adam"):
        train.train_and_evaluate(c, str(tmp_path / "d"))
    c = load_config("adding")
    c.train.batch_size = 0
    with pytest.raises(ValueError, match=r"train.batch_size must be a positive integer, got 0"):
        train.train_and_evaluate(c, str(tmp_path / "e"))


# ----------------------------------------------------------------- a run's outputs


def test_smoke_run_writes_everything(adding_run):
    workdir, summary = adding_run
    for name in ("config.json", "metrics.jsonl", "summary.json"):
        assert os.path.exists(os.path.join(workdir, name))
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["forget_bias"] == 1.0
    assert summary["steps"] == 6 and summary["baseline"] == {"mse": pytest.approx(1 / 6)}
    assert np.isfinite(summary["final_eval"]["mse"])
    rows = read_metrics(workdir)
    assert [r["step"] for r in rows] == [0, 2, 3, 4, 6]
    assert all(k.split("/")[0] in ("step", "train", "eval", "grad") for r in rows for k in r)
    diag = [r for r in rows if "grad/hidden_norms" in r]
    assert [r["step"] for r in diag] == [0, 3, 6]
    assert all(len(r["grad/hidden_norms"]) == 12 + 1 for r in diag)  # t = 0..T
    assert all(r["grad/hidden_norms"][-1] > 0 for r in diag)
    assert "grad/norm/core/layer0/W_h" in diag[0]
    steps = ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).all_steps()
    assert sorted(steps) == [3, 6]


def test_tensorboard_events_hold_scalars_histograms_and_image(adding_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    workdir, _ = adding_run
    acc = EventAccumulator(workdir, size_guidance={"images": 0, "histograms": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "eval/mse", "grad/h0_over_hT"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6]
    assert any(t.startswith("params/core/layer0") for t in tags["histograms"])
    assert any(t.startswith("grads/") for t in tags["histograms"])
    assert "grad/hidden_norms_heatmap" in tags["images"]
    img = acc.Images("grad/hidden_norms_heatmap")[-1]
    assert img.width > 100 and img.height > 100


@pytest.mark.slow  # end to end (14 s each); the CLI refusal is in tests/reliability/test_bad_input.py, the tasks in tests/test_tasks.py
@pytest.mark.parametrize("name", ["temporal_order", "copy"])
def test_other_synthetic_tasks_train(name, tmp_path):
    summary = train.train_and_evaluate(load_config(name), str(tmp_path))
    metric = "accuracy" if name == "temporal_order" else "recall_accuracy"
    assert 0.0 <= summary["final_eval"][metric] <= 1.0
    assert metric in summary["baseline"]


@pytest.mark.parametrize("name", ["copy"])  # many-to-many; the many-to-one head is the simpler path
def test_feedforward_baseline_runs(name, tmp_path):
    c = load_config(name)
    c.model.kind = "feedforward"
    summary = train.train_and_evaluate(c, str(tmp_path))
    assert summary["model"] == "feedforward" and summary["steps"] == 6
    assert not any("grad/hidden_norms" in r for r in read_metrics(str(tmp_path)))


def test_vanishing_sweep_runs_both_cells_and_draws_figures(tmp_path):
    from seqjax import report
    out = train.train_and_evaluate(load_config("vanishing"), str(tmp_path))
    assert set(out["members"]) == {"cell=rnn", "cell=lstm"}
    report.print_report(str(tmp_path))
    for fig in ("learning_curves.png", "gradient_vs_t.png", "gradient_heatmaps.png"):
        assert os.path.getsize(tmp_path / "figures" / fig) > 10_000
    from seqjax import plots  # the cell names a member of a sweep over cells: nothing added
    assert plots.load_run(str(tmp_path / "cell=rnn"))["label"] == "tanh RNN"


# ----------------------------------------------------------------- resume, NaN, workdir


class _Dies(Exception):
    pass


def _patch_iterator(monkeypatch, at_batch, action):
    """Make the adding task's iterator call ``action(batch)`` when batch ``at_batch`` is drawn."""
    original = AddingTask.train_iterator

    def patched(self, seed):
        it = original(self, seed)
        make = it._make

        def make_with_action(key, n):  # KeyedIterator._make(key, batch index)
            batch = make(key, n)
            return action(batch) if it._n == at_batch else batch
        it._make = make_with_action
        return it
    monkeypatch.setattr(AddingTask, "train_iterator", patched)


def test_killed_run_resumes_exactly(adding_run, tmp_path, monkeypatch):
    """Die while drawing the batch of step 5 (after the step-3 checkpoint, with step 4 logged),
    restart on the same workdir: metrics.jsonl equals the uninterrupted run's."""
    def die(batch):
        raise _Dies("killed")
    _patch_iterator(monkeypatch, 4, die)
    with pytest.raises(_Dies):
        train.train_and_evaluate(load_config("adding"), str(tmp_path))
    assert [r["step"] for r in read_metrics(str(tmp_path))][-1] == 4
    monkeypatch.undo()
    before = ocp.CheckpointManager(str(tmp_path / "checkpoints")).restore(3)["data"]["elapsed_s"]
    summary = train.train_and_evaluate(load_config("adding"), str(tmp_path))
    assert timing_free(read_metrics(str(tmp_path))) == timing_free(read_metrics(adding_run[0]))
    # the wall time counts the first session up to its checkpoint too, not only the resumed one
    assert summary["resumed_from"] == 3 and summary["wall_time_s"] > before > 0


def test_nan_stops_with_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    _patch_iterator(monkeypatch, 4, lambda b: b | {"inputs": b["inputs"] * jnp.nan})
    with pytest.raises(train.NonFiniteLossError,
                       match=r"NaN/Inf at step 5 .*tighter gradient clip \(now 1\).*"
                             r"lower learning rate.*step 3"):
        train.train_and_evaluate(load_config("adding"), str(tmp_path))
    mngr = ocp.CheckpointManager(str(tmp_path / "checkpoints"))
    assert mngr.latest_step() == 3
    restored = mngr.restore(3)
    leaves = jax.tree.leaves(restored["state"]["params"])
    assert leaves and all(np.all(np.isfinite(l)) for l in leaves)


def test_skip_nonfinite_counts_and_continues(tmp_path, monkeypatch):
    _patch_iterator(monkeypatch, 4, lambda b: b | {"inputs": b["inputs"] * jnp.nan})
    c = load_config("adding")
    c.train.skip_nonfinite = True
    summary = train.train_and_evaluate(c, str(tmp_path))
    assert summary["nonfinite_steps"] == 1 and summary["steps"] == 6
    assert np.isfinite(summary["final_eval"]["mse"])


@pytest.mark.slow  # end to end (14 s each); the CLI refusal is in tests/reliability/test_bad_input.py, the tasks in tests/test_tasks.py
def test_workdir_of_another_experiment_is_refused(adding_run, tmp_path):
    import shutil
    workdir = str(tmp_path / "run")
    shutil.copytree(adding_run[0], workdir)
    c = load_config("adding")
    c.model.cell = "gru"
    with pytest.raises(ValueError, match=r"holds a run of a different config \(differs in: model.cell\)"):
        train.train_and_evaluate(c, workdir)
    c.train.resume = False
    train.train_and_evaluate(c, workdir)
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["cell"] == "gru"
    assert len(glob.glob(workdir + ".old-*")) == 1  # the old run was moved aside, not lost


def test_histograms_skip_non_finite_values(tmp_path):
    """An exploding gradient (inf) must not crash the run's logging."""
    from seqjax.writer import Writer
    w = Writer(str(tmp_path))
    w.histograms(1, {"grads/all_inf": np.full(4, np.inf), "grads/some": np.array([1.0, np.nan, 2.0])})
    w.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    acc.Reload()
    assert acc.Tags()["histograms"] == ["grads/some"]
    assert acc.Histograms("grads/some")[0].histogram_value.num == 2


@pytest.mark.parametrize("cell", ["mingru", "minlstm", "lru", "lif"])
def test_newer_cells_train_through_the_same_trainer(cell, tmp_path):
    c = load_config("adding")
    c.model.cell = cell
    c.train.num_steps, c.train.eval_every, c.train.diagnostics_every = 2, 0, 0
    c.train.checkpoint_every, c.train.log_every = 0, 1
    summary = train.train_and_evaluate(c, str(tmp_path))
    assert summary["cell"] == cell and summary["steps"] == 2
    assert np.isfinite(summary["final_eval"]["mse"])
    saved = json.load(open(tmp_path / "config.json"))["model"]
    assert {"update_bias", "input_bias", "r_min", "beta", "slope"} <= set(saved)


def test_a_run_from_before_a_schema_field_was_added_still_resumes():
    from seqjax import config as config_lib
    new = load_config("adding").to_dict()
    old = json.loads(json.dumps(new))
    del old["model"]["update_bias"]
    assert config_lib.diff(old, new) == []
    new["model"]["update_bias"] = -4.0
    assert config_lib.diff(old, new) == ["model.update_bias"]


def test_report_command_prints_the_table_of_a_finished_run(adding_run):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "experiments.report", adding_run[0]],
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "final numbers:" in out.stdout and "mse" in out.stdout
    assert os.path.exists(os.path.join(adding_run[0], "figures", "learning_curves.png"))
