"""``impl="parallel_chunked"``: the chunked scan of ``seqjax.parallel`` against lax.scan.

Values and gradients against ``impl="scan"`` for minGRU, minLSTM and LRU, on the problems
and variants of test_cells_modern (T = 6; its scan results are cached and shared), the knobs
spread over four cases (the whole file has a 20-second budget, mostly compiles): forward
with an initial carry and a chunk length that divides T; reverse with ragged lengths, remat
and chunk lengths that do not (identity padding); nonzero probes, whose gradients are the
hidden-state gradients of ``seqjax.diagnostics``; each value of ``across`` and ``fixup``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from seqjax import parallel as P
from seqjax import unroll as U
from tests.test_cells_modern import (loss_and_outputs, make_problem, random_params, run_impl,
                                     unroll_kw)

# (label, variant of test_cells_modern.VARIANTS, options of unroll_parallel_chunked, probes).
# At T = 6 the default chunk length is 2 (three chunks, no padding, and the LRU's a stays
# broadcast over chunks and batch); chunk=4 pads T to 8, chunk=5 to 10. The first case runs
# through ``unroll(impl="parallel_chunked")`` (the registered defaults). remat and unroll
# change no numbers: the minLSTM case turns them off (a third less compile time) and is
# still compared with the scan that has them.
CASES = [
    ("mingru", "fwd", None, False),
    ("lru", "fwd", {}, False),
    ("minlstm", "rev_ragged_remat", {"chunk": 4, "fixup": False, "remat": False, "unroll": 1},
     False),
    ("lru", "rev_ragged_remat", {"chunk": 5, "across": "associative"}, True),
]


def chunked(cell, variant, options):
    """run(params, xs, carry, probes) of the chunked scan with the variant's knobs and
    ``options`` (None: ``unroll(..., impl="parallel_chunked")``)."""
    kw = unroll_kw(variant)
    if options is None:
        return lambda p, x, c, q: U.unroll(cell, p, x, c, probes_BxTxH=q,
                                           impl="parallel_chunked", **kw)
    kw = {**kw, "hoist": False, **options}
    lengths = kw.pop("lengths")
    return lambda p, x, c, q: P.unroll_parallel_chunked(cell, p, x, c, lengths, q, **kw)


def outputs_and_grads(run, params, xs, carry, probes):
    """test_cells_modern's loss, differentiated also with respect to the probes."""
    def loss(p, x, c, q):
        return loss_and_outputs(lambda p, x, c: run(p, x, c, q), p, x, c)

    (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(
        params, xs, carry, probes)
    return out, grads


def assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)


@pytest.mark.parametrize("label,variant,options,probes", CASES)
def test_chunked_equals_sequential_scan(label, variant, options, probes):
    cell, params, xs, carry = make_problem(label)
    if not probes:
        out, grads = outputs_and_grads(chunked(cell, variant, options), params, xs, carry, None)
        ref_out, ref_grads = run_impl(label, "scan", variant)
        assert_trees_close(out, ref_out)
        assert_trees_close(grads[:3], ref_grads)
        return
    probes = jnp.asarray(0.2 * np.random.default_rng(1).standard_normal(
        (*xs.shape[:2], cell.hidden_size(params))), jnp.float32)
    kw = unroll_kw(variant)
    scan = lambda p, x, c, q: U.unroll(cell, p, x, c, probes_BxTxH=q, impl="scan", **kw)
    out, grads = outputs_and_grads(chunked(cell, variant, options), params, xs, carry, probes)
    ref_out, ref_grads = outputs_and_grads(scan, params, xs, carry, probes)
    assert_trees_close(out, ref_out)
    assert_trees_close(grads, ref_grads)
    assert float(jnp.max(jnp.abs(ref_grads[3]))) > 0.1  # ∂L/∂h_t, nonzero at valid steps


def test_one_step_chunks_and_a_single_chunk():
    """chunk=1 (T chunks of one step) and chunk > T (one chunk of T steps)."""
    cell, params, xs, carry = make_problem("mingru")
    run = lambda chunk: chunked(cell, "fwd", {"chunk": chunk})(params, xs, carry, None)
    ones, whole = jax.jit(lambda: (run(1), run(50)))()
    ref = run_impl("mingru", "scan", "fwd")[0]
    assert_trees_close(ones, ref)
    assert_trees_close(whole, ref)
    assert [P.default_chunk(T) for T in (1, 6, 7, 4096)] == [1, 2, 3, 64]


@pytest.mark.parametrize("chunk", [0, -3, 2.5, True, "4"])
def test_bad_chunk_names_the_value_and_what_is_allowed(chunk):
    cell, params, xs, carry = make_problem("mingru")
    with pytest.raises(ValueError, match=rf"impl='parallel_chunked' takes chunk=None \(about √T "
                                         rf"steps per chunk\) or a positive integer \(steps per "
                                         rf"chunk\), got chunk={chunk!r}"):
        chunked(cell, "fwd", {"chunk": chunk})(params, xs, carry, None)


def test_bad_across_and_cells_and_empty_sequences_are_refused():
    cell, params, xs, carry = make_problem("mingru")
    with pytest.raises(ValueError, match=r"unknown across 'tree'; allowed: associative, "
                                         r"sequential"):
        chunked(cell, "fwd", {"across": "tree"})(params, xs, carry, None)
    with pytest.raises(ValueError, match=r"impl='parallel_chunked' needs at least one timestep"):
        U.unroll(cell, params, jnp.ones((1, 0, 3)), impl="parallel_chunked")
    lstm = cells.get_cell("lstm")
    with pytest.raises(ValueError, match=r"impl='parallel_chunked' needs a cell whose "
                                         r"recurrence is linear.*cell 'lstm' is not"):
        U.unroll(lstm, random_params(lstm, 2, 4, np.random.default_rng(0)), jnp.ones((1, 3, 2)),
                 impl="parallel_chunked")
