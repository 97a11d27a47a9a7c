"""The fused unrolls (seqjax.fast) against impl="scan": values and gradients, every path.

Compile time dominates (about a second per jitted function on a 2-core CPU), so each test
compiles ONE function that runs every variant of a cell — impl × reverse × lengths, with
and without probes — and compares them all with the plain scan inside the same program.
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
# impl -> cells it is checked on (all four variants each). "fused_chunked" (the CPU default)
# runs every cell's maths inside the chunk loop; "fused" (every step stored) runs the same
# per-cell maths over the whole sequence, so one cell covers its extra plumbing; "fused"
# with remat=True is routed to the chunked path (checked once).
FAST = {("fused_chunked", False): CELL_NAMES, ("fused", False): ["lstm"],
        ("fused", True): ["lstm"]}


def weighted_loss(final, hs):
    """A scalar that touches every output and every part of the final carry."""
    w_h = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    w_c = sum(jnp.sum(jnp.sin(leaf) * (i + 1.0)) for i, leaf in enumerate(jax.tree.leaves(final)))
    return jnp.sum(hs * w_h) + w_c


def outputs_and_grads(cell, impl, remat, reverse, lengths, params, xs, carry, probes=None):
    """((final, hs), d loss / d(params, xs, carry[, probes])) of one unroll variant."""
    def loss(params, xs, carry, probes):
        final, hs = U.unroll(cell, params, xs, carry, lengths=lengths, reverse=reverse,
                             remat=remat, impl=impl, probes_BxTxH=probes)
        return weighted_loss(final, hs), (final, hs)

    argnums = (0, 1, 2) if probes is None else (0, 1, 2, 3)
    (_, out), grads = jax.value_and_grad(loss, argnums, has_aux=True)(params, xs, carry, probes)
    return out, grads


def fast_variants(name):
    return [(impl, remat, *v) for (impl, remat), names in FAST.items() if name in names
            for v in VARIANTS if remat is False or v == VARIANTS[-1]]


@functools.lru_cache(maxsize=None)
def all_variants(name):
    """Every checked variant of cell `name` and its scan reference, from ONE compiled function.

    Returns {(impl, remat, reverse, lengths, probes): (outputs, grads)}.
    """
    cell, params, xs, carry = make_problem(name)
    B, T, _ = xs.shape
    probes = 0.1 * jax.random.normal(jax.random.key(7), (B, T, cell.hidden_size(params)))

    @jax.jit
    def run(params, xs, carry, ragged, probes):
        out = {}
        for v in [("scan", False, *v) for v in VARIANTS] + fast_variants(name):
            impl, remat, reverse, lengths, with_probes = v
            out[v] = outputs_and_grads(cell, impl, remat, reverse,
                                       ragged if lengths == "ragged" else None, params, xs,
                                       carry, probes if with_probes else None)
        return out

    return run(params, xs, carry, jnp.array(RAGGED), probes)


def assert_trees_close(a, b, **tol):
    tol = {"rtol": 1e-4, "atol": 1e-5} | tol
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_fast_paths_equal_scan(name):
    """Outputs, final carry and gradients wrt params, inputs, initial carry (and probes)."""
    results = all_variants(name)
    assert len(results) == 4 + len(fast_variants(name))
    for v in fast_variants(name):
        impl, remat, reverse, lengths, probes = v
        out, grads = results[v]
        ref_out, ref_grads = results["scan", False, reverse, lengths, probes]
        try:
            assert_trees_close(out, ref_out, rtol=2e-5, atol=2e-6)
            assert_trees_close(grads, ref_grads)
        except AssertionError as e:
            raise AssertionError(f"{name} {impl} remat={remat} reverse={reverse} "
                                 f"lengths={lengths} probes={probes}: {e}") from None


def test_ragged_padding_gets_zero_output_and_gradient():
    """Masked steps of a fast path: zero outputs, zero input gradient, carry untouched."""
    pad = np.arange(6)[None, :] >= RAGGED[:, None]  # (B, T) padded positions
    carry0 = make_problem("lstm")[3]
    for v, ((final, hs), grads) in all_variants("lstm").items():
        if v[0] == "scan" or v[3] != "ragged":
            continue
        g_xs = grads[1]
        assert np.all(np.asarray(hs)[pad] == 0.0), v
        assert np.all(np.asarray(g_xs)[pad] == 0.0), v
        assert np.all(np.asarray(g_xs)[~pad].any(axis=-1)), v
        np.testing.assert_array_equal(final.c[1], carry0.c[1])  # length 0: carry kept


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


def test_default_impl_and_config_resolution():
    assert fast.default_impl("cpu") in U.IMPLS
    assert fast.default_impl("some-new-backend") == "scan"
    assert fast.resolve_impl("auto", "cpu") == fast.default_impl("cpu")
    assert fast.resolve_impl("fused") == "fused"
    with pytest.raises(ValueError, match=r"unknown unroll impl 'fsued'; allowed: auto, .*fused"):
        fast.resolve_impl("fsued")


def test_unsupported_cell_raises_naming_scan():
    @__import__("dataclasses").dataclass(frozen=True)
    class Odd(cells.RNN):
        name = "odd"

    cell = Odd()
    _, params, xs, _ = make_problem("rnn")
    with pytest.raises(ValueError, match=r"impl='fused' supports the cells gru, lstm, rnn; "
                                         r"got cell 'odd'; use impl='scan'"):
        U.unroll(cell, params, xs, impl="fused")
