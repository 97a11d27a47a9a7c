"""The fused unrolls (seqjax.fast) against impl="scan": values and gradients, every path.

Compile time dominates on a 2-core CPU (about a second per jitted function), so the
reference (impl="scan") of every variant of a cell is ONE compiled program, and every fast
variant of the cell another.
The variants cover reverse × lengths (full / ragged, with an empty example) for every cell,
with probes (∂L/∂h_t) on the diagonal, and every residual mode of the custom VJP.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax import cells, fast
from seqjax import unroll as U
from tests.helpers import CELL_CASES, RAGGED, make_problem

CELL_NAMES = sorted(CELL_CASES)
# (reverse, lengths, probes): every reverse × lengths pair, probes on the diagonal, so every
# branch (reverse, masking, probes) runs alone and with each other one.
VARIANTS = [(False, "full", False), (True, "full", True), (False, "ragged", True),
            (True, "ragged", False)]
# Fast paths: name -> (run(cell, params, xs, carry, lengths, reverse, probes), variants, cells).
# With T = 6: "carries" in chunks of 4 (padded to 8 with masked steps: two chunks, the
# residuals rebuilt by matmul) runs every variant of every cell; "fused" as registered
# (tiny problem: every step's residuals stored, one chunk) and "fused_chunked" (chunk-start
# checkpoints, chunks of 2: three chunks, each rerun) run a subset; so does remat=True,
# which routes "fused" to the chunk-start checkpoints.
FAST = {
    "carries/K=4": (lambda c, p, x, h, l, r, pr: fast.fused_unroll(
        c, p, x, h, l, pr, reverse=r, mode="carries", K=4), VARIANTS, CELL_NAMES),
    "all/K=4": (lambda c, p, x, h, l, r, pr: fast.fused_unroll(
        c, p, x, h, l, pr, reverse=r, mode="all", K=4), VARIANTS[1:3], ["lstm"]),
    "fused": (lambda c, p, x, h, l, r, pr: U.unroll(
        c, p, x, h, lengths=l, reverse=r, probes_BxTxH=pr, impl="fused"),
        VARIANTS[2:], CELL_NAMES),
    "fused_chunked": (lambda c, p, x, h, l, r, pr: U.unroll(
        c, p, x, h, lengths=l, reverse=r, probes_BxTxH=pr, impl="fused_chunked"),
        VARIANTS[1:3], CELL_NAMES),
    "fused+remat": (lambda c, p, x, h, l, r, pr: U.unroll(
        c, p, x, h, lengths=l, reverse=r, probes_BxTxH=pr, impl="fused", remat=True),
        VARIANTS[3:], ["lstm"]),
}
SCAN = lambda c, p, x, h, l, r, pr: U.unroll(c, p, x, h, lengths=l, reverse=r,
                                             probes_BxTxH=pr, impl="scan")


def weighted_loss(final, hs):
    """A scalar that touches every output and every part of the final carry."""
    w_h = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    w_c = sum(jnp.sum(jnp.sin(leaf) * (i + 1.0)) for i, leaf in enumerate(jax.tree.leaves(final)))
    return jnp.sum(hs * w_h) + w_c


def outputs_and_grads(run, cell, params, xs, carry, lengths, reverse, probes):
    """((final, hs), d loss / d(params, xs, carry[, probes])) of one unroll variant."""
    def loss(params, xs, carry, probes):
        final, hs = run(cell, params, xs, carry, lengths, reverse, probes)
        return weighted_loss(final, hs), (final, hs)

    argnums = (0, 1, 2) if probes is None else (0, 1, 2, 3)
    (_, out), grads = jax.value_and_grad(loss, argnums, has_aux=True)(params, xs, carry, probes)
    return out, grads


def problem(name):
    cell, params, xs, carry = make_problem(name)
    B, T, _ = xs.shape
    probes = 0.1 * jax.random.normal(jax.random.key(7), (B, T, cell.hidden_size(params)))
    return cell, params, xs, carry, probes


def variant_args(variant, probes, ragged):
    reverse, lengths, with_probes = variant
    return ragged if lengths == "ragged" else None, reverse, probes if with_probes else None


@functools.lru_cache(maxsize=None)
def references(name):
    """impl="scan" for every variant (one compiled program): {variant: (outputs, grads)}."""
    cell, params, xs, carry, probes = problem(name)

    @jax.jit
    def run_all(params, xs, carry, ragged, probes):
        return {v: outputs_and_grads(SCAN, cell, params, xs, carry,
                                     *variant_args(v, probes, ragged)) for v in VARIANTS}

    return run_all(params, xs, carry, jnp.array(RAGGED), probes)


@functools.lru_cache(maxsize=None)
def fast_results(name):
    """Every fast variant of cell `name` from ONE compiled program: {(path, variant): ...}."""
    cell, params, xs, carry, probes = problem(name)

    @jax.jit
    def run_all(params, xs, carry, ragged, probes):
        return {(path, v): outputs_and_grads(run, cell, params, xs, carry,
                                             *variant_args(v, probes, ragged))
                for path, (run, variants, names) in FAST.items() if name in names
                for v in variants}

    return run_all(params, xs, carry, jnp.array(RAGGED), probes)


def assert_trees_close(a, b, **tol):
    tol = {"rtol": 1e-4, "atol": 1e-5} | tol
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_fast_paths_equal_scan(name):
    """Outputs, final carry and gradients wrt params, inputs, initial carry (and probes)."""
    refs, results = references(name), fast_results(name)
    expected = sum(len(vs) for _, vs, names in FAST.values() if name in names)
    assert len(results) == expected >= 6
    for (path, v), (out, grads) in results.items():
        ref_out, ref_grads = refs[v]
        try:
            assert_trees_close(out, ref_out, rtol=2e-5, atol=2e-6)
            assert_trees_close(grads, ref_grads)
        except AssertionError as e:
            raise AssertionError(f"{name} {path} (reverse, lengths, probes)={v}: {e}") from None


def test_ragged_padding_gets_zero_output_and_gradient():
    """Masked steps of a fast path: zero outputs, zero input gradient, carry untouched."""
    pad = np.arange(6)[None, :] >= RAGGED[:, None]  # (B, T) padded positions
    carry0 = make_problem("lstm")[3]
    checked = 0
    for (path, v), ((final, hs), grads) in fast_results("lstm").items():
        if v[1] != "ragged":
            continue
        g_xs = grads[1]
        assert np.all(np.asarray(hs)[pad] == 0.0), (path, v)
        assert np.all(np.asarray(g_xs)[pad] == 0.0), (path, v)
        assert np.all(np.asarray(g_xs)[~pad].any(axis=-1)), (path, v)
        np.testing.assert_array_equal(final.c[1], carry0.c[1])  # length 0: carry kept
        checked += 1
    assert checked >= 4


def test_check_grads_finite_differences():
    """Reverse-mode gradients of the custom VJP against finite differences, in float64.

    One case (each compile costs seconds): the CPU default path, reverse, with ragged
    lengths and T = 7 (chunks of 3, so two masked padding steps), on the cheapest cell to
    compile; every cell and path is checked against impl="scan" above, which test_unroll
    checks against finite differences the same way.
    """
    name, impl, reverse, T = "rnn", "fused_chunked", True, 7
    with jax.enable_x64(True):
        cell, params, xs, carry = make_problem(name, B=3, T=T, D=2, H=3)
        params, xs, carry = jax.tree.map(lambda a: a.astype(jnp.float64), (params, xs, carry))
        lengths = jnp.array([T, 0, T - 2])

        @jax.jit
        def f(params, xs, carry):
            final, hs = U.unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse,
                                 impl=impl)
            return weighted_loss(final, hs)

        check_grads(f, (params, xs, carry), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_chunked_recurrence_memory_grows_like_sqrt_T():
    """XLA's temp memory for a training step: chunked ≪ every-step residuals at long T."""
    cell = cells.get_cell("lstm")
    params = cell.init(jax.random.key(0), 2, 8)
    xs = jnp.zeros((4, 900, 2))

    def temp_bytes(impl):
        f = jax.jit(jax.grad(lambda p, x: jnp.sum(U.unroll(cell, p, x, impl=impl)[1][:, -1])))
        return f.lower(params, xs).compile().memory_analysis().temp_size_in_bytes

    stored, chunked = temp_bytes("fused"), temp_bytes("fused_chunked")
    per_step = 4 * 8 * 4  # one (B, H) float32 array
    assert stored > 900 * 6 * per_step  # gates (4H) + C + h for every step
    assert chunked < stored / 4


