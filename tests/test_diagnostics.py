"""Gradient-flow diagnostics against closed forms and against a brute-force reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells, diagnostics
from seqjax import unroll as U
from tests.helpers import CELL_CASES, RAGGED, make_problem


def linear_rnn(W_hh, input_dim=2):
    H = W_hh.shape[0]
    params = {"W_x": jnp.zeros((input_dim, H)), "W_h": jnp.asarray(W_hh, jnp.float32),
              "b": jnp.zeros((H,))}
    return cells.RNN(activation="linear"), params


@pytest.mark.parametrize("a", [0.9, 1.1, -0.8])
def test_scaled_identity_closed_form(a):
    """Linear RNN, W_hh = a·I, no input: ∂h_T/∂h_t = a^(T−t)·I exactly."""
    B, T, H = 2, 30, 5
    cell, params = linear_rnn(a * np.eye(H))
    xs = jnp.zeros((B, T, 2))
    carry = jax.random.normal(jax.random.key(0), (B, H))
    v = jax.random.normal(jax.random.key(1), (B, H))
    expected_powers = np.abs(a) ** (T - np.arange(T + 1, dtype=np.float64))

    norms = diagnostics.hidden_grad_norms(cell, params, xs, lambda f, hs: jnp.sum(f * v), carry)
    np.testing.assert_allclose(norms, expected_powers[None] * np.linalg.norm(v, axis=1)[:, None],
                               rtol=1e-5)
    fro = diagnostics.jacobian_norms(cell, params, xs, carry)
    np.testing.assert_allclose(fro, np.broadcast_to(expected_powers * np.sqrt(H), (B, T + 1)),
                               rtol=1e-5)
    spec = diagnostics.jacobian_norms(cell, params, xs, carry, ord=2)
    np.testing.assert_allclose(spec, np.broadcast_to(expected_powers, (B, T + 1)), rtol=1e-5)


def test_orthogonal_recurrence_preserves_norm():
    B, T, H = 2, 40, 6
    W = jax.nn.initializers.orthogonal()(jax.random.key(2), (H, H), jnp.float32)
    cell, params = linear_rnn(W)
    xs = jax.random.normal(jax.random.key(3), (B, T, 2))
    spec = diagnostics.jacobian_norms(cell, params, xs, ord=2)
    np.testing.assert_allclose(spec, np.ones((B, T + 1)), rtol=1e-4)
    fro = diagnostics.jacobian_norms(cell, params, xs)
    np.testing.assert_allclose(fro, np.full((B, T + 1), np.sqrt(H)), rtol=1e-4)


def saturated_lstm(forget_bias, T=200, B=2, D=3, H=4):
    """An LSTM whose input gate is shut (bias −30) and forget-gate bias is given."""
    params = cells.LSTM().init(jax.random.key(4), D, H, forget_bias=forget_bias)
    b = params["b"].reshape(4, H).at[0].set(-30.0)  # i = σ(−30) ≈ 0: nothing written
    params = params | {"b": b.reshape(4 * H)}
    xs = jnp.zeros((B, T, D))
    carry0 = cells.LSTMCarry(h=jnp.zeros((B, H)), c=jax.random.normal(jax.random.key(5), (B, H)))
    v = jax.random.normal(jax.random.key(6), (B, H))

    def loss_of_c0(c0):
        final, _ = U.unroll(cells.LSTM(), params, xs, carry0._replace(c=c0))
        return jnp.sum(final.c * v)

    return jax.grad(loss_of_c0)(carry0.c), v


def test_lstm_saturated_forget_gate_passes_gradient_unchanged():
    """f = σ(30) = 1 and no input: ∂C_T/∂C_0 = I, so ∂L/∂C_0 = ∂L/∂C_T after 200 steps."""
    g, v = saturated_lstm(forget_bias=30.0)
    np.testing.assert_allclose(g, v, rtol=1e-6, atol=1e-6)


def test_lstm_half_open_forget_gate_vanishes():
    """The contrast: f ≈ σ(0) = ½ shrinks the gradient by about 2^−200."""
    g, _ = saturated_lstm(forget_bias=0.0)
    assert float(jnp.max(jnp.abs(g))) < 1e-30


def brute_force_hidden_grads(cell, params, xs, carry, loss_fn):
    """∂L/∂h_t for each t separately: rerun the tail of the sequence from a perturbed h_t."""
    B, T, _ = xs.shape
    states, hs = [carry], []
    for t in range(T):
        c, h = cell.step(params, states[-1], xs[:, t])
        states.append(c)
        hs.append(h)
    out = []
    for t in range(T + 1):
        def loss_from(h_t, t=t):
            c = cell.with_hidden(states[t], h_t)
            tail_hs = [] if t == 0 else [h_t]
            for k in range(t, T):
                c, h = cell.step(params, c, xs[:, k])
                tail_hs.append(h)
            all_hs = hs[:max(t - 1, 0)] + tail_hs
            return loss_fn(c, jnp.stack(all_hs, axis=1))
        out.append(jax.grad(loss_from)(cell.hidden(states[t])))
    return jnp.stack(out, axis=1)


def loss_on_everything(cell, T):
    def loss_fn(final, hs):
        w = jnp.sin(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
        return jnp.sum(hs * w) + jnp.sum(cell.hidden(final) ** 2)
    return loss_fn


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_one_backward_pass_equals_brute_force(name):
    cell, params, xs, carry = make_problem(name, T=5)
    loss_fn = loss_on_everything(cell, 5)
    got = diagnostics.hidden_grads(cell, params, xs, loss_fn, carry)
    want = brute_force_hidden_grads(cell, params, xs, carry, loss_fn)
    assert got.shape == (3, 6, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_reverse_is_forward_on_flipped_inputs(name):
    cell, params, xs, carry = make_problem(name, T=5)
    loss_fn = loss_on_everything(cell, 5)
    fwd = diagnostics.hidden_grads(cell, params, xs[:, ::-1], loss_fn, carry)
    rev = diagnostics.hidden_grads(cell, params, xs, lambda f, hs: loss_fn(f, hs[:, ::-1]), carry,
                                   reverse=True)
    np.testing.assert_allclose(rev, fwd[:, ::-1], rtol=1e-5, atol=1e-6)


def test_padded_steps_receive_no_gradient():
    cell, params, xs, carry = make_problem("lstm")
    norms = diagnostics.hidden_grad_norms(cell, params, xs, loss_on_everything(cell, 6), carry,
                                          lengths=jnp.array(RAGGED))
    for b, n in enumerate(RAGGED):
        assert np.all(np.asarray(norms[b, n + 1:]) == 0.0)
        assert np.all(np.asarray(norms[b, :n + 1]) > 0.0)


def test_param_grad_norms():
    grads = {"W_x": jnp.full((2, 3), 2.0), "layers": [{"b": jnp.array([3.0, 4.0])}]}
    norms = diagnostics.param_grad_norms(grads)
    assert set(norms) == {"W_x", "layers/0/b", "global"}
    np.testing.assert_allclose(norms["W_x"], np.sqrt(24.0), rtol=1e-6)
    np.testing.assert_allclose(norms["layers/0/b"], 5.0, rtol=1e-6)
    np.testing.assert_allclose(norms["global"], np.sqrt(24.0 + 25.0), rtol=1e-6)


def test_bad_arguments():
    cell, params, xs, carry = make_problem("rnn")
    with pytest.raises(ValueError, match=r"ord must be 'fro' or 2, got 1"):
        diagnostics.jacobian_norms(cell, params, xs, carry, ord=1)
    with pytest.raises(ValueError, match=r"forward unrolls; got reverse=True"):
        diagnostics.jacobian_norms(cell, params, xs, carry, reverse=True)


def test_safe_norm_does_not_underflow():
    x = jnp.array([[3e-25, 4e-25], [0.0, 0.0], [3.0, 4.0]], jnp.float32)
    assert float(jnp.linalg.norm(x[0])) == 0.0  # the plain norm loses it in float32
    np.testing.assert_allclose(diagnostics.safe_norm(x, axis=-1), [5e-25, 0.0, 5.0], rtol=1e-6)


def test_jacobian_norms_do_not_underflow():
    """Entries ~1e-30 square to ~1e-60, below float32's range, so a plain sum of squares
    gives 0; the norms must still come out right."""
    B, T, H = 2, 1, 4
    cell, params = linear_rnn(1e-30 * np.eye(H))
    xs = jnp.zeros((B, T, 2))
    fro = diagnostics.jacobian_norms(cell, params, xs)
    assert fro.dtype == jnp.float32
    np.testing.assert_allclose(fro[:, 0], np.full(B, 1e-30 * np.sqrt(H)), rtol=1e-5)
    spec = diagnostics.jacobian_norms(cell, params, xs, ord=2)
    np.testing.assert_allclose(spec[:, 0], np.full(B, 1e-30), rtol=1e-5)


def test_flat_params_names_every_leaf_by_its_path():
    tree = {"core": [{"W_x": jnp.ones(2)}, cells.LSTMCarry(h=jnp.zeros(1), c=jnp.ones(1))],
            "head": {"b": jnp.zeros(3)}}
    assert list(diagnostics.flat_params(tree)) == ["core/0/W_x", "core/1/h", "core/1/c",
                                                   "head/b"]
