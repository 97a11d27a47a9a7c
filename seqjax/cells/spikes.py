"""Spike encoders: real-valued inputs in [0, 1] to spike trains for the LIF cell.

``x`` of shape (..., D) becomes (..., num_steps, D) spikes of x's dtype: each input step
becomes ``num_steps`` sub-steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.cells._base import Array, check_positive_int


def rate_encode(key, x_BxD: Array, num_steps: int, *, gain: float = 1.0) -> Array:
    """Rate code: at each of ``num_steps`` steps feature d spikes with prob. clip(gain·x_d, 0, 1).

    ``x`` of shape (..., D) gives spikes (..., num_steps, D) of x's dtype, independent
    Bernoulli draws per step from ``key``.
    """
    check_positive_int("num_steps", num_steps)
    if not gain >= 0:
        raise ValueError(f"gain must be >= 0, got {gain!r}")
    p = jnp.clip(gain * x_BxD, 0.0, 1.0)
    shape = x_BxD.shape[:-1] + (num_steps, x_BxD.shape[-1])
    u = jax.random.uniform(key, shape, x_BxD.dtype)
    return (u < jnp.expand_dims(p, -2)).astype(x_BxD.dtype)


def latency_encode(x_BxD: Array, num_steps: int, *, threshold: float = 0.01) -> Array:
    """Latency code: one spike per feature, earlier for larger values.

    Feature d (clipped to [0, 1]) spikes once, at step round((1 − x_d)·(num_steps − 1)),
    so x = 1 fires at t = 0 and x near 0 last; features with x_d < ``threshold`` never
    fire. ``x`` of shape (..., D) gives (..., num_steps, D) of x's dtype.
    """
    check_positive_int("num_steps", num_steps)
    x = jnp.clip(x_BxD, 0.0, 1.0)
    t_fire = jnp.round((1.0 - x) * (num_steps - 1)).astype(jnp.int32)
    t = jnp.arange(num_steps).reshape((1,) * (x_BxD.ndim - 1) + (num_steps, 1))
    fires = (t == jnp.expand_dims(t_fire, -2)) & jnp.expand_dims(x_BxD >= threshold, -2)
    return fires.astype(x_BxD.dtype)
