r"""A parallel unroll for linear recurrences: ``jax.lax.associative_scan`` over time.

For a cell with ``linear_recurrence = True`` (minGRU, minLSTM, LRU; see
``seqjax.cells.modern``) the state obeys s_t = a_t ⊙ s_{t-1} + b_t with a_t, b_t functions
of x_t only. Composing two steps is again such a step,

.. math::  (a_1, b_1) \circ (a_2, b_2) = (a_1 a_2,\; a_2 b_1 + b_2),

which is associative, so all T states come out of one ``associative_scan`` in O(log T)
depth instead of T sequential steps. Both evaluations below give the numbers of
``impl="scan"`` (tested, values and gradients):

* initial carry: folded into the first element, b_first ← a_first s_0 + b_first;
* ``lengths``: a padded step becomes the identity (a = 1, b = 0), so the state is left as
  it was, and its emitted h is zeroed — the masking rule of ``seqjax.unroll``; with
  ``reverse`` the padded tail is met first and leaves s_0 untouched;
* ``reverse``: the same operator scanned from t = T−1 down to 0;
* ``probes_BxTxH`` (the gradient-flow probes): added to b_t at valid steps, which is
  adding them to h_t before it is carried on;
* ``remat``: ``jax.checkpoint`` around the whole parallel computation (its residuals are
  recomputed in the backward pass);
* gradients: the linear-space scan has a custom VJP, the adjoint recurrence run as one
  associative scan in the other direction (half the compile time of differentiating
  through the scan). Reverse mode only: ``jax.jvp``/``jacfwd`` through ``impl="parallel"``
  raise JAX's custom_vjp error; use ``impl="scan"`` for forward mode.

Two evaluations, both registered:

* ``impl="parallel"`` — the pair (a, b) above, in linear space, for every linear cell.
  Stable as it is: it multiplies gates and adds positive or signed terms, never divides by
  a cumulative product (which is what made the paper's cumsum-based scan need log space);
  a product of many gates underflows to 0, the value it stands for.
* ``impl="parallel_log"`` — the paper's log-space evaluation, for cells built with
  ``log_space=True`` (b_t > 0): the part driven by the inputs is scanned as
  (log a, log b) with (l_1, m_1) ∘ (l_2, m_2) = (l_1 + l_2, logaddexp(l_2 + m_1, m_2)); the
  part driven by s_0 (and the probes), which may be negative, is added in linear space:
  s_t = exp(Σ log a) s_0 + exp(log-space part) (+ the probes' linear scan). It keeps the
  relative precision of tiny terms, at a cost (benchmarks/RESULTS.md; 2-core CPU, minGRU and
  minLSTM fwd+bwd at T = 4096: 2.4–2.7× the time and about 4× the compile time of
  "parallel", which has a custom VJP where this one is differentiated through the scan).

``unroll`` (the loop-unrolling factor) and ``hoist`` are knobs of the sequential scan
that do not change numbers; the parallel path ignores them (its input projection is
always computed for all timesteps at once).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from seqjax.cells import CELLS
from seqjax.unroll import register_impl, valid_mask

Array = jax.Array

# log b at padded steps: exp() of it is 0, and logaddexp/its gradient stay finite (−inf
# would give nan gradients where two padded steps meet).
_LOG_ZERO = -1e30


def is_linear_recurrence(cell) -> bool:
    return bool(getattr(cell, "linear_recurrence", False))


def linear_cell_names() -> list[str]:
    return sorted(n for n, c in CELLS.items() if getattr(c, "linear_recurrence", False))


def _combine(left, right):
    """Apply ``left`` then ``right``: s ↦ a2 (a1 s + b1) + b2."""
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


@jax.custom_jvp
def _logaddexp(x, y):
    """log(e^x + e^y) for finite x, y, with the derivative written as σ(x − y), σ(y − x).

    jnp.logaddexp also handles ±inf and nan; inside an associative scan its gradient graph
    compiles about 1.3× slower than this one on CPU (measured at T = 40).
    """
    return jnp.maximum(x, y) + jnp.log1p(jnp.exp(-jnp.abs(x - y)))


@_logaddexp.defjvp
def _logaddexp_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    w = jax.nn.sigmoid(x - y)
    return _logaddexp(x, y), dx * w + dy * (1.0 - w)


def _combine_log(left, right):
    """``_combine`` on (log a, log b) with b > 0."""
    la1, lb1 = left
    la2, lb2 = right
    return la1 + la2, _logaddexp(la2 + lb1, lb2)


def _first(reverse: bool) -> int:
    return -1 if reverse else 0


def _scan_pairs(a_BxTxS, b_BxTxS, reverse):
    return jax.lax.associative_scan(_combine, (a_BxTxS, b_BxTxS), reverse=reverse, axis=1)[1]


def _shift_in_zero(x_BxTxS, later: bool):
    """x moved one step along time, a zero entering: x_{t+1} at t (``later``) or x_{t-1}."""
    zero = jnp.zeros_like(x_BxTxS[:, :1])
    if later:
        return jnp.concatenate([x_BxTxS[:, 1:], zero], axis=1)
    return jnp.concatenate([zero, x_BxTxS[:, :-1]], axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _recurrence_from_zero(a_BxTxS, b_BxTxS, reverse):
    """s_t = a_t s_prev + b_t from a zero state, prev = t−1 (t+1 when ``reverse``).

    Its VJP is the adjoint recurrence, itself one associative scan in the other direction:
    G_t = g_t + a_next G_next (next = t+1, or t−1 when ``reverse``), then ∂b_t = G_t and
    ∂a_t = G_t s_prev. Differentiating through the scan instead costs about twice the
    compile time (measured on CPU at T = 4096: 28 s vs 16 s) for the same run time.
    Reverse mode only (jax.jvp/jacfwd through it raise JAX's custom_vjp error).
    """
    return _scan_pairs(a_BxTxS, b_BxTxS, reverse)


def _recurrence_fwd(a_BxTxS, b_BxTxS, reverse):
    s_BxTxS = _scan_pairs(a_BxTxS, b_BxTxS, reverse)
    return s_BxTxS, (a_BxTxS, s_BxTxS)


def _recurrence_bwd(reverse, residuals, g_BxTxS):
    a_BxTxS, s_BxTxS = residuals
    a_next = _shift_in_zero(a_BxTxS, later=not reverse)
    G_BxTxS = _scan_pairs(a_next, g_BxTxS, not reverse)
    return G_BxTxS * _shift_in_zero(s_BxTxS, later=reverse), G_BxTxS


_recurrence_from_zero.defvjp(_recurrence_fwd, _recurrence_bwd)


def _linear_scan(a_BxTxS, b_BxTxS, s0_BxS, reverse):
    """States of s_t = a_t s_{t-1} + b_t from s0, in scan order."""
    i = _first(reverse)
    b_BxTxS = b_BxTxS.at[:, i].add(a_BxTxS[:, i] * s0_BxS)
    return _recurrence_from_zero(a_BxTxS, b_BxTxS, reverse)


def _states(cell, params, xs_BxTxD, s0_BxS, valid_BxTx1, probes_BxTxS, reverse, log_space):
    """All states s_t (B, T, S), padded steps being the identity."""
    if log_space:
        la, lb = cell.log_recurrence(params, xs_BxTxD)
        if valid_BxTx1 is not None:
            la = jnp.where(valid_BxTx1, la, 0.0)
            lb = jnp.where(valid_BxTx1, lb, _LOG_ZERO)
        la_cum, lb_cum = jax.lax.associative_scan(_combine_log, (la, lb), reverse=reverse, axis=1)
        if probes_BxTxS is None:
            from_s0 = jnp.exp(la_cum) * s0_BxS[:, None]
        else:
            from_s0 = _linear_scan(jnp.exp(la), probes_BxTxS, s0_BxS, reverse)
        return from_s0 + jnp.exp(lb_cum)
    a, b = cell.recurrence(params, xs_BxTxD)
    a = jnp.broadcast_to(a, b.shape)
    if probes_BxTxS is not None:
        b = b + probes_BxTxS
    if valid_BxTx1 is not None:
        a = jnp.where(valid_BxTx1, a, jnp.ones_like(a))
        b = jnp.where(valid_BxTx1, b, jnp.zeros_like(b))
    return _linear_scan(a, b, s0_BxS, reverse)


@functools.partial(jax.jit, static_argnames=("cell", "reverse", "unroll", "remat", "hoist",
                                             "log_space"))
def _unroll_parallel_jit(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                         unroll, remat, hoist, log_space):
    del unroll, hoist  # knobs of the sequential scan; see the module docstring
    B, T, _ = xs_BxTxD.shape

    def run(params, xs_BxTxD, carry, probes_BxTxH):
        valid_BxTx1 = None
        if lengths is not None:
            valid_BxTx1 = valid_mask(lengths, T)[..., None]
        probes_BxTxS = None
        if probes_BxTxH is not None:
            probes_BxTxS = cell.to_state(probes_BxTxH)
            if valid_BxTx1 is not None:
                probes_BxTxS = jnp.where(valid_BxTx1, probes_BxTxS, jnp.zeros_like(probes_BxTxS))
        s_BxTxS = _states(cell, params, xs_BxTxD, cell.to_state(carry), valid_BxTx1,
                          probes_BxTxS, reverse, log_space)
        hs_BxTxH = cell.from_state(s_BxTxS)
        final = hs_BxTxH[:, 0] if reverse else hs_BxTxH[:, -1]
        if valid_BxTx1 is not None:
            hs_BxTxH = jnp.where(valid_BxTx1, hs_BxTxH, jnp.zeros_like(hs_BxTxH))
        return final, hs_BxTxH

    if remat:
        run = jax.checkpoint(run)
    return run(params, xs_BxTxD, carry, probes_BxTxH)


def _check(cell, xs_BxTxD, log_space: bool) -> None:
    impl = "parallel_log" if log_space else "parallel"
    if not is_linear_recurrence(cell):
        raise ValueError(
            f"impl={impl!r} needs a cell whose recurrence is linear in its state "
            f"(s_t = a_t * s_(t-1) + b_t, a_t and b_t functions of x_t only); cell "
            f"{getattr(cell, 'name', cell)!r} is not. Cells it runs: "
            f"{', '.join(linear_cell_names())}; use impl='scan' for the others")
    if log_space and not getattr(cell, "log_space", False):
        raise ValueError(
            f"impl='parallel_log' needs a cell built with log_space=True (b_t > 0); cell "
            f"{cell.name!r} has log_space={getattr(cell, 'log_space', False)}; use "
            f"impl='parallel'")
    if xs_BxTxD.shape[1] == 0:
        raise ValueError(f"impl={impl!r} needs at least one timestep, got xs of shape "
                         f"{tuple(xs_BxTxD.shape)}")


def unroll_parallel(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse, unroll,
                    remat, hoist):
    """``IMPLS["parallel"]``: ``seqjax.unroll.unroll(..., impl="parallel")`` calls it."""
    _check(cell, xs_BxTxD, log_space=False)
    return _unroll_parallel_jit(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                                reverse=reverse, unroll=unroll, remat=remat, hoist=hoist,
                                log_space=False)


def unroll_parallel_log(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                        unroll, remat, hoist):
    """``IMPLS["parallel_log"]``: the log-space evaluation, for cells with ``log_space=True``."""
    _check(cell, xs_BxTxD, log_space=True)
    return _unroll_parallel_jit(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                                reverse=reverse, unroll=unroll, remat=remat, hoist=hoist,
                                log_space=True)


register_impl("parallel", unroll_parallel)
register_impl("parallel_log", unroll_parallel_log)
