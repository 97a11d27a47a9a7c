"""Synthetic tasks: their structure, their losses and their stated baselines, checked directly."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.config import base_config
from seqjax.tasks import SUCCESS, TASKS, get_task_class
from seqjax.tasks.adding import adding_batch
from seqjax.tasks.base import task_settings
from seqjax.tasks.copy_memory import copy_batch
from seqjax.tasks.temporal_order import END, START, X, Y, temporal_order_batch


def make_task(name, **task_fields):
    c = base_config()
    c.task.name = name
    with c.unlocked():
        for k, v in (TASKS[name].config_defaults | task_fields).items():
            c.task[k] = v
    return TASKS[name](c)


def test_adding_structure_and_baseline():
    x, y = jax.device_get(adding_batch(jax.random.key(0), 4096, 50))
    markers = x[..., 1]
    assert np.all(markers[:, :25].sum(1) == 1) and np.all(markers[:, 25:].sum(1) == 1)
    np.testing.assert_allclose(y, (x[..., 0] * markers).sum(1), rtol=1e-6)
    # Predicting the mean (1.0) scores the variance of a sum of two U[0,1]: 1/6.
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 0.01
    with pytest.raises(ValueError, match=r"seq_len >= 2 .* got 1"):
        adding_batch(jax.random.key(0), 2, 1)


def test_temporal_order_structure():
    tokens, labels = jax.device_get(temporal_order_batch(jax.random.key(1), 4000, 100))
    assert np.all(tokens[:, 0] == START) and np.all(tokens[:, -1] == END)
    relevant = np.isin(tokens, [X, Y])
    assert np.all(relevant.sum(1) == 2)
    pos = np.argwhere(relevant)[:, 1].reshape(-1, 2)
    assert pos[:, 0].min() >= 10 and pos[:, 0].max() <= 20
    assert pos[:, 1].min() >= 50 and pos[:, 1].max() <= 60
    sym = tokens[np.arange(4000)[:, None], pos]
    np.testing.assert_array_equal(labels, 2 * (sym[:, 0] == Y) + (sym[:, 1] == Y))
    counts = np.bincount(labels, minlength=4) / 4000
    assert np.all(np.abs(counts - 0.25) < 0.03)  # balanced: chance is 25%
    with pytest.raises(ValueError, match=r"seq_len >= 10, got 9"):
        temporal_order_batch(jax.random.key(0), 2, 9)


def test_copy_structure_and_memoryless_baseline():
    T = 30
    tokens, targets = jax.device_get(copy_batch(jax.random.key(2), 64, T))
    assert tokens.shape == targets.shape == (64, T + 20)
    np.testing.assert_array_equal(targets[:, -10:], tokens[:, :10])
    assert np.all((tokens[:, :10] >= 1) & (tokens[:, :10] <= 8))
    assert np.all(tokens[:, T + 9] == 9) and np.all(targets[:, :T + 10] == 0)
    # The memoryless predictor: certain blank for T+10 steps, then uniform over 8 symbols.
    task = make_task("copy", seq_len=T)
    logits = np.full((64, T + 20, 9), -1e9, np.float32)
    logits[:, :T + 10, 0] = 0.0
    logits[:, T + 10:, 1:] = 0.0
    ce, metrics = task.loss(jnp.asarray(logits), {"targets": jnp.asarray(targets)})
    np.testing.assert_allclose(ce, task.baseline()["ce"], rtol=1e-5)
    np.testing.assert_allclose(task.baseline()["ce"], 10 * math.log(8) / (T + 20))


def test_noise_std_adds_gaussian_noise():
    clean = make_task("adding", seq_len=40).make_batch(jax.random.key(3), 256)
    noisy = make_task("adding", seq_len=40, noise_std=0.5).make_batch(jax.random.key(3), 256)
    np.testing.assert_array_equal(clean["targets"], noisy["targets"])
    diff = np.asarray(noisy["inputs"] - clean["inputs"])
    assert abs(diff.std() - 0.5) < 0.02 and abs(diff.mean()) < 0.02


@pytest.mark.parametrize("name", ["adding", "temporal_order", "copy"])
def test_iterator_resumes_with_the_same_batches(name):
    task = make_task(name, seq_len=12)
    a = task.train_iterator(seed=5)
    first = [next(a) for _ in range(3)]
    state = a.get_state()
    rest = [next(a) for _ in range(2)]
    b = task.train_iterator(seed=5)
    b.set_state(state)
    for x, y in zip(rest, [next(b) for _ in range(2)]):
        jax.tree.map(np.testing.assert_array_equal, x, y)
    other = next(task.train_iterator(seed=6))
    assert not np.array_equal(other["inputs"], first[0]["inputs"])


def test_eval_set_is_fixed_and_sized():
    task = make_task("adding", seq_len=12, eval_size=700)
    a, b = list(task.eval_batches()), list(task.eval_batches())
    assert [len(x["targets"]) for x in a] == [512, 188]
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_unknown_task():
    with pytest.raises(ValueError, match=r"unknown task 'sorting'; valid tasks: .*adding"):
        get_task_class("sorting")


def test_settings_are_the_defaults_under_config_task_read_once():
    c = base_config()
    c.task.name, c.task.seq_len = "copy", 7  # eval_seed is not set: the task's default
    task = TASKS["copy"](c)
    assert task.settings.eval_seed == 1234 and task.settings.seq_len == 7
    c.task.seq_len = 9  # merged once, in the constructor: the task keeps what it was given
    assert task.settings.seq_len == 7 and task.input_spec().seq_len == 7 + 20
    with pytest.raises((AttributeError, TypeError)):
        task.settings.seq_len = 3
    assert make_task("adding", seq_len=30, eval_seed=5).settings.eval_seed == 5
    merged = task_settings({"beam": 4, "max_len": 20}, {"max_len": 12, "name": "x"})
    assert (merged.beam, merged.max_len, merged.name) == (4, 12, "x")


def test_success_is_defined_beside_the_tasks_and_each_metric_is_reported():
    assert SUCCESS == {"mse": ("<", 0.05), "accuracy": (">=", 0.9),
                       "recall_accuracy": (">=", 0.9), "nats_per_char": ("<", 1.55)}
    # a run is judged by the first it reports
    assert list(SUCCESS) == ["mse", "accuracy", "recall_accuracy", "nats_per_char"]
    for name in ("adding", "temporal_order", "copy"):
        task = make_task(name, seq_len=12, eval_size=8)
        spec, batch = task.input_spec(), next(iter(task.eval_batches()))
        shape = (8, spec.output_dim) if spec.readout == "last" else (8, spec.seq_len, spec.output_dim)
        _, metrics = task.loss(jnp.zeros(shape, jnp.float32), batch)
        assert task.success and set(task.success) <= set(metrics), name
        assert all(SUCCESS[m] == criterion for m, criterion in task.success.items())
