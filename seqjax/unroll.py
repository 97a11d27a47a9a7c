"""Unrolling a cell over time: jax.lax.scan (the fast path) and a Python loop (the reference).

Batch-first at the boundary: ``xs_BxTxD`` in, ``hs_BxTxH`` out. The one transpose to
scan's time-major layout happens here and nowhere else.

Masking (``lengths``): example b is valid at times ``t < lengths[b]``. At a padded
step the carry is left as it was and the emitted h is zero, so padding changes
neither the final carry nor the outputs at valid steps, and receives no gradient.
With ``reverse=True`` the scan runs from t = T-1 down to 0; the padded tail is seen
first and leaves the initial carry untouched, so every example starts its reverse
pass at its own last valid element (what a bidirectional layer needs). ``valid_mask`` is
that mask, the one helper for it in the package.

Choosing the implementation: ``IMPLS`` maps names to unrolls ("scan" here; faster ones
registered by ``seqjax.fast`` and ``seqjax.parallel``), and ``resolve_impl`` is the one
place that turns a config's ``model.impl`` (possibly "auto") into one of them, from the
cell, the backend, whether the members of a sweep are vmapped and whether probes are
attached.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells import check_choice, check_input, check_positive_int

Array = jax.Array


def default_hoist() -> bool:
    """Whether hoisting the input projection out of the loop is the faster path here.

    Measured on a 2-core x86 CPU (benchmarks/unroll_paths.py): hoisting is slower on
    CPU, so it is off there; on GPU/TPU the per-step matmul is the known bottleneck of
    lax.scan (jax-ml/jax#2491), so it is on.
    """
    return jax.default_backend() != "cpu"


def valid_mask(lengths: Array, T: int, *, time_major: bool = False) -> Array:
    """True where step t is valid (t < lengths[b]): bool (B, T), or (T, B) if ``time_major``."""
    t = jnp.arange(T)
    if time_major:
        return t[:, None] < lengths[None, :]
    return t[None, :] < lengths[:, None]


def check_lengths(lengths, batch: int, T: int) -> None:
    """Validate ``lengths`` when its values are known (not inside a jit trace)."""
    if lengths is None:
        return
    if tuple(np.shape(lengths)) != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) (one per example), "
                         f"got {tuple(np.shape(lengths))}")
    if isinstance(lengths, jax.core.Tracer):
        return
    values = np.asarray(lengths)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"lengths must be integers, got dtype {values.dtype}")
    bad = values[(values < 0) | (values > T)]
    if bad.size:
        raise ValueError(f"lengths must lie in [0, T={T}], got {bad.tolist()}")


def check_inputs(cell, params, xs_BxTxD: Array, lengths=None, probes_BxTxH=None) -> None:
    """Validate an unroll's inputs: xs (rank 3, the cell's features), lengths, probes."""
    check_input(params, xs_BxTxD, rank=3, what="xs")
    B, T, _ = xs_BxTxD.shape
    check_lengths(lengths, B, T)
    H = cell.hidden_size(params)
    if probes_BxTxH is not None and probes_BxTxH.shape != (B, T, H):
        raise ValueError(f"probes must have shape {(B, T, H)}, got {probes_BxTxH.shape}")


def probe_initial_carry(cell, carry, probes_BxT1xH: Array | None):
    """Attach gradient-flow probes for h_0..h_T: ``(carry with probes[:, 0] added to its
    hidden state, probes[:, 1:])``, the second being ``unroll``'s ``probes_BxTxH``.
    ``(carry, None)`` when there are no probes."""
    if probes_BxT1xH is None:
        return carry, None
    carry = cell.with_hidden(carry, cell.hidden(carry) + probes_BxT1xH[:, 0])
    return carry, probes_BxT1xH[:, 1:]


# --------------------------------------------------------------------------- impls

# name -> fn(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse, unroll, remat,
# hoist) -> (final_carry, hs_BxTxH). "scan" is the plain lax.scan below; other modules
# register faster paths (a custom-VJP unroll, a parallel scan for linear recurrences) with
# ``register_impl``, each tested against "scan" for values and gradients.
IMPLS: dict = {}
IMPL_CELLS: dict[str, tuple[str, ...] | None] = {}  # name -> the cells it runs (None: any)
DEFAULT_IMPLS: dict[str, str] = {}  # backend -> the impl "auto" means there (else "scan")


def register_impl(name: str, fn, *, cells: tuple[str, ...] | None = None,
                  default_on: tuple[str, ...] = ()) -> None:
    """Register ``fn`` as ``impl=name``; ``cells`` names the cells it runs (None: any), and
    on each backend in ``default_on`` it becomes what ``impl="auto"`` means."""
    IMPLS[name] = fn
    IMPL_CELLS[name] = None if cells is None else tuple(cells)
    for backend in default_on:
        DEFAULT_IMPLS[backend] = name


def resolve_impl(impl: str, cell: str, *, backend: str | None = None, vmapped: bool = False,
                 probes: bool = False) -> str:
    """The registered impl to run: a config's ``model.impl`` for cell ``cell`` (a name).

    * an explicit name is checked against ``IMPLS`` (a ValueError names the allowed ones);
    * ``probes``: "scan" (the gradient-flow probes run on the plain scan);
    * an explicit name is kept as it is (so a resolved name resolves to itself);
    * "auto": "scan" for vmapped members on CPU (the fused kernel batches worse than
      lax.scan there: 5 LSTM seeds 61.5 s fused vs 46.5 s scan, benchmarks/RESULTS.md);
      else ``DEFAULT_IMPLS[backend]`` when that impl runs ``cell``, else "scan".

    ``backend`` defaults to ``jax.default_backend()``.
    """
    check_choice("unroll impl", impl, ("auto", *IMPLS))
    if probes:
        return "scan"
    if impl != "auto":
        return impl
    backend = jax.default_backend() if backend is None else backend
    if vmapped and backend == "cpu":
        return "scan"
    default = DEFAULT_IMPLS.get(backend, "scan")
    runs = IMPL_CELLS.get(default)
    return default if runs is None or cell in runs else "scan"


def _where_tree(mask_B, new, old):
    return jax.tree.map(
        lambda n, o: jnp.where(mask_B.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def unroll(cell, params, xs_BxTxD: Array, carry: Any = None, *, lengths: Array | None = None,
           reverse: bool = False, unroll: int = 1, remat: bool = False,
           hoist: bool | None = None, probes_BxTxH: Array | None = None, impl: str = "scan"):
    """Run ``cell`` over ``xs_BxTxD`` with jax.lax.scan (or another registered ``impl``).

    Args:
      cell: a cell from ``seqjax.cells`` (static).
      params: its parameter pytree.
      xs_BxTxD: inputs, batch-first.
      carry: initial carry; zeros when None.
      lengths: (B,) ints in [0, T]; steps at t >= lengths[b] are padding (see module doc).
      reverse: run from the last timestep to the first; outputs stay aligned with inputs.
      unroll: how many steps lax.scan unrolls per loop iteration.
      remat: wrap the step in jax.checkpoint, so the backward pass recomputes each step's
        internals instead of storing them (memory O(T·H) instead of O(T·gates·H)).
      hoist: compute the input projection for all timesteps in one matmul before the loop;
        None picks ``default_hoist()``. Both paths give the same numbers.
      probes_BxTxH: optional zeros added to each emitted h_t (and to the h in the carry
        passed on); the gradient with respect to them is ∂L/∂h_t (see diagnostics).
      impl: which implementation runs the recurrence: a key of ``IMPLS`` ("scan" is the
        plain lax.scan; the others give the same numbers).

    Returns:
      ``(final_carry, hs_BxTxH)`` — lax.scan's order.
    """
    check_inputs(cell, params, xs_BxTxD, lengths, probes_BxTxH)
    check_positive_int("unroll", unroll)
    check_choice("unroll impl", impl, IMPLS)
    if carry is None:
        carry = cell.initial_carry(xs_BxTxD.shape[0], cell.hidden_size(params),
                                   dtype=params["W_x"].dtype)
    hoist = default_hoist() if hoist is None else bool(hoist)
    return IMPLS[impl](cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                       reverse=bool(reverse), unroll=unroll, remat=bool(remat), hoist=hoist)


@functools.partial(jax.jit, static_argnames=("cell", "reverse", "unroll", "remat", "hoist"))
def _unroll_scan(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse, unroll, remat,
            hoist):
    T = xs_BxTxD.shape[1]
    xs_TxBxD = jnp.swapaxes(xs_BxTxD, 0, 1)
    if hoist:
        xs_TxBxD = cell.project_inputs(params, xs_TxBxD)  # (T, B, G*H), one big matmul
    scanned = {"x": xs_TxBxD}
    if lengths is not None:
        scanned["valid"] = valid_mask(lengths, T, time_major=True)
    if probes_BxTxH is not None:
        scanned["probe"] = jnp.swapaxes(probes_BxTxH, 0, 1)

    def step(carry, inp):
        if hoist:
            new_carry, h = cell.step_projected(params, carry, inp["x"])
        else:
            new_carry, h = cell.step(params, carry, inp["x"])
        if "probe" in inp:
            h = h + inp["probe"]
            new_carry = cell.with_hidden(new_carry, h)
        if "valid" in inp:
            valid_B = inp["valid"]
            new_carry = _where_tree(valid_B, new_carry, carry)
            h = jnp.where(valid_B[:, None], h, jnp.zeros_like(h))
        return new_carry, h

    if remat:
        step = jax.checkpoint(step)
    carry, hs_TxBxH = jax.lax.scan(step, carry, scanned, reverse=reverse, unroll=unroll)
    return carry, jnp.swapaxes(hs_TxBxH, 0, 1)


register_impl("scan", _unroll_scan)


def unroll_reference(cell, params, xs_BxTxD, carry=None, *, lengths=None, reverse=False):
    """The plain Python-loop reference: each example alone, its valid steps only, no masking.

    ``lengths`` must be concrete (a list or numpy array). Slow; for tests.
    """
    B, T, _ = xs_BxTxD.shape
    H = cell.hidden_size(params)
    if carry is None:
        carry = cell.initial_carry(B, H, dtype=params["W_x"].dtype)
    lengths = [T] * B if lengths is None else [int(n) for n in np.asarray(lengths)]
    final, outputs = [], []
    for b in range(B):
        c = jax.tree.map(lambda a: a[b:b + 1], carry)
        hs = [jnp.zeros((1, H), xs_BxTxD.dtype)] * T
        times = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in times:
            c, hs[t] = cell.step(params, c, xs_BxTxD[b:b + 1, t])
        final.append(c)
        outputs.append(jnp.stack(hs, axis=1))
    final = jax.tree.map(lambda *a: jnp.concatenate(a, axis=0), *final)
    return final, jnp.concatenate(outputs, axis=0)


# --------------------------------------------------------------------------- stacks


def init_stack(cell, key, input_dim: int, hidden: int, layers: int = 1, *,
               bidirectional: bool = False, **options) -> list:
    """Parameters of ``layers`` stacked layers: a list of per-layer cell params.

    A bidirectional layer's params are ``{"fwd": ..., "bwd": ...}`` and it emits 2H
    features (forward then backward), which is the next layer's input size.
    """
    check_positive_int("layers", layers)
    params, d = [], input_dim
    for key in jax.random.split(key, layers):
        if bidirectional:
            kf, kb = jax.random.split(key)
            params.append({"fwd": cell.init(kf, d, hidden, **options),
                           "bwd": cell.init(kb, d, hidden, **options)})
            d = 2 * hidden
        else:
            params.append(cell.init(key, d, hidden, **options))
            d = hidden
    return params


def unroll_bidirectional(cell, params, xs_BxTxD, carry=None, *, lengths=None, **kw):
    """Forward and reverse unrolls, outputs concatenated to (B, T, 2H); carries as a dict.

    ``carry``, when given, is ``{"fwd": ..., "bwd": ...}``. With ``lengths`` the backward
    pass of each example starts at its own last valid step.
    """
    carry = carry or {"fwd": None, "bwd": None}
    cf, hf = unroll(cell, params["fwd"], xs_BxTxD, carry["fwd"], lengths=lengths, **kw)
    cb, hb = unroll(cell, params["bwd"], xs_BxTxD, carry["bwd"], lengths=lengths,
                    reverse=True, **kw)
    return {"fwd": cf, "bwd": cb}, jnp.concatenate([hf, hb], axis=-1)


def unroll_stack(cell, params: Sequence, xs_BxTxD, carries=None, *, lengths=None, **kw):
    """Run stacked layers (from ``init_stack``) one after another.

    Returns ``(final_carries, hs)``: a list with each layer's final carry, and the top
    layer's outputs.
    """
    carries = carries or [None] * len(params)
    finals, hs = [], xs_BxTxD
    for p, c in zip(params, carries):
        if "fwd" in p:
            c, hs = unroll_bidirectional(cell, p, hs, c, lengths=lengths, **kw)
        else:
            c, hs = unroll(cell, p, hs, c, lengths=lengths, **kw)
        finals.append(c)
    return finals, hs
