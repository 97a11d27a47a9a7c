"""The trainer's pieces alone: ``train_step`` against optax by hand, the log window, the
clock, the TensorBoard heatmap and the run-directory helpers."""

import json
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from seqjax import models, rundir, train
from seqjax.chrono import Chrono, every, fmt_duration
from seqjax.tasks.adding import AddingTask
from seqjax.writer import heatmap_rgb
from tests.test_train import load_config


@pytest.fixture(scope="module")
def setup():
    config = load_config("adding")
    task = AddingTask(config)
    model = models.build_model(ml_collections.FrozenConfigDict(config.model), task.input_spec())
    batch = next(task.train_iterator(0))
    params = jax.jit(model.init)({"params": jax.random.key(1)},
                                 jax.tree.map(lambda a: a[:2], batch))["params"]
    tx = train.make_optimizer(config.train)
    state = train.TrainState(step=jnp.array(0, jnp.int32), params=params,
                             opt_state=tx.init(params),
                             rng=jax.random.key_data(jax.random.key(2)),
                             nonfinite_steps=jnp.array(0, jnp.int32),
                             first_nonfinite=jnp.array(-1, jnp.int32))
    return model, task, tx, state, batch


def test_train_step_equals_optax_by_hand(setup):
    model, task, tx, state, batch = setup
    new, metrics = jax.jit(lambda s, b: train.train_step(s, b, model=model, task=task, tx=tx))(
        state, batch)

    def loss_of(params):  # the task's loss of the model's output, written out again
        out = model.apply({"params": params}, batch, train=True)
        return task.loss(out, batch)[0]

    loss, grads = jax.value_and_grad(loss_of)(state.params)
    with jax.numpy_dtype_promotion("standard"):
        updates, _ = tx.update(grads, state.opt_state, state.params)
    expected = optax.apply_updates(state.params, updates)
    assert int(new.step) == 1 and int(new.nonfinite_steps) == 0
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)))


def test_train_step_skips_a_nan_batch(setup):
    model, task, tx, state, batch = setup
    bad = batch | {"inputs": batch["inputs"] * jnp.nan}
    new, metrics = train.train_step(state, bad, model=model, task=task, tx=tx)
    assert np.isnan(metrics["loss"])
    assert int(new.step) == 1 and int(new.nonfinite_steps) == 1 and int(new.first_nonfinite) == 1
    for a, b in zip(jax.tree.leaves((new.params, new.opt_state)),
                    jax.tree.leaves((state.params, state.opt_state))):
        np.testing.assert_array_equal(a, b)


def test_log_window_means_and_exact_round_trip():
    split = lambda tree: [jax.device_get(tree)]
    window = train._LogWindow(split)
    for v in (1.0, 2.0, 1e-7):
        window.add({"loss": np.float32(v)})
    saved = json.loads(json.dumps(window.encode()))
    resumed = train._LogWindow(split, train._LogWindow.decode(saved))
    assert resumed.take_means() == window.take_means()
    assert window.take_means() == []  # taken: the next window starts empty


def test_every_and_durations():
    assert [s for s in range(1, 11) if every(s, 4)] == [4, 8]
    assert not any(every(s, 0) for s in range(1, 11))
    assert fmt_duration(59.6) == "1m00s" and fmt_duration(3725) == "1h02m05s"


def test_chrono_counts_earlier_sessions_and_leaves_side_work_out_of_the_rate():
    chrono = Chrono()
    chrono.resume({"elapsed_s": 100.0})
    for _ in range(4):
        chrono.tick()
    with chrono.side():
        time.sleep(0.05)
    rate, eta = chrono.end_window(steps_left=8)
    assert rate > 4 / 0.05  # the 0.05 s of side work is not training time
    assert eta == pytest.approx(2 * 0.05, rel=0.5)  # 8 steps at the window's pace (4 per 0.05 s)
    assert 100.0 < chrono.state()["elapsed_s"] < 101.0


def test_heatmap_image_shape_colours_and_orientation():
    steps = np.array([0, 100, 200])
    mat = np.array([[1e-10, 1e-5, 1.0], [1.0, 1.0, 1.0], [np.inf, 1e-10, 1e-10]])
    rgb = heatmap_rgb(steps, mat, min_size=30)
    assert rgb.dtype == np.uint8 and rgb.shape == (30, 30, 3)
    cell = lambda row, col: rgb[row * 10 + 5, col * 10 + 5]  # 10×10 pixels per entry
    # steps run bottom to top: the first logged step is the bottom row
    np.testing.assert_array_equal(cell(2, 0), [68, 1, 84])      # 1e-10, the minimum: dark
    np.testing.assert_array_equal(cell(2, 2), [253, 231, 37])   # 1.0, the maximum: yellow
    np.testing.assert_array_equal(cell(0, 0), [0, 0, 0])        # overflowed: black
    assert 68 < cell(2, 1)[1] < 231                             # 1e-5: in between


def test_run_dirs_of_a_run_and_of_a_sweep(tmp_path):
    assert rundir.run_dirs(str(tmp_path)) == [str(tmp_path)]
    (tmp_path / rundir.SWEEP_FILE).write_text(json.dumps({"members": ["a", "b"]}))
    assert rundir.run_dirs(str(tmp_path)) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert rundir.is_sweep(str(tmp_path))
