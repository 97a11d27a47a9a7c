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

Two evaluations of the whole sequence, both registered:

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

A third, chunked evaluation (registered as well):

* ``impl="parallel_chunked"`` — T split into chunks of K steps (K ≈ √T by default, option
  ``chunk``; T padded to a multiple of K with identity steps, as ``lengths`` masks). One
  ``lax.scan`` over the K steps of every chunk at once (vectorised over chunks and batch)
  runs each chunk from a zero state, which gives its summary (A = product of its a,
  B = its state at its end); the summaries are combined across the T/K chunks by a short
  sequential scan (option ``across="associative"``: ``jax.lax.associative_scan``), which
  gives the state s_in entering each chunk; every step is then fixed up as
  s_t = (product of a in the chunk up to t) ⊙ s_in + local_t (option ``fixup=False``: the
  chunk's K steps run again from s_in instead; same numbers). 2·√T sequential steps of
  (T/√T)·B·S elements each instead of T steps of B·S or log₂ T passes over all of (B, T, S).
  Gradients by a custom VJP: the adjoint recurrence through the same chunked scan in the
  other direction (reverse mode only). The LRU's a, the same at every step, stays
  broadcast (K, 1, 1, S) when nothing is masked. Initial carry, ``lengths``, ``reverse``,
  probes and ``remat`` as above; ``unroll`` unrolls the scans inside the chunks.
  Defaults, from a loaded 2-core CPU only (fwd+bwd, B=8, H=128; no GPU measurement yet):
  with ``across="associative"`` a pass took 0.98–1.34× the time of "sequential" at
  T = 4096 and 16,384 (0.8× at T = 512) and compiled in about twice the time;
  the fix-up (default) took 1.00–1.38× the time of rerunning each chunk (``fixup=False``);
  it stays the default because rerunning adds K sequential steps, which cost most where
  sequential steps are the bottleneck (an accelerator; not measured).
  benchmarks/results/parallel_chunked_cpu_2026-11-30.json has the defaults against
  "scan" and "parallel".

``unroll`` (the loop-unrolling factor) and ``hoist`` are knobs of the sequential scan
that do not change numbers; "parallel" and "parallel_log" ignore them (their input
projection is always computed for all timesteps at once), "parallel_chunked" ignores
``hoist``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from seqjax.cells import CELLS, check_choice, is_positive_int
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


def _check(cell, xs_BxTxD, log_space: bool, impl: str | None = None) -> None:
    impl = impl or ("parallel_log" if log_space else "parallel")
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


# --------------------------------------------------------------------------- chunked


def default_chunk(T: int) -> int:
    """Steps per chunk of ``impl="parallel_chunked"`` when none is given: round(√T), at
    least 1, which balances the K sequential steps inside the chunks against the T/K
    chunks combined across."""
    return max(1, round(math.sqrt(T)))


def check_chunk(chunk) -> None:
    """Raise a ValueError unless ``chunk`` is None or a positive integer (a bool is not one)."""
    if chunk is not None and not is_positive_int(chunk):
        raise ValueError(f"impl='parallel_chunked' takes chunk=None (about √T steps per chunk) "
                         f"or a positive integer (steps per chunk), got chunk={chunk!r}")


def _to_chunks(x_BxTxF, K: int, N: int):
    """(B, T, F) -> (K, N, B, F): step k of chunk n is time n·K + k; T padded to N·K."""
    B, T, F = x_BxTxF.shape
    x_BxTxF = jnp.pad(x_BxTxF, ((0, 0), (0, N * K - T), (0, 0)))
    return jnp.transpose(x_BxTxF.reshape(B, N, K, F), (2, 1, 0, 3))


def _from_chunks(x_KxNxBxF, T: int):
    """The inverse of ``_to_chunks``, padding dropped: (K, N, B, F) -> (B, T, F)."""
    K, N, B, F = x_KxNxBxF.shape
    return jnp.transpose(x_KxNxBxF, (2, 1, 0, 3)).reshape(B, N * K, F)[:, :T]


def _chunk_step(emit_before):
    """One step of the recurrence inside a chunk, on the carry (s, p) with p the product of
    the a met so far in the chunk. Forward (``emit_before`` False): s ← a s + b, emitting
    the new s and p. Adjoint (True), on (c, p) with b the incoming gradient g: emits
    G = g + c and the p before the step, then c ← a G (the gradient reaching the previous
    state), p ← a p."""
    def step(carry, ab):
        s, p = carry
        a, b = ab
        if emit_before:
            out = b + s
            return (a * out, a * p), (out, p)
        s, p = a * s + b, a * p
        return (s, p), (s, p)
    return step


def _chunked(a, b, s0_BxS, reverse, unroll, across, emit_before, fixup):
    """The recurrence over chunked (K, N, B, S) coefficients, in scan order (``reverse``):
    the chunks from a zero state, all at once (one lax.scan over their K steps), which gives
    each chunk's summary (product of its a, its state at its end); then the state entering
    every chunk (``_across_chunks``, from s0); then every step with that state, either as
    the fix-up s_t = (product of a in the chunk up to t) s_in + local_t (``fixup``) or by
    running the K steps again from it.

    ``a`` may be broadcast along chunks and batch ((K, 1, 1, S) for the LRU, whose a is the
    same at every step): the products of a then stay that small.

    Returns (the emitted values (K, N, B, S), the state after the last chunk)."""
    step = _chunk_step(emit_before)
    start = (jnp.zeros_like(b[0]), jnp.ones_like(a[0]))  # (N, B, S), a's (N|1, B|1, S)
    if fixup:
        (B_NxBxS, A_NxBxS), (local, prod) = jax.lax.scan(step, start, (a, b), reverse=reverse,
                                                         unroll=unroll)
    else:
        carry_only = lambda carry, ab: (step(carry, ab)[0], None)
        B_NxBxS, A_NxBxS = jax.lax.scan(carry_only, start, (a, b), reverse=reverse,
                                        unroll=unroll)[0]
    s_in_NxBxS, last = _across_chunks(A_NxBxS, B_NxBxS, s0_BxS, reverse, across)
    if fixup:
        return prod * s_in_NxBxS[None] + local, last

    def again(s, ab):  # the same step, without the product
        (s, _), (out, _) = step((s, jnp.ones_like(s)), ab)
        return s, out

    return jax.lax.scan(again, s_in_NxBxS, (a, b), reverse=reverse, unroll=unroll)[1], last


def _across_chunks(A_NxBxS, B_NxBxS, s0_BxS, reverse, across):
    """(the state entering each chunk, the state after the last), from the chunk summaries
    and s0 entering the first chunk in scan order: an associative scan over the chunks
    (``across="associative"``) or a sequential one (``"sequential"``)."""
    A_NxBxS = jnp.broadcast_to(A_NxBxS, (B_NxBxS.shape[0],) + A_NxBxS.shape[1:])
    if across == "sequential":
        def step(s, AB):
            A, B = AB
            return A * s + B, s

        last, s_in = jax.lax.scan(step, s0_BxS, (A_NxBxS, B_NxBxS), reverse=reverse)
        return s_in, last
    i = _first(reverse)
    B_NxBxS = B_NxBxS.at[i].add(A_NxBxS[i] * s0_BxS)
    S_NxBxS = jax.lax.associative_scan(_combine, (A_NxBxS, B_NxBxS), reverse=reverse, axis=0)[1]
    if reverse:
        return jnp.concatenate([S_NxBxS[1:], s0_BxS[None]], axis=0), S_NxBxS[0]
    return jnp.concatenate([s0_BxS[None], S_NxBxS[:-1]], axis=0), S_NxBxS[-1]


ACROSS = ("associative", "sequential")


def _previous(s_KxNxBxS, s0_BxS, reverse):
    """The state before each step (scan order): s shifted by one step of time, s0 first."""
    if reverse:
        edge = jnp.concatenate([s_KxNxBxS[0, 1:], s0_BxS[None]], axis=0)
        return jnp.concatenate([s_KxNxBxS[1:], edge[None]], axis=0)
    edge = jnp.concatenate([s0_BxS[None], s_KxNxBxS[-1, :-1]], axis=0)
    return jnp.concatenate([edge[None], s_KxNxBxS[:-1]], axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _chunked_recurrence(a, b, s0_BxS, reverse, unroll, across, fixup):
    """All states (K, N, B, S) of s_t = a_t s_prev + b_t from s0, chunked layout.

    Its VJP is the adjoint recurrence G_t = g_t + a_next G_next, run by the same chunked
    scan in the other direction; then ∂b_t = G_t, ∂a_t = G_t s_prev, ∂s0 = a_first G_first.
    Reverse mode only, as ``impl="parallel"``."""
    return _chunked(a, b, s0_BxS, reverse, unroll, across, False, fixup)[0]


def _chunked_fwd(a, b, s0_BxS, reverse, unroll, across, fixup):
    s = _chunked(a, b, s0_BxS, reverse, unroll, across, False, fixup)[0]
    return s, (a, s, s0_BxS)


def _chunked_bwd(reverse, unroll, across, fixup, residuals, g):
    a, s, s0_BxS = residuals
    G, ds0_BxS = _chunked(a, g, jnp.zeros_like(s0_BxS), not reverse, unroll, across, True,
                          fixup)
    da = G * _previous(s, s0_BxS, reverse)
    broadcast = tuple(i for i, n in enumerate(a.shape) if n == 1 and da.shape[i] != 1)
    return jnp.sum(da, axis=broadcast, keepdims=True), G, ds0_BxS


_chunked_recurrence.defvjp(_chunked_fwd, _chunked_bwd)


@functools.partial(jax.jit, static_argnames=("cell", "reverse", "unroll", "remat", "K",
                                             "across", "fixup"))
def _unroll_chunked_jit(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                        unroll, remat, K, across, fixup):
    B, T, _ = xs_BxTxD.shape
    N = -(-T // K)

    def run(params, xs_BxTxD, carry, probes_BxTxH):
        a, b = cell.recurrence(params, _to_chunks(xs_BxTxD, K, N))  # (K, N, B, S)
        a = jnp.broadcast_to(a, (K,) + a.shape[1:])  # the LRU's stays (K, 1, 1, S)
        t_KxNx1x1 = (jnp.arange(N)[None, :] * K + jnp.arange(K)[:, None])[..., None, None]
        valid = None  # (K, N, B|1, 1): t < lengths[b] (<= T), or t < T (the padding to N·K)
        if lengths is not None:
            valid = t_KxNx1x1 < lengths[None, None, :, None]
        elif N * K != T:
            valid = t_KxNx1x1 < T
        if probes_BxTxH is not None:
            b = b + _to_chunks(cell.to_state(probes_BxTxH), K, N)
        if valid is not None:
            a = jnp.where(valid, a, jnp.ones_like(a))
            b = jnp.where(valid, b, jnp.zeros_like(b))
        s = _chunked_recurrence(a, b, cell.to_state(carry), reverse, unroll, across, fixup)
        hs_BxTxH = _from_chunks(cell.from_state(s), T)
        final = hs_BxTxH[:, 0] if reverse else hs_BxTxH[:, -1]
        if lengths is not None:
            hs_BxTxH = jnp.where(valid_mask(lengths, T)[..., None], hs_BxTxH,
                                 jnp.zeros_like(hs_BxTxH))
        return final, hs_BxTxH

    if remat:
        run = jax.checkpoint(run)
    return run(params, xs_BxTxD, carry, probes_BxTxH)


def unroll_parallel_chunked(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                            unroll, remat, hoist, chunk=None, across="sequential",
                            fixup=True):
    """``IMPLS["parallel_chunked"]``: the chunked scan (module docstring).

    ``chunk``: steps per chunk, a positive integer (more than T is one chunk) or None for
    ``default_chunk(T)`` ≈ √T. ``across``: how the chunk summaries are combined, "sequential"
    (a lax.scan over the T/K chunks) or "associative" (``jax.lax.associative_scan``).
    ``fixup``: every step from the state entering its chunk as prod ⊙ s_in + local (True) or
    by running the chunk's K steps again from s_in (False); same numbers. ``unroll`` unrolls
    the scans inside the chunks; ``hoist`` is ignored (the input projection is one matmul
    over all steps). ``unroll(..., impl="parallel_chunked")`` takes the defaults; call this
    function (or register a ``functools.partial`` of it) for others."""
    _check(cell, xs_BxTxD, log_space=False, impl="parallel_chunked")
    check_chunk(chunk)
    check_choice("across", across, ACROSS)
    T = xs_BxTxD.shape[1]
    K = default_chunk(T) if chunk is None else min(int(chunk), T)
    return _unroll_chunked_jit(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                               reverse=reverse, unroll=unroll, remat=remat, K=K, across=across,
                               fixup=bool(fixup))


register_impl("parallel", unroll_parallel)
register_impl("parallel_log", unroll_parallel_log)
register_impl("parallel_chunked", unroll_parallel_chunked)