# ----------------------------------------------------------------- selection and errors


def test_chunk_length_is_about_sqrt_T_and_tiles_the_sequence():
    for T in (1, 2, 3, 7, 12, 100, 997, 1000, 10_000, 100_000):
        K = fast.chunk_length(T)
        assert 1 <= K <= T
        if T > 3:
            assert np.sqrt(T) / 2 <= K <= 2 * np.sqrt(T) + 1
    assert fast.chunk_length(1000) == 25 and 1000 % 25 == 0
    assert fast.chunk_length(997) == 32  # prime: padded to 1024 with masked steps


def test_storage_plan_stores_everything_only_below_the_budget():
    lstm, gru = cells.get_cell("lstm"), cells.get_cell("gru")
    assert fast.storage_plan(lstm, B=32, T=100, H=128) == ("all", 100)  # 9.8 MB of residuals
    assert fast.storage_plan(lstm, B=16, T=1000, H=128) == ("carries", 64)  # 49 MB
    assert fast.storage_plan(gru, B=64, T=500, H=256) == ("carries", 16)
    assert fast.storage_plan(lstm, B=1, T=10, H=4) == ("all", 10)


def test_fast_registers_its_backend_defaults_for_resolve_impl():
    assert U.DEFAULT_IMPLS == fast.DEFAULT_IMPLS  # what unroll.resolve_impl reads for "auto"
    for backend, impl in fast.DEFAULT_IMPLS.items():
        assert impl in U.IMPLS
        assert U.resolve_impl("auto", "lstm", backend=backend) == impl
    for name in ("fused", "fused_chunked"):
        assert U.IMPL_CELLS[name] == fast.FAST_CELLS


