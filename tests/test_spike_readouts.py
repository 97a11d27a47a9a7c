"""The readouts of a LIF network's spikes (model.spike_readout): each against a Python loop
over the spike train an independent unroll emits, padding, the unchanged "last" readout, the
config errors, and configs/spiking_mnist.py:smoke trained end to end on tiny MNIST."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells, models, train
from seqjax import config as C
from seqjax import unroll as U
from seqjax.tasks.base import InputSpec
from tests.realdata_helpers import (  # noqa: F401
    data_config, no_network, tiny_checksums, write_tiny_mnist)

B, T, D, H, C_OUT = 4, 7, 3, 6, 2
LENGTHS = np.array([7, 4, 1, 6], np.int32)


def _model(readout, **fields):
    m = C.base_config().model
    m.cell, m.hidden, m.impl, m.spike_readout = "lif", H, "scan", readout
    m.threshold = 0.5  # a threshold the random inputs cross often
    for k, v in fields.items():
        m[k] = v
    spec = InputSpec("features", D, C_OUT, "last", seq_len=T)
    return models.SequenceModel(spec=spec, model_config=m), m


def _run(readout, x, lengths=None, **fields):
    """(logits, spikes (B, T, H) from an independent reference unroll, head params, config)."""
    model, m = _model(readout, **fields)
    batch = {"inputs": x} | ({} if lengths is None else {"lengths": jnp.asarray(lengths)})
    variables = model.init(jax.random.key(0), batch)
    out = model.apply(variables, batch)
    cell = cells.get_cell("lif", beta=m.beta, threshold=m.threshold, slope=m.slope)
    _, hs = U.unroll_reference(cell, variables["params"]["core"]["layer0"], x,
                               cell.initial_carry(B, H),
                               lengths=None if lengths is None else jnp.asarray(lengths))
    head = variables["params"]["head"]
    return (np.asarray(out), np.asarray(hs), np.asarray(head["kernel"]),
            np.asarray(head["bias"]), m)


def _inputs(seed=1):
    return 2.0 * jax.random.uniform(jax.random.key(seed), (B, T, D))


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_count_readout_is_the_head_of_the_valid_spike_counts(lengths):
    out, s, W, b, _ = _run("count", _inputs(), lengths)
    n = np.full(B, T) if lengths is None else lengths
    assert 0 < s.mean() < 1  # a spike train with spikes and silences
    for i in range(B):
        counts = sum(s[i, t] for t in range(n[i]))
        np.testing.assert_allclose(out[i], counts @ W + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta_out,lengths", [(0.8, None), (0.5, LENGTHS)])
def test_membrane_readout_is_the_integral_of_a_leaky_integrator(lengths, beta_out):
    """u_t = β_out·u_{t−1} + W s_t + b from u = 0, summed over the valid steps, in a loop."""
    out, s, W, b, _ = _run("membrane", _inputs(), lengths, readout_beta=beta_out)
    n = np.full(B, T) if lengths is None else lengths
    for i in range(B):
        u, total = np.zeros(C_OUT, np.float32), np.zeros(C_OUT, np.float32)
        for t in range(n[i]):
            u = np.float32(beta_out) * u + (s[i, t] @ W + b)
            total = total + u
        np.testing.assert_allclose(out[i], total, rtol=1e-5, atol=1e-5)


def test_leaky_integral_with_beta_zero_sums_the_inputs_and_ignores_padding():
    z = jax.random.normal(jax.random.key(3), (B, T, C_OUT))
    valid = U.valid_mask(jnp.asarray(LENGTHS), T).astype(z.dtype)
    np.testing.assert_allclose(models.leaky_integral(z, valid, 0.0),
                               jnp.sum(z * valid[:, :, None], axis=1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("readout", ["last", "membrane", "count"])
def test_padding_beyond_lengths_changes_nothing(readout):
    x = _inputs()
    pad = U.valid_mask(jnp.asarray(LENGTHS), T)[:, :, None]
    noisy = jnp.where(pad, x, 5.0 * _inputs(seed=2))
    out, *_ = _run(readout, x, LENGTHS)
    out_noisy, *_ = _run(readout, noisy, LENGTHS)
    np.testing.assert_array_equal(out, out_noisy)


def test_last_readout_is_unchanged():
    """The default reads the last valid spike vector: head(s_{length−1}), as before."""
    assert C.base_config().model.spike_readout == "last"
    out, s, W, b, _ = _run("last", _inputs(), LENGTHS)
    last = s[np.arange(B), LENGTHS - 1]
    np.testing.assert_allclose(out, last @ W + b, rtol=1e-5, atol=1e-6)


def test_bad_readouts_fail_with_the_allowed_values():
    c = C.base_config()
    c.model.cell, c.model.spike_readout = "lif", "rate"
    with pytest.raises(ValueError, match=r"model.spike_readout='rate' is not allowed; choose one "
                                         r"of: last, membrane, count"):
        C.validate(c)
    c.model.cell, c.model.spike_readout = "lstm", "count"
    with pytest.raises(ValueError, match=r"model.spike_readout='count' reads a spike train, so "
                                         r"it needs model.cell='lif', not 'lstm'"):
        C.validate(c)
    c.model.cell, c.model.spike_readout, c.model.readout_beta = "lif", "membrane", 1.5
    with pytest.raises(ValueError, match=r"model.readout_beta must lie in \[0, 1\], got 1.5"):
        C.validate(c)
    model, _ = _model("sum")  # the model checks too, for configs that skip validate
    with pytest.raises(ValueError, match=r"'sum' is not allowed; choose one of: last, membrane"):
        model.init(jax.random.key(0), {"inputs": _inputs()})
    m = _model("count")[1]
    per_step = models.SequenceModel(spec=InputSpec("features", D, C_OUT, "all", seq_len=T),
                                    model_config=m)
    with pytest.raises(ValueError, match=r"spike_readout='count' gives one output per sequence"):
        per_step.init(jax.random.key(0), {"inputs": _inputs()})


def test_spiking_mnist_smoke_trains_end_to_end(tmp_path):
    """On tiny random MNIST files in the official layout (tests/realdata_helpers.py)."""
    from seqjax.data import mnist as mnist_data
    from seqjax.data import pipeline
    data_dir, raw_dir = str(tmp_path / "tfds"), str(tmp_path / "raw")
    _, table = write_tiny_mnist(raw_dir)
    with tiny_checksums(mnist_table=table):
        pipeline.prepare(mnist_data.Mnist, data_config(raw_dir, data_dir))
    c = importlib.import_module("configs.spiking_mnist").get_config("smoke")
    c.data.data_dir, c.data.raw_dir = data_dir, ""
    c.train.num_steps, c.train.diagnostics_every, c.train.checkpoint_every = 2, 0, 0
    assert c.model.cell == "lif" and c.model.spike_readout != "last"
    summary = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["steps"] == c.train.num_steps
    final = summary["final_eval"]
    assert np.isfinite(final["accuracy"]) and 0.0 <= final["spike_rate"] <= 1.0
