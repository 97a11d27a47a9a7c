"""unroll (lax.scan) against the Python-loop reference, values and gradients, every path."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax import unroll as U
from tests.helpers import CELL_CASES, RAGGED, make_problem

CELL_NAMES = sorted(CELL_CASES)
LENGTHS = {"full": None, "ragged": tuple(RAGGED)}


def loss_of(cell, run, params, xs, carry):
    """A scalar that touches every output and every part of the final carry."""
    return loss_and_outputs(run, params, xs, carry)[0]


def loss_and_outputs(run, params, xs, carry):
    final, hs = run(params, xs, carry)
    w_h = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    w_c = sum(jnp.sum(jnp.sin(leaf) * (i + 1.0)) for i, leaf in enumerate(jax.tree.leaves(final)))
    return jnp.sum(hs * w_h) + w_c, (final, hs)


def outputs_and_grads(run, params, xs, carry):
    """((final carry, hs), grads wrt (params, xs, carry)), compiled once."""
    f = jax.value_and_grad(functools.partial(loss_and_outputs, run), argnums=(0, 1, 2),
                           has_aux=True)
    (_, out), grads = jax.jit(f)(params, xs, carry)
    return out, grads


@functools.lru_cache(maxsize=None)
def reference(name, reverse, lengths_key):
    """Values and gradients of the Python-loop reference (cached across scan variants)."""
    cell, params, xs, carry = make_problem(name)
    lengths = None if lengths_key is None else np.array(lengths_key)
    run = lambda p, x, c: U.unroll_reference(cell, p, x, c, lengths=lengths, reverse=reverse)
    return outputs_and_grads(run, params, xs, carry)


def assert_trees_close(a, b, **tol):
    tol = {"rtol": 2e-5, "atol": 2e-6} | tol
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


def _slow_unless(default: bool, *values):
    return pytest.param(*values, marks=() if default else pytest.mark.slow)


# The default run checks unroll=1 without remat and unroll=4 with remat for every cell,
# direction and length; the two other combinations run with -m slow.
@pytest.mark.parametrize("name,unroll,reverse,remat,lengths", [
    _slow_unless((unroll == 4) == remat, *combo)
    for combo in itertools.product(CELL_NAMES, [1, 4], [False, True], [False, True],
                                   sorted(LENGTHS))
    for unroll, remat in [combo[1:4:2]]])
def test_scan_equals_python_loop(name, unroll, reverse, remat, lengths):
    cell, params, xs, carry = make_problem(name)
    lens = LENGTHS[lengths]
    kw = dict(lengths=None if lens is None else jnp.array(lens), reverse=reverse,
              unroll=unroll, remat=remat)
    run = lambda p, x, c: U.unroll(cell, p, x, c, **kw)
    ref_out, ref_grads = reference(name, reverse, lens)
    out, grads = outputs_and_grads(run, params, xs, carry)
    assert_trees_close(out, ref_out)
    assert_trees_close(grads, ref_grads, rtol=1e-4, atol=1e-5)


# Finite differences in the default run: forward with unroll 1 on full sequences, reversed
# with unroll 4 + remat on ragged ones, per cell; every other combination with -m slow.
@pytest.mark.parametrize("name,unroll_remat,reverse,lengths", [
    _slow_unless((unroll_remat == (1, False), reverse, lengths) in
                 [(True, False, "full"), (False, True, "ragged")],
                 name, unroll_remat, reverse, lengths)
    for name, unroll_remat, reverse, lengths in itertools.product(
        CELL_NAMES, [(1, False), (4, True)], [False, True], sorted(LENGTHS))])
def test_check_grads_finite_differences(name, unroll_remat, reverse, lengths):
    """Reverse-mode gradients against finite differences, in float64.

    unroll and remat are paired (each value is covered once) to halve the compile time;
    every (unroll, remat) combination is already checked against the loop reference above.
    """
    unroll, remat = unroll_remat
    with jax.enable_x64(True):
        cell, params, xs, carry = make_problem(name, B=3, T=6, D=2, H=3)
        params, xs, carry = jax.tree.map(lambda a: a.astype(jnp.float64), (params, xs, carry))
        lens = LENGTHS[lengths]
        kw = dict(lengths=None if lens is None else jnp.array(lens), reverse=reverse,
                  unroll=unroll, remat=remat)
        f = jax.jit(functools.partial(loss_of, cell, lambda p, x, c: U.unroll(cell, p, x, c, **kw)))
        check_grads(f, (params, xs, carry), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,reverse,lengths", list(itertools.product(
    CELL_NAMES, [False, True], sorted(LENGTHS))))
def test_hoisted_projection_equals_in_loop(name, reverse, lengths):
    cell, params, xs, carry = make_problem(name)
    lens = LENGTHS[lengths]
    kw = dict(lengths=None if lens is None else jnp.array(lens), reverse=reverse)
    (out_a, grads_a), (out_b, grads_b) = [
        outputs_and_grads(lambda p, x, c, h=h: U.unroll(cell, p, x, c, hoist=h, **kw),
                          params, xs, carry) for h in (False, True)]
    assert_trees_close(out_a, out_b)
    assert_trees_close(grads_a, grads_b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_neither_changes_results_nor_receives_gradient(name, reverse):
    cell, params, xs, carry = make_problem(name)
    lengths = jnp.array(RAGGED)
    pad_mask = (np.arange(xs.shape[1])[None, :] >= RAGGED[:, None])[..., None]
    junk = jnp.where(jnp.asarray(pad_mask), 100.0, xs)  # only padded positions differ
    a = U.unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse)
    b = U.unroll(cell, params, junk, carry, lengths=lengths, reverse=reverse)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    run = lambda p, x, c: U.unroll(cell, p, x, c, lengths=lengths, reverse=reverse)
    g_xs = jax.grad(functools.partial(loss_of, cell, run), argnums=1)(params, xs, carry)
    assert np.all(np.asarray(g_xs)[np.broadcast_to(pad_mask, g_xs.shape)] == 0.0)
    assert np.all(np.asarray(a[1])[np.broadcast_to(pad_mask[..., :1], a[1].shape)[..., 0]] == 0.0)
    # An empty sequence (length 0) keeps its initial carry exactly.
    jax.tree.map(lambda f, c: np.testing.assert_array_equal(f[1], c[1]), a[0], carry)


def test_traced_lengths_inside_jit():
    cell, params, xs, carry = make_problem("lstm")
    f = jax.jit(lambda l: U.unroll(cell, params, xs, carry, lengths=l))
    assert_trees_close(f(jnp.array(RAGGED)), reference("lstm", False, tuple(RAGGED))[0])


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_equals_layer_by_layer_reference(name, bidirectional):
    cell, _, xs, _ = make_problem(name)
    params = U.init_stack(cell, jax.random.key(3), xs.shape[-1], 4, layers=2,
                          bidirectional=bidirectional)
    finals, hs = U.unroll_stack(cell, params, xs, lengths=jnp.array(RAGGED))

    ref = xs
    for p in params:
        if bidirectional:
            _, f = U.unroll_reference(cell, p["fwd"], ref, lengths=RAGGED)
            _, b = U.unroll_reference(cell, p["bwd"], ref, lengths=RAGGED, reverse=True)
            ref = jnp.concatenate([f, b], axis=-1)
        else:
            _, ref = U.unroll_reference(cell, p, ref, lengths=RAGGED)
    assert hs.shape == (3, 6, 8 if bidirectional else 4)
    assert len(finals) == 2
    np.testing.assert_allclose(hs, ref, rtol=2e-5, atol=2e-6)


# ----------------------------------------------------------------- errors


def test_bad_inputs_give_clear_errors():
    cell, params, xs, carry = make_problem("lstm")
    with pytest.raises(ValueError, match=r"xs must have rank 3 \(batch, time, features\), got shape \(3, 3\)"):
        U.unroll(cell, params, xs[:, 0])
    with pytest.raises(ValueError, match=r"xs has 2 features but the cell was initialised with input_dim=3"):
        U.unroll(cell, params, xs[..., :2])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=6\], got \[-1\]"):
        U.unroll(cell, params, xs, lengths=jnp.array([6, -1, 2]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=6\], got \[7\]"):
        U.unroll(cell, params, xs, lengths=np.array([7, 1, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\) \(one per example\), got \(2,\)"):
        U.unroll(cell, params, xs, lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"lengths must be integers, got dtype float32"):
        U.unroll(cell, params, xs, lengths=jnp.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"unroll must be a positive integer, got 0"):
        U.unroll(cell, params, xs, unroll=0)
    with pytest.raises(ValueError, match=r"layers must be a positive integer, got 0"):
        U.init_stack(cell, jax.random.key(0), 3, 4, layers=0)
