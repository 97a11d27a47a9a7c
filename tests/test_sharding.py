"""Data parallelism on 8 fake CPU devices, and sweeps trained as one vmapped program.

Tolerances: a sharded step sums the batch in a different order (per-device partial sums
then an all-reduce) and a vmapped step uses batched matmuls, so trajectories agree to
float32 rounding, not bit for bit: rtol 1e-4 on losses and metrics over 6 steps.
"""

import importlib
import json
import os

import jax
import numpy as np
import pytest

from seqjax import config as config_lib, rundir, sharding, sweep, train
from seqjax.writer import read_metrics

RTOL = 1e-4


def smoke(name="adding"):
    return importlib.import_module(f"configs.{name}").get_config("smoke")


def numbers(workdir):
    """Every logged number except timings, as a flat {(step, key): value}."""
    out = {}
    for r in read_metrics(workdir):
        for k, v in r.items():
            if k not in ("step", "train/steps_per_sec") and not isinstance(v, (list, str)):
                out[(r["step"], k)] = v
    return out


def assert_same_numbers(a, b):
    na, nb = numbers(a), numbers(b)
    assert na.keys() == nb.keys()
    for k in na:
        np.testing.assert_allclose(na[k], nb[k], rtol=RTOL, atol=1e-7, err_msg=str(k))


@pytest.mark.all_devices
def test_eight_devices_are_there():
    assert jax.device_count() == 8
    mesh = sharding.make_mesh(None)
    assert mesh.shape == {"data": 8, "model": 1}


def test_sharded_run_equals_single_device_run(tmp_path):
    single, sharded = smoke(), smoke()
    single.mesh.data = 1
    sharded.mesh.data = 8
    s1 = train.train_and_evaluate(single, str(tmp_path / "one"))
    s8 = train.train_and_evaluate(sharded, str(tmp_path / "eight"))
    assert (s1["devices"], s8["devices"]) == (1, 8)
    assert_same_numbers(str(tmp_path / "one"), str(tmp_path / "eight"))


@pytest.mark.all_devices
def test_indivisible_batch_and_bad_mesh_fail_clearly(tmp_path):
    c = smoke()
    c.train.batch_size = 12
    with pytest.raises(ValueError, match=r"batch_size=12 is not divisible by the 8 devices of the mesh's data axis"):
        train.train_and_evaluate(c, str(tmp_path))
    with pytest.raises(ValueError, match=r"mesh.model=3 must be a positive divisor of the device count 8"):
        sharding.make_mesh(type("M", (), {"data": -1, "model": 3})())
    with pytest.raises(ValueError, match=r"mesh.data=16 × mesh.model=1 needs 16 devices; 8 available"):
        sharding.make_mesh(type("M", (), {"data": 16, "model": 1})())


@pytest.mark.all_devices
def test_batch_is_split_over_the_data_axis():
    mesh = sharding.make_mesh(None)
    x = sharding.global_batch({"inputs": np.zeros((16, 5, 2), np.float32)}, mesh)["inputs"]
    assert {tuple(s.data.shape) for s in x.addressable_shards} == {(2, 5, 2)}


def test_vmapped_sweep_members_equal_standalone_runs(tmp_path):
    """Seeds × learning rates in one vmapped program; each member equals its own run."""
    c = smoke()
    c.sweep.seed = [0, 1]
    c.sweep.train = {"learning_rate": [1e-3, 1e-2]}
    c.train.vmap_sweep = "on"  # "auto" would run them one by one on CPU
    out = train.train_and_evaluate(c, str(tmp_path / "sweep"))
    assert len(out["members"]) == 4
    assert all(s["vmapped_members"] == 4 for s in out["members"].values())
    sweep = json.load(open(tmp_path / "sweep" / "sweep.json"))
    assert list(sweep["vmapped_groups"].values()) == [sweep["members"]]
    assert os.path.exists(tmp_path / "sweep" / "summary.json")
    for name, seed, lr in [("seed=1-learning_rate=0.01", 1, 1e-2)]:
        alone = smoke()
        alone.seed, alone.train.learning_rate = seed, lr
        train.train_and_evaluate(alone, str(tmp_path / name))
        assert_same_numbers(str(tmp_path / "sweep" / name), str(tmp_path / name))


@pytest.mark.slow  # several trained members (20-40 s); sweeps and their figures are checked by the tests around it
def test_vanishing_sweep_smoke_draws_vs_T_figures(tmp_path):
    from seqjax import report
    c = smoke("vanishing_sweep")
    c.train.vmap_sweep = "on"
    out = train.train_and_evaluate(c, str(tmp_path))
    assert len(out["members"]) == 4  # 2 arms × 1 seed × 2 lengths
    groups = json.load(open(tmp_path / "sweep.json"))["vmapped_groups"]
    assert sorted(len(m) for m in groups.values()) == [2, 2]  # the forget biases vmapped
    report.print_report(str(tmp_path))
    for fig in ("init_ratio_vs_T.png", "success_vs_T.png", "learning_curves_seeds.png"):
        assert os.path.getsize(tmp_path / "figures" / fig) > 10_000


def test_init_only_run(tmp_path):
    c = smoke()
    c.train.num_steps = 0
    s = train.train_and_evaluate(c, str(tmp_path))
    assert s["steps"] == 0 and np.isfinite(s["final_eval"]["mse"])
    rows = read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == [0] and "grad/hidden_norms" in rows[0]


