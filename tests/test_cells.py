"""Cells: each step against its equations in numpy, inits, and the errors users see."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from tests.helpers import CELL_CASES, make_problem


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------- steps from the equations


def test_lstm_step_by_hand():
    """One LSTM step from the gate equations, written out in numpy with tiny fixed weights."""
    D, H = 2, 3
    W_x = np.arange(D * 4 * H, dtype=np.float32).reshape(D, 4 * H) / 20.0 - 0.5
    W_h = np.cos(np.arange(H * 4 * H, dtype=np.float32)).reshape(H, 4 * H) * 0.3
    b = np.linspace(-0.4, 0.6, 4 * H, dtype=np.float32)
    x = np.array([[0.5, -1.0]], np.float32)
    h = np.array([[0.1, -0.2, 0.3]], np.float32)
    c = np.array([[1.0, 0.5, -0.5]], np.float32)

    def gate(k):  # W_k [h, x] + b_k, with block k of the fused matrices
        cols = slice(k * H, (k + 1) * H)
        return h @ W_h[:, cols] + x @ W_x[:, cols] + b[cols]

    i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)

    params = {"W_x": jnp.asarray(W_x), "W_h": jnp.asarray(W_h), "b": jnp.asarray(b)}
    carry, out = cells.LSTM().step(params, cells.LSTMCarry(jnp.asarray(h), jnp.asarray(c)),
                                   jnp.asarray(x))
    np.testing.assert_allclose(carry.c, c_new, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(carry.h, h_new, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out, carry.h)


def test_gru_step_by_hand():
    D, H = 2, 3
    rng = np.random.default_rng(0)
    W_x = rng.normal(size=(D, 3 * H)).astype(np.float32)
    W_h = rng.normal(size=(H, 3 * H)).astype(np.float32)
    b = rng.normal(size=(3 * H,)).astype(np.float32)
    b_hn = rng.normal(size=(H,)).astype(np.float32)
    x = rng.normal(size=(2, D)).astype(np.float32)
    h = rng.normal(size=(2, H)).astype(np.float32)

    blk = lambda k: slice(k * H, (k + 1) * H)
    r = sigmoid(x @ W_x[:, blk(0)] + h @ W_h[:, blk(0)] + b[blk(0)])
    z = sigmoid(x @ W_x[:, blk(1)] + h @ W_h[:, blk(1)] + b[blk(1)])
    n = np.tanh(x @ W_x[:, blk(2)] + b[blk(2)] + r * (h @ W_h[:, blk(2)] + b_hn))
    h_new = (1 - z) * n + z * h

    params = {k: jnp.asarray(v) for k, v in dict(W_x=W_x, W_h=W_h, b=b, b_hn=b_hn).items()}
    carry, out = cells.GRU().step(params, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(out, h_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(carry, out)


@pytest.mark.parametrize("activation,fn", [("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0)),
                                           ("linear", lambda z: z)])
def test_rnn_step_by_hand(activation, fn):
    rng = np.random.default_rng(1)
    W_x, W_h = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32)
    b, x, h = (rng.normal(size=s).astype(np.float32) for s in [(3,), (4, 2), (4, 3)])
    params = {"W_x": jnp.asarray(W_x), "W_h": jnp.asarray(W_h), "b": jnp.asarray(b)}
    carry, out = cells.RNN(activation=activation).step(params, jnp.asarray(h), jnp.asarray(x))
    np.testing.assert_allclose(out, fn(h @ W_h + x @ W_x + b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_step_equals_projected_step(name):
    cell, params, xs, carry = make_problem(name)
    x = xs[:, 0]
    a = cell.step(params, carry, x)
    b = cell.step_projected(params, carry, cell.project_inputs(params, x))
    jax.tree.map(np.testing.assert_array_equal, a, b)


# ----------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name,n_gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("scale", [0.9, 1.0, 1.5])
def test_orthogonal_blocks_scaled(name, n_gates, scale):
    H = 16
    params = cells.get_cell(name).init(jax.random.key(0), 5, H, recurrent_scale=scale)
    assert params["W_x"].shape == (5, n_gates * H)
    assert params["W_h"].shape == (H, n_gates * H)
    for k in range(n_gates):
        W = np.asarray(params["W_h"][:, k * H:(k + 1) * H])
        np.testing.assert_allclose(W.T @ W, scale ** 2 * np.eye(H), atol=1e-5)


def test_identity_and_normal_recurrent_init():
    rnn = cells.RNN(activation="relu")
    p = rnn.init(jax.random.key(0), 2, 8, recurrent_init="identity", recurrent_scale=0.5)
    np.testing.assert_array_equal(p["W_h"], 0.5 * np.eye(8, dtype=np.float32))
    p = rnn.init(jax.random.key(0), 2, 512, recurrent_init="normal", recurrent_scale=1.0)
    assert abs(float(jnp.std(p["W_h"])) * np.sqrt(512) - 1.0) < 0.02


@pytest.mark.parametrize("forget_bias", [0.0, 1.0, 2.5])
def test_lstm_forget_bias_sits_in_the_f_block_only(forget_bias):
    H = 5
    b = cells.LSTM().init(jax.random.key(0), 3, H, forget_bias=forget_bias)["b"]
    expected = np.zeros(4 * H, np.float32)
    expected[H:2 * H] = forget_bias  # gate order (i, f, g, o)
    np.testing.assert_array_equal(b, expected)


def test_lstm_default_forget_bias_is_one():
    b = cells.LSTM().init(jax.random.key(0), 3, 4)["b"]
    assert float(b[4]) == 1.0 and float(b[0]) == 0.0


def test_init_depends_on_key():
    a = cells.LSTM().init(jax.random.key(0), 3, 4)
    b = cells.LSTM().init(jax.random.key(1), 3, 4)
    assert not np.allclose(a["W_h"], b["W_h"])


# ----------------------------------------------------------------- errors


def test_unknown_cell_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown cell 'lsmt'; valid cells: gru, .*lstm, .*rnn"):
        cells.get_cell("lsmt")


def test_unknown_step_option():
    with pytest.raises(ValueError, match=r"cell 'lstm' has no option\(s\) \['activation'\]"):
        cells.get_cell("lstm", activation="relu")


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; allowed: linear, relu, tanh"):
        cells.get_cell("rnn", activation="gelu")


def test_unknown_init_option_and_values():
    with pytest.raises(ValueError, match=r"no init option\(s\) \['forget_bias'\]; allowed"):
        cells.RNN().init(jax.random.key(0), 2, 3, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"unknown recurrent_init 'ortho'; allowed: identity, normal, orthogonal"):
        cells.LSTM().init(jax.random.key(0), 2, 3, recurrent_init="ortho")
    with pytest.raises(ValueError, match=r"unknown input_init 'he'"):
        cells.GRU().init(jax.random.key(0), 2, 3, input_init="he")


@pytest.mark.parametrize("name", sorted(CELL_CASES))
@pytest.mark.parametrize("input_dim,hidden,bad", [(0, 4, "input_dim"), (3, -2, "hidden"),
                                                   (3, 2.5, "hidden"), (True, 4, "input_dim")])
def test_non_positive_sizes(name, input_dim, hidden, bad):
    with pytest.raises(ValueError, match=rf"{bad} must be a positive integer, got"):
        cells.get_cell(name).init(jax.random.key(0), input_dim, hidden)


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_step_rejects_wrong_rank_and_feature_size(name):
    cell, params, xs, carry = make_problem(name, D=3)
    with pytest.raises(ValueError, match=r"x must have rank 2 \(batch, features\), got shape \(3, 6, 3\)"):
        cell.step(params, carry, xs)
    with pytest.raises(ValueError, match=r"x has 5 features but the cell was initialised with input_dim=3"):
        cell.step(params, carry, jnp.zeros((3, 5)))


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_every_registered_cell_implements_the_declared_interface(name):
    cell = cells.get_cell(name)
    assert isinstance(cell, cells.Cell) and isinstance(cell, cells.CellBase)
    hash(cell)  # a static argument of jax.jit


def test_the_base_cannot_be_instantiated_without_the_maths():
    class Half(cells.CellBase):
        def _init(self, key, input_dim, hidden):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Half()
