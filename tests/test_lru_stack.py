"""The stacked LRU of Orvieto et al. (2023) (model.kind="lru_stack"): shapes, the associative
scan equal to the sequential scan inside the model, padding that changes nothing, clear
errors, and the configs/lru_stack.py smoke variants trained end to end."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import lru_stack
from seqjax import config as config_lib
from seqjax import cells, models, train
from seqjax.batching import InputSpec
from seqjax.tasks import get_task_class

B, T, D = 4, 9, 3
LENGTHS = np.array([T, 5, 1, 3], np.int32)


def stack_config(**changes):
    c = config_lib.base_config()
    c.model.kind, c.model.cell = "lru_stack", "lru"
    c.model.d_model, c.model.hidden, c.model.layers, c.model.impl = 6, 8, 2, "parallel"
    c.model.update(changes)
    return ml_collections.FrozenConfigDict(c.model)


def spec(readout="last", kind="features"):
    return InputSpec(kind=kind, dim=D if kind == "features" else 11, output_dim=2,
                     readout=readout, seq_len=T)


def inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


def shapes(config, s, batch):
    """(params shapes, output shape) of the model, traced, not compiled."""
    model = models.build_model(config, s)
    params = jax.eval_shape(model.init, jax.random.key(0), batch)["params"]
    out = jax.eval_shape(lambda p: model.apply({"params": p}, batch), params)
    return jax.tree.map(lambda a: a.shape, params), out.shape


def test_output_shapes_and_params_are_the_pure_cell_pytree():
    batch = {"inputs": inputs(), "lengths": LENGTHS}
    params, out = shapes(stack_config(), spec("last"), batch)
    assert out == (B, 2) and shapes(stack_config(), spec("all"), batch)[1] == (B, T, 2)
    assert set(params) == {"encoder", "block0", "block1", "head"}
    cell = jax.eval_shape(lambda k: cells.get_cell("lru").init(k, 6, 8), jax.random.key(0))
    assert params["block1"]["lru"] == jax.tree.map(lambda a: a.shape, cell)
    assert params["block0"]["glu"]["kernel"] == (6, 12) and params["head"]["kernel"] == (6, 2)
    tokens = {"inputs": np.zeros((B, T), np.int32)}
    params, out = shapes(stack_config(), spec("all", "tokens"), tokens)
    assert out == (B, T, 2) and params["encoder"]["embedding"] == (11, 6)


def test_associative_scan_equals_sequential_scan_inside_the_model():
    """Per-step outputs of the stack and the gradient of their sum of squares, with ragged
    lengths: impl="parallel" (the associative scan) against impl="scan"."""
    batch = {"inputs": inputs(), "lengths": LENGTHS}
    results = []
    for impl in ("parallel", "scan"):
        model = models.build_model(stack_config(impl=impl, layers=1), spec("all"))
        params = jax.jit(model.init)(jax.random.key(0), batch)["params"] if not results else params

        @jax.jit
        def value_and_grad(p):
            out, vjp = jax.vjp(lambda p: model.apply({"params": p}, batch), p)
            return out, vjp(2.0 * out)[0]   # ∂/∂p of Σ out²
        results.append(value_and_grad(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), *results)


def test_padding_beyond_lengths_changes_nothing_for_either_pool():
    x = inputs()
    noisy = x.copy()
    for row, n in zip(noisy, LENGTHS):
        row[n:] = 100.0 * np.random.default_rng(n).normal(size=row[n:].shape)
    params = None
    for pool in ("last", "mean"):
        model = models.build_model(stack_config(pool=pool, layers=1), spec())
        if params is None:   # the pool has no parameters
            params = jax.jit(model.init)(jax.random.key(0), {"inputs": x})["params"]
        apply = jax.jit(lambda b, model=model: model.apply({"params": params}, b))
        before = np.asarray(apply({"inputs": x, "lengths": LENGTHS}))
        after = np.asarray(apply({"inputs": noisy, "lengths": LENGTHS}))
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
        assert not np.allclose(before[1], before[0])


def test_pool_reads_the_last_valid_step_or_the_mean_of_the_valid_steps():
    x = inputs()
    want_last = np.stack([x[b, n - 1] for b, n in enumerate(LENGTHS)])
    want_mean = np.stack([x[b, :n].mean(0) for b, n in enumerate(LENGTHS)])
    np.testing.assert_allclose(models.pool(x, LENGTHS, "last"), want_last)
    np.testing.assert_allclose(models.pool(x, LENGTHS, "mean"), want_mean, rtol=1e-6)
    np.testing.assert_allclose(models.pool(x, None, "last"), x[:, -1])
    np.testing.assert_allclose(models.pool(x, None, "mean"), x.mean(1), rtol=1e-6)


def test_bad_pool_odd_hidden_and_cell_fail_clearly():
    batch = {"inputs": inputs()}
    with pytest.raises(ValueError, match=r"model.pool='max' is not allowed; choose one of: "
                                         r"last, mean"):
        shapes(stack_config(pool="max"), spec(), batch)
    with pytest.raises(ValueError, match=r"needs an even model.hidden .* got model.hidden=7"):
        shapes(stack_config(hidden=7), spec(), batch)
    c = lru_stack.get_config("adding:smoke")
    c.model.cell = "lstm"
    with pytest.raises(ValueError, match=r"set model.cell='lru' \(got model.cell='lstm'\)"):
        config_lib.validate(c)
    c = lru_stack.get_config("adding:smoke")
    c.model.pool = "max"
    with pytest.raises(ValueError, match=r"model.pool='max' is not allowed"):
        config_lib.validate(c)
    with pytest.raises(ValueError, match=r"unknown variant 'adding:big'; use <task>"):
        lru_stack.get_config("adding:big")


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_lstm_arm_has_about_the_parameters_of_the_stack(task):
    counts = []
    for variant in (task, f"{task}:lstm"):
        c = lru_stack.get_config(variant)
        spec_ = get_task_class(c.task.name)(c).input_spec()
        counts.append(models.param_count(ml_collections.FrozenConfigDict(c.model), spec_))
    assert abs(counts[1] - counts[0]) <= 0.05 * counts[0], counts


@pytest.mark.parametrize("variant,metric", [
    ("adding:smoke", "mse"),
    pytest.param("copy:smoke", "recall_accuracy", marks=pytest.mark.slow)])
def test_smoke_variants_train_end_to_end(tmp_path, variant, metric):
    c = lru_stack.get_config(variant)
    assert c.model.kind == "lru_stack" and c.model.impl == "parallel"
    c.train.diagnostics_every = 0   # one compile less; the diagnostics have their own tests
    summary = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["steps"] == c.train.num_steps and summary["model"] == "lru_stack"
    assert np.isfinite(summary["final_eval"][metric]) and summary["nonfinite_steps"] == 0