@pytest.mark.slow  # several trained members (20-40 s); sweeps and their figures are checked by the tests around it
def test_cells_sweep_draws_one_gradient_panel_per_cell(tmp_path):
    from configs import cells as cells_config
    from seqjax import report
    c = smoke("cells")
    c.sweep_arms = cells_config.ARMS[2:3] + cells_config.ARMS[4:5] + cells_config.ARMS[-1:]
    c.sweep.task = {"seq_len": [6]}
    out = train.train_and_evaluate(c, str(tmp_path))
    assert sorted(out["members"]) == ["LIF-seq_len=6", "LSTM-seq_len=6", "minGRU-seq_len=6"]
    from seqjax import plots  # members are named by their arm, not only by their cell
    assert plots.load_run(str(tmp_path / "minGRU-seq_len=6"))["label"] == "minGRU, seq_len=6"
    report.print_report(str(tmp_path))
    for fig in ("gradient_panels_T6.png", "final_by_condition.png"):
        assert os.path.getsize(tmp_path / "figures" / fig) > 10_000


def test_underflowed_ratios_are_an_upper_bound_on_the_float32_floor():
    from seqjax import plots
    mean, under = plots.gmean_ratio([1e-10, 0.0])
    assert under and mean == pytest.approx(np.sqrt(1e-10 * plots.F32_FLOOR))
    assert plots.gmean_ratio([1e-2, 1e-4]) == (pytest.approx(1e-3), False)


def test_a_diverging_sweep_member_does_not_stop_the_others(tmp_path):
    """One arm hits NaN/Inf: it is recorded (diverged.json, counted as a failure), the other
    arm runs to the end, and the sweep then fails naming the diverged member."""
    from seqjax import report
    from seqjax import plots
    c = smoke()
    c.sweep_arms = ("huge lr: model.cell=rnn, train.learning_rate=1e30, train.grad_clip=0.0",
                    "LSTM: model.cell=lstm",
                    "clipped: model.cell=gru, train.learning_rate=1e30, train.grad_clip=1.0")
    c.sweep.task = {"seq_len": [6]}
    with pytest.raises(train.SweepDivergedError, match=r"2 of 3 sweep members stopped on "
                       r"NaN/Inf \(huge_lr-seq_len=6, clipped-seq_len=6\); every other member "
                       r"ran to the end"):
        train.train_and_evaluate(c, str(tmp_path))
    diverged = json.load(open(tmp_path / "huge_lr-seq_len=6" / rundir.DIVERGED_FILE))
    assert diverged["diverged_at"] >= 1 and "NaN/Inf" in diverged["error"]
    # the advice fits the config: clipping when there was none, a tighter clip when there was
    assert "Try gradient clipping (--config.train.grad_clip=1.0)" in diverged["error"]
    clipped = json.load(open(tmp_path / "clipped-seq_len=6" / rundir.DIVERGED_FILE))["error"]
    assert "Try a tighter gradient clip (now 1)" in clipped
    assert json.load(open(tmp_path / "LSTM-seq_len=6" / "summary.json"))["steps"] == 6
    table = plots.sweep_table(plots.load_sweep(str(tmp_path)))
    assert table["huge lr"][6]["success"] == [False] and table["huge lr"][6]["diverged"] == 1
    assert len(table["LSTM"][6]["final"]) == 1
    report.print_report(str(tmp_path))  # the finished member's figures and table still come out


def test_vmap_sweep_auto_vmaps_init_only_sweeps_but_not_cpu_training():
    c = smoke()
    c.sweep.seed = [0, 1]
    members = sweep.sweep_members(c)
    assert [g for g, _ in sweep.sweep_groups(c, members)] == [None, None]  # CPU, training
    c.train.num_steps = 0
    assert [len(m) for _, m in sweep.sweep_groups(c, members)] == [2]
    c.train.num_steps, c.train.vmap_sweep = 6, "on"
    assert [len(m) for _, m in sweep.sweep_groups(c, members)] == [2]
    c.train.vmap_sweep = "yes"
    with pytest.raises(ValueError, match=r"train.vmap_sweep.*'yes'.*auto, on, off"):
        config_lib.validate(c)


def test_a_sweep_whose_members_all_stopped_on_nan_still_draws_their_curves(tmp_path):
    """Vmapped seeds stop together when one hits NaN/Inf, leaving no summary.json at all: the
    learning curves up to that step are still drawn (here the stop is simulated on a sweep
    that finished, by replacing each member's summary with the record a NaN leaves)."""
    from seqjax import plots
    c = smoke()
    c.sweep.seed = [0, 1]
    train.train_and_evaluate(c, str(tmp_path))
    for seed in (0, 1):
        member = tmp_path / f"seed={seed}"
        os.remove(member / "summary.json")
        with open(member / rundir.DIVERGED_FILE, "w") as f:
            json.dump({"diverged_at": 5, "error": "loss or gradient became NaN/Inf"}, f)
    assert all(r["summary"] is None for r in plots.load_sweep(str(tmp_path))["runs"].values())
    paths = plots.sweep_figures(str(tmp_path), str(tmp_path / "figures"))
    assert [os.path.basename(p) for p in paths] == ["learning_curves_seeds.png"]
    assert os.path.getsize(paths[0]) > 10_000


def test_members_stopped_with_a_vmapped_neighbour_are_named_apart_from_the_one_that_hit_nan():
    summaries = {"seed=0": {"diverged_at": None, "stopped_with": ["runs/x/seed=1"], "error": "e"},
                 "seed=1": {"diverged_at": 18929, "error": "e"},
                 "seed=2": {"diverged_at": None, "stopped_with": ["runs/x/seed=1"], "error": "e"}}
    with pytest.raises(train.SweepDivergedError, match=(
            r"^1 of 3 sweep members stopped on NaN/Inf \(seed=1\); 2 more trained in one vmapped "
            r"program with them and stopped at the same step \(seed=0, seed=2\); every other")):
        sweep._raise_failures(summaries, ["e"], [], "runs/x")