def test_unsupported_cell_raises_naming_scan():
    @__import__("dataclasses").dataclass(frozen=True)
    class Odd(cells.RNN):
        name = "odd"

    cell = Odd()
    _, params, xs, carry = make_problem("rnn")
    with pytest.raises(ValueError, match=r"unknown residual mode 'some'; allowed: all, "
                                         r"carries, starts"):
        fast.fused_unroll(cells.get_cell("rnn"), params, xs, carry, mode="some")
    with pytest.raises(ValueError, match=r"impl='fused' supports the cells gru, lstm, rnn; "
                                         r"got cell 'odd'; use impl='scan'"):
        U.unroll(cell, params, xs, impl="fused")


def test_fused_accepts_a_frozen_dict_of_params():
    """flax hands a module's dict-valued param to the cell as a FrozenDict."""
    from flax.core import FrozenDict
    cell = cells.get_cell("lstm")
    params = cell.init(jax.random.key(0), 3, 4)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    loss = lambda p: jnp.sum(U.unroll(cell, p, xs, impl="fused")[1] ** 2)
    g_frozen = jax.grad(loss)(FrozenDict(params))
    g_plain = jax.grad(loss)(params)
    for k in params:
        np.testing.assert_allclose(g_frozen[k], g_plain[k], rtol=1e-6)
