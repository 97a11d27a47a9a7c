"""Peer check: seqjax lstm/gru equal flax.linen LSTMCell/GRUCell with copied weights.

flax adds no forget bias, so the comparison uses seqjax's forget_bias=0 init (any bias
value is copied exactly anyway). Values and gradients with respect to the inputs, the
initial carry and every weight are compared, scanned over a sequence.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax import cells, convert
from seqjax import unroll as U
from tests.helpers import random_params

B, T, D, H = 3, 7, 4, 5


def compare(cell, flax_cell, name, carry_to_flax, carry_from_flax):
    params = random_params(cell, jax.random.key(0), D, H)
    xs = jax.random.normal(jax.random.key(1), (B, T, D))
    carry = jax.tree.map(lambda z: jax.random.normal(jax.random.key(2), z.shape),
                         cell.initial_carry(B, H))
    w = jax.random.normal(jax.random.key(3), (B, T, H))

    def ours(p, xs, carry):
        final, hs = U.unroll(cell, p, xs, carry)
        return jnp.sum(hs * w) + jnp.sum(cell.hidden(final)), (final, hs)

    def theirs(fp, xs, fcarry):
        final, hs = nn.RNN(flax_cell, return_carry=True).apply(
            {"params": {"cell": fp}}, xs, initial_carry=fcarry)
        h_final = final[1] if isinstance(final, tuple) else final
        return jnp.sum(hs * w) + jnp.sum(h_final), (final, hs)

    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))
    (_, (final_a, hs_a)), (gp_a, gx_a, gc_a) = grad(ours)(params, xs, carry)
    (_, (final_b, hs_b)), (gp_b, gx_b, gc_b) = grad(theirs)(convert.to_flax(name, params), xs,
                                                             carry_to_flax(carry))
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hs_a, hs_b, **tol)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol),
                 final_a, carry_from_flax(final_b))
    np.testing.assert_allclose(gx_a, gx_b, **tol)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), gc_a, carry_from_flax(gc_b))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), gp_a,
                 convert.from_flax(name, gp_b))


def test_lstm_equals_flax_lstm_cell():
    # flax's carry is (c, h); ours is LSTMCarry(h, c).
    compare(cells.LSTM(), nn.LSTMCell(H), "lstm",
            lambda c: (c.c, c.h), lambda fc: cells.LSTMCarry(h=fc[1], c=fc[0]))


def test_gru_equals_flax_gru_cell():
    compare(cells.GRU(), nn.GRUCell(H), "gru", lambda c: c, lambda c: c)


def test_forget_bias_zero_init_matches_flax_structure():
    """With forget_bias=0 every seqjax LSTM bias starts at zero, as flax's do."""
    p = cells.LSTM().init(jax.random.key(0), D, H, forget_bias=0.0)
    fp = nn.LSTMCell(H).init(jax.random.key(0), (jnp.zeros((1, H)), jnp.zeros((1, H))),
                             jnp.zeros((1, D)))
    np.testing.assert_array_equal(p["b"], convert.from_flax("lstm", fp["params"])["b"])
    assert jax.tree.map(jnp.shape, convert.from_flax("lstm", fp["params"])) == jax.tree.map(jnp.shape, p)


def test_simple_cell_layout_round_trips():
    p = {"W_x": jnp.ones((D, H)), "W_h": 2 * jnp.ones((H, H)), "b": 3 * jnp.ones(H)}
    fp = nn.SimpleCell(H).init(jax.random.key(0), jnp.zeros((1, H)), jnp.zeros((1, D)))["params"]
    assert jax.tree.map(jnp.shape, convert.to_flax("rnn", p)) == jax.tree.map(jnp.shape, fp)
    jax.tree.map(np.testing.assert_array_equal, convert.from_flax("rnn", convert.to_flax("rnn", p)), p)
