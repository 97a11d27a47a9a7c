"""Gradient-flow diagnostics: how much gradient reaches each timestep.

Time indexing: for an unroll over T inputs, index t in 0..T is the hidden state after
consuming t inputs; t = 0 is the initial state h_0 and t = T the final state h_T. So
every function here returns arrays with T + 1 entries along time.

* ``hidden_grads`` / ``hidden_grad_norms``: ∂L/∂h_t for every t and example in ONE
  backward pass. A zero "probe" is added to each h_t inside the scan (and to h_0); the
  gradient of L with respect to the probe at t is the total derivative ∂L/∂h_t.
* ``jacobian_norms``: ‖∂h_T/∂h_t‖ for every t, Frobenius (default) or spectral norm,
  from H vector-Jacobian products (one per unit of h_T), vmapped.
* ``param_grad_norms``: the norm of each parameter's gradient, keyed by its path
  (``flat_params``: a pytree as {"path/to/leaf": leaf}, the one path naming in seqjax).

For an LSTM, h_t means the hidden state only; the cell state C_t is part of the path
that the gradient takes, not a probed quantity.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.unroll import probe_initial_carry, unroll

Array = jax.Array


def safe_norm(x: Array, axis: int | tuple[int, ...] = -1) -> Array:
    """‖x‖₂ along ``axis`` (an int or a tuple of axes) without underflow: scaled by max|x|
    before squaring.

    A plain norm squares each entry, so in float32 any norm below ~1e-19 becomes 0 — exactly
    the range where vanishing gradients live (e.g. minGRU at init: ~2e-29).
    """
    scale = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    safe = jnp.where(scale > 0, scale, jnp.ones_like(scale))
    return jnp.squeeze(safe, axis) * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=axis))


def path_name(path) -> str:
    """A pytree key path as "a/b/0": dict keys, sequence indices and attribute names."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                    for k in path)


def flat_params(tree) -> dict[str, Any]:
    """{"path/to/leaf": leaf} for every leaf of a pytree, in flattening order."""
    return {path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _probed_unroll(cell, params, xs_BxTxD, carry, p0_BxH, probes_BxTxH, **unroll_kw):
    carry, _ = probe_initial_carry(cell, carry, p0_BxH[:, None])
    return unroll(cell, params, xs_BxTxD, carry, probes_BxTxH=probes_BxTxH, **unroll_kw)


def _zero_probes(cell, params, xs_BxTxD, carry):
    B, T, _ = xs_BxTxD.shape
    H = cell.hidden_size(params)
    if carry is None:
        carry = cell.initial_carry(B, H, dtype=params["W_x"].dtype)
    dtype = cell.hidden(carry).dtype
    return carry, jnp.zeros((B, H), dtype), jnp.zeros((B, T, H), dtype)


def hidden_grads(cell, params, xs_BxTxD: Array,
                 loss_fn: Callable[[object, Array], Array], carry=None, **unroll_kw) -> Array:
    """∂L/∂h_t for t = 0..T, shape (B, T+1, H), in one backward pass.

    ``loss_fn(final_carry, hs_BxTxH) -> scalar`` is the loss of the unrolled sequence;
    ``unroll_kw`` goes to ``seqjax.unroll.unroll`` (lengths, reverse, remat, ...).
    With ``reverse=True`` the time axis still follows the inputs: entry t < T is the state
    emitted at input t (after consuming inputs T-1..t), entry T the initial state.
    """
    carry, p0, probes = _zero_probes(cell, params, xs_BxTxD, carry)

    def loss_of_probes(p0, probes):
        final, hs = _probed_unroll(cell, params, xs_BxTxD, carry, p0, probes, **unroll_kw)
        return loss_fn(final, hs)

    g0, g = jax.grad(loss_of_probes, argnums=(0, 1))(p0, probes)
    if unroll_kw.get("reverse", False):
        return jnp.concatenate([g, g0[:, None]], axis=1)
    return jnp.concatenate([g0[:, None], g], axis=1)


def hidden_grad_norms(cell, params, xs_BxTxD, loss_fn, carry=None, **unroll_kw) -> Array:
    """‖∂L/∂h_t‖₂ for t = 0..T and every example: shape (B, T+1)."""
    return safe_norm(hidden_grads(cell, params, xs_BxTxD, loss_fn, carry, **unroll_kw), axis=-1)


def jacobian_norms(cell, params, xs_BxTxD, carry=None, *, ord: str | int = "fro",
                   **unroll_kw) -> Array:
    """‖∂h_T/∂h_t‖ for t = 0..T and every example: shape (B, T+1).

    ``ord="fro"`` gives the Frobenius norm (``safe_norm``: a Jacobian of tiny entries, whose
    squares underflow in float32, still gets its norm), ``ord=2`` the spectral norm (largest
    singular value; the SVD scales internally) of the H×H Jacobian. h_T is the hidden state of the final carry (with
    ``lengths``, each example's state after its last valid step). Forward unrolls only.
    """
    if ord not in ("fro", 2):
        raise ValueError(f"ord must be 'fro' or 2, got {ord!r}")
    if unroll_kw.get("reverse", False):
        raise ValueError("jacobian_norms measures forward unrolls; got reverse=True")
    carry, p0, probes = _zero_probes(cell, params, xs_BxTxD, carry)
    H = p0.shape[-1]

    def unit_grads(i):  # row i of every Jacobian: ∂h_T[:, i]/∂h_t, shape (B, T+1, H)
        def h_T_unit(p0, probes):
            final, _ = _probed_unroll(cell, params, xs_BxTxD, carry, p0, probes, **unroll_kw)
            return jnp.sum(cell.hidden(final)[:, i])  # examples are independent: sum is fine
        g0, g = jax.grad(h_T_unit, argnums=(0, 1))(p0, probes)
        return jnp.concatenate([g0[:, None], g], axis=1)

    J_HxBxTxH = jax.vmap(unit_grads)(jnp.arange(H))
    if ord == "fro":
        return safe_norm(J_HxBxTxH, axis=(0, 3))
    J_BxTxHxH = jnp.transpose(J_HxBxTxH, (1, 2, 0, 3))
    return jnp.linalg.norm(J_BxTxHxH, ord=2, axis=(-2, -1))


def param_grad_norms(grads) -> dict[str, float]:
    """{"path/to/param": ‖g‖₂} for every leaf of a gradient pytree, plus "global".

    Computed on the host in float64 with numpy: the trainer calls it on gradients it has
    already copied to the host, and eager jax ops would compile a small program each
    (≈ 1 s per run of compile time for five of them)."""
    flat = {name: np.asarray(g, np.float64).ravel() for name, g in flat_params(grads).items()}
    out = {name: float(np.sqrt(np.dot(g, g))) for name, g in flat.items()}
    out["global"] = float(np.sqrt(sum(np.dot(g, g) for g in flat.values())))
    return out
