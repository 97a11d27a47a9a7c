r"""The modern cells: minGRU, minLSTM, LRU and a recurrent LIF spiking cell.

Same interface as the classic cells (``seqjax.cells._base.Cell``); ``seqjax.cells``
registers them in ``CELLS`` as ``mingru``, ``minlstm``, ``lru``, ``lif``.

Linear recurrences. ``MinGRU``, ``MinLSTM`` and ``LRU`` compute, per unit,

.. math::  s_t = a_t \odot s_{t-1} + b_t

with ``a_t, b_t`` functions of ``x_t`` only, so the recurrence over time is an associative
scan (``seqjax.parallel``: ``impl="parallel"``, and ``impl="parallel_log"`` for cells with
``log_space=True``). Such a cell has ``linear_recurrence = True`` and these methods, used by
the parallel unrolls:

* ``recurrence(params, xs_...xD) -> (a, b)``: the coefficients for every position, in
  state space (complex for the LRU); ``a`` broadcasts against ``b``.
* ``log_recurrence(params, xs_...xD) -> (log_a, log_b)`` when ``log_space`` is set: the
  same coefficients in log space (then ``b > 0``).
* ``to_state(h)`` / ``from_state(s)``: between the carry (= the emitted h) and the state.

The cell states are the carries and the emitted h (the probes of ``seqjax.diagnostics``
measure ∂L/∂s_t). IRNN is the ``rnn`` cell with ``activation="relu"`` and
``recurrent_init="identity"``; no separate name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells._base import (Array, CellBase, Params, _input_block, _recurrent_block,
                                check_choice, check_chrono_tmax, check_gate_bias, chrono_bias,
                                set_block)


# --------------------------------------------------------------------------- helpers


def g(x: Array) -> Array:
    r"""The positive candidate map of Feng et al. (2024): ``x + 1/2`` for x ≥ 0, ``σ(x)`` below.

    Continuous and increasing, with g(x) > 0, so that states stay positive and live in log
    space.
    """
    return jnp.where(x >= 0, jax.nn.relu(x) + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
    r"""``log g(x)`` without forming g: ``log(x + 1/2)`` for x ≥ 0, ``-softplus(-x)`` below."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _gate_blocks(key, input_dim, hidden, n_blocks, biases, *, input_init, input_scale, dtype):
    """Fused (D, n·H) input matrix, each block initialised on its own, and its (n·H,) bias."""
    keys = jax.random.split(key, n_blocks)
    W_x = jnp.concatenate(
        [_input_block(k, input_dim, hidden, input_init, input_scale, dtype) for k in keys], axis=1)
    b = jnp.concatenate([jnp.full((hidden,), v, dtype) for v in biases])
    return {"W_x": W_x, "b": b}


class _LinearRecurrenceCell(CellBase):
    """A cell whose carry is its state h (B, H) and whose step is h ← a ⊙ h + b."""

    linear_recurrence = True
    log_space: bool = False

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> Array:
        return jnp.zeros((batch, hidden), dtype)

    def step_projected(self, params, h_BxH, xw):
        a, b = self._coefficients(params, xw)
        h_BxH = a * h_BxH + b
        return h_BxH, h_BxH

    def recurrence(self, params, xs):
        return self._coefficients(params, self.project_inputs(params, xs))

    def log_recurrence(self, params, xs):
        if not self.log_space:
            raise ValueError(f"cell {self.name!r} was built with log_space=False; "
                             "it has no log-space recurrence")
        return self._log_coefficients(params, self.project_inputs(params, xs))

    def to_state(self, h):
        return h

    def from_state(self, s):
        return s

    def hidden(self, carry):
        return carry

    def with_hidden(self, carry, h):
        return h


# --------------------------------------------------------------------------- minGRU


@dataclasses.dataclass(frozen=True)
class MinGRU(_LinearRecurrenceCell):
    r"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates see x_t only.

    .. math::
        k_t &= W_{xz} x_t + b_z, \qquad \tilde h_t = \phi(W_{xh} x_t + b_h) \\
        z_t &= \sigma(k_t) \\
        h_t &= \sigma(-k_t) * h_{t-1} + z_t * \tilde h_t

    (σ(−k) = 1 − z.) With ``log_space=True`` (default; the paper's log-space version)
    φ = ``g`` (x + ½ for x ≥ 0, σ(x) below, so h̃ > 0) and ``impl="parallel_log"`` works
    with log(1 − z) = −softplus(k), log z = −softplus(−k), log h̃ = ``log_g``; with
    ``log_space=False`` φ is the identity (the paper's plain minGRU).

    Params: ``W_x`` (D, 2H), ``b`` (2H,); column blocks (z, h).
    Init options (defaults): ``update_bias=0.0`` — the initial b_z (negative values start
    with z small, i.e. long memory: at b_z = −2, 1 − z ≈ 0.88), ``input_init="glorot_uniform"``
    with ``input_scale=1.0`` per (D, H) block, b_h zero. ``update_bias="chrono"``: 1 − z =
    σ(−b_z) keeps h_{t−1}, so chrono (Tallec & Ollivier 2018) sets −b_z = log u,
    u ~ U(1, ``chrono_tmax`` − 1): b_z = −log u ≤ 0, the sign opposite to the GRU's.
    """

    log_space: bool = True
    name = "mingru"
    init_options = ("update_bias", "chrono_tmax", "input_init", "input_scale")

    def _init(self, key, input_dim, hidden, *, update_bias: float | str = 0.0,
              chrono_tmax: float = 100.0, input_init: str = "glorot_uniform",
              input_scale: float = 1.0, dtype=jnp.float32) -> Params:
        check_gate_bias("update_bias", update_bias)
        chrono = isinstance(update_bias, str)
        params = _gate_blocks(key, input_dim, hidden, 2, (0.0 if chrono else update_bias, 0.0),
                              input_init=input_init, input_scale=input_scale, dtype=dtype)
        if chrono:  # blocks (z, h)
            check_chrono_tmax(chrono_tmax)
            b_z = -chrono_bias(key, hidden, chrono_tmax, dtype)
            params["b"] = set_block(params["b"], 0, b_z)
        return params

    def hidden_size(self, params):
        return params["W_x"].shape[1] // 2

    def _coefficients(self, params, xw):
        k, c = jnp.split(xw, 2, axis=-1)
        h_tilde = g(c) if self.log_space else c
        return jax.nn.sigmoid(-k), jax.nn.sigmoid(k) * h_tilde

    def _log_coefficients(self, params, xw):
        k, c = jnp.split(xw, 2, axis=-1)
        return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(c)


# --------------------------------------------------------------------------- minLSTM


@dataclasses.dataclass(frozen=True)
class MinLSTM(_LinearRecurrenceCell):
    r"""minLSTM (Feng et al. 2024): forget and input gates of x_t only, normalised to sum 1.

    .. math::
        f_t &= \sigma(W_{xf} x_t + b_f), \qquad i_t = \sigma(W_{xi} x_t + b_i) \\
        \tilde h_t &= \phi(W_{xh} x_t + b_h) \\
        h_t &= \frac{f_t}{f_t + i_t} * h_{t-1} + \frac{i_t}{f_t + i_t} * \tilde h_t

    With ``log_space=True`` (default) φ = ``g`` (h̃ > 0) and ``impl="parallel_log"`` uses
    d = softplus(−k_f) − softplus(−k_i), log f' = −softplus(d), log i' = −softplus(−d),
    log h̃ = ``log_g`` (k_f, k_i the gate pre-activations); ``log_space=False``: φ = identity.

    Params: ``W_x`` (D, 3H), ``b`` (3H,); column blocks (f, i, h).
    Init options (defaults): ``forget_bias=0.0`` and ``input_bias=0.0`` — the initial b_f
    and b_i; at zero input f' = σ(b_f)/(σ(b_f) + σ(b_i)), so a forget bias alone cannot
    push f' past 1/(1 + ½) = ⅔: long memory needs b_i < 0 too (b_f = 2, b_i = −2 gives
    f' ≈ 0.88). ``input_init="glorot_uniform"``, ``input_scale=1.0`` per (D, H) block, b_h
    zero. ``forget_bias="chrono"`` (Tallec & Ollivier 2018): b_f = log u,
    u ~ U(1, ``chrono_tmax`` − 1), and b_i = −b_f (``input_bias`` is not used): then
    σ(b_i) = 1 − σ(b_f) and f' = σ(b_f) at zero input, the LSTM's chrono forget gate.
    """

    log_space: bool = True
    name = "minlstm"
    init_options = ("forget_bias", "input_bias", "chrono_tmax", "input_init", "input_scale")

    def _init(self, key, input_dim, hidden, *, forget_bias: float | str = 0.0,
              input_bias: float = 0.0, chrono_tmax: float = 100.0,
              input_init: str = "glorot_uniform", input_scale: float = 1.0,
              dtype=jnp.float32) -> Params:
        check_gate_bias("forget_bias", forget_bias)
        chrono = isinstance(forget_bias, str)
        biases = (0.0, 0.0, 0.0) if chrono else (forget_bias, input_bias, 0.0)
        params = _gate_blocks(key, input_dim, hidden, 3, biases, input_init=input_init,
                              input_scale=input_scale, dtype=dtype)
        if chrono:  # blocks (f, i, h)
            check_chrono_tmax(chrono_tmax)
            b_f = chrono_bias(key, hidden, chrono_tmax, dtype)
            params["b"] = set_block(set_block(params["b"], 0, b_f), 1, -b_f)
        return params

    def hidden_size(self, params):
        return params["W_x"].shape[1] // 3

    def _coefficients(self, params, xw):
        kf, ki, c = jnp.split(xw, 3, axis=-1)
        f, i = jax.nn.sigmoid(kf), jax.nn.sigmoid(ki)
        h_tilde = g(c) if self.log_space else c
        return f / (f + i), i / (f + i) * h_tilde

    def _log_coefficients(self, params, xw):
        kf, ki, c = jnp.split(xw, 3, axis=-1)
        d = jax.nn.softplus(-kf) - jax.nn.softplus(-ki)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(c)


# --------------------------------------------------------------------------- LRU


@dataclasses.dataclass(frozen=True)
class LRU(_LinearRecurrenceCell):
    r"""Linear recurrent unit (Orvieto et al. 2023): a complex diagonal linear recurrence.

    .. math::
        \lambda &= \exp(-\exp(\nu) + i \exp(\theta)) \qquad (|\lambda| = e^{-e^{\nu}} < 1) \\
        x_t &= \lambda * x_{t-1} + \gamma * (B u_t), \qquad \gamma = \exp(\gamma_{\log}) \\
        h_t &= [\mathrm{Re}\, x_t, \mathrm{Im}\, x_t]

    with x_t ∈ ℂ^N and N = H/2: the carry and the emitted h_t are the real and imaginary
    parts of the state side by side (H real numbers), which is what the gradient-flow
    probes perturb. The paper's real output y_t = Re(C x_t) + D * u_t (width D, as its
    H→H layer) is ``output(params, hs, xs)``; C and D are not used by the unroll.

    Params: ``nu_log``, ``theta_log``, ``gamma_log`` (N,); ``W_x`` (D, 2N) = [Re Bᵀ, Im Bᵀ]
    (so ``u @ W_x`` = [Re Bu, Im Bu]); ``C_re``, ``C_im`` (N, D); ``D`` (D,).

    Init options (defaults): ``r_min=0.9``, ``r_max=0.999`` — |λ| uniform on the ring
    r_min ≤ |λ| ≤ r_max (|λ|² uniform in [r_min², r_max²]), ``max_phase=2π`` — arg λ
    uniform in [0, max_phase]; γ = sqrt(1 − |λ|²) (the γ normalisation); B entries
    N(0, 1/(2D)) per real and imaginary part, C entries N(0, 1/N), D entries N(0, 1).
    """

    name = "lru"
    init_options = ("r_min", "r_max", "max_phase")

    def _init(self, key, input_dim, hidden, *, r_min: float = 0.9, r_max: float = 0.999,
              max_phase: float = 2 * math.pi, dtype=jnp.float32) -> Params:
        if hidden % 2:
            raise ValueError(f"lru needs an even hidden size (h = [Re x, Im x], x ∈ ℂ^(H/2)), "
                             f"got hidden={hidden}")
        if not 0.0 <= r_min <= r_max < 1.0:
            raise ValueError(f"lru needs 0 <= r_min <= r_max < 1, got r_min={r_min!r}, "
                             f"r_max={r_max!r}")
        if not max_phase > 0:
            raise ValueError(f"lru needs max_phase > 0, got {max_phase!r}")
        N = hidden // 2
        k_u1, k_u2, k_b, k_c, k_d = jax.random.split(key, 5)
        u1 = jax.random.uniform(k_u1, (N,), dtype)
        u2 = jax.random.uniform(k_u2, (N,), dtype)
        nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2))
        theta_log = jnp.log(max_phase * u2)
        modulus = jnp.exp(-jnp.exp(nu_log))
        C_2xNxD = jax.random.normal(k_c, (2, N, input_dim), dtype) / math.sqrt(N)
        return {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": jnp.log(jnp.sqrt(1.0 - modulus ** 2)),
            "W_x": jax.random.normal(k_b, (input_dim, 2 * N), dtype) / math.sqrt(2 * input_dim),
            "C_re": C_2xNxD[0],
            "C_im": C_2xNxD[1],
            "D": jax.random.normal(k_d, (input_dim,), dtype),
        }

    def hidden_size(self, params):
        return 2 * params["nu_log"].shape[0]

    def project_inputs(self, params, x):
        """[Re Bu, Im Bu] for any leading shape (the LRU has no input bias)."""
        return x @ params["W_x"]

    def eigenvalues(self, params) -> Array:
        """λ (N,), complex."""
        return jnp.exp(jax.lax.complex(-jnp.exp(params["nu_log"]), jnp.exp(params["theta_log"])))

    def _coefficients(self, params, xw):
        """(λ, γ * Bu): λ shaped (1, ..., N) to broadcast against the (..., N) b."""
        N = params["nu_log"].shape[0]
        lead = (1,) * (xw.ndim - 1)
        gamma = jnp.exp(params["gamma_log"]).reshape(lead + (N,))
        lam = self.eigenvalues(params).reshape(lead + (N,))
        return lam, jax.lax.complex(gamma * xw[..., :N], gamma * xw[..., N:])

    def step_projected(self, params, h_BxH, xw_BxH):
        a, b = self._coefficients(params, xw_BxH)
        h_BxH = self.from_state(a * self.to_state(h_BxH) + b)
        return h_BxH, h_BxH

    def to_state(self, h):
        N = h.shape[-1] // 2
        return jax.lax.complex(h[..., :N], h[..., N:])

    def from_state(self, s):
        return jnp.concatenate([jnp.real(s), jnp.imag(s)], axis=-1)

    def output(self, params, hs_BxTxH: Array, xs_BxTxD: Array) -> Array:
        """y_t = Re(C x_t) + D * u_t for every t, shape (B, T, D)."""
        N = params["nu_log"].shape[0]
        re, im = hs_BxTxH[..., :N], hs_BxTxH[..., N:]
        D = params["D"].reshape((1,) * (xs_BxTxD.ndim - 1) + (-1,))
        return re @ params["C_re"] - im @ params["C_im"] + xs_BxTxD * D


# --------------------------------------------------------------------------- LIF


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def spike(u: Array, slope: float) -> Array:
    r"""Heaviside step ``s = 1[u > 0]`` with the fast-sigmoid surrogate derivative.

    Forward: exactly 1.0 where u > 0 and 0.0 elsewhere. Derivative used by autodiff
    (Zenke & Ganguli 2018, snnTorch ``fast_sigmoid``):  ∂s/∂u := 1 / (1 + slope·|u|)².
    """
    return (u > 0).astype(u.dtype)


@spike.defjvp
def _spike_jvp(slope, primals, tangents):
    (u,), (du,) = primals, tangents
    return spike(u, slope), du / (1.0 + slope * jnp.abs(u)) ** 2


class LIFCarry(NamedTuple):
    v: Array  # (B, H) membrane potential v_t
    s: Array  # (B, H) spikes s_t (the emitted h_t)


LIF_RESETS = ("subtract", "zero")


@dataclasses.dataclass(frozen=True)
class LIF(CellBase):
    r"""Recurrent leaky integrate-and-fire neurons, trained with a surrogate gradient.

    .. math::
        I_t &= W_x x_t + W_h s_{t-1} + b \\
        v_t &= \beta v_{t-1} + I_t - \vartheta s_{t-1}
            \quad\text{(reset="subtract")}, \qquad
        v_t = \beta (1 - s_{t-1}) v_{t-1} + I_t \quad\text{(reset="zero")} \\
        s_t &= \Theta(v_t - \vartheta), \qquad
        \partial s_t / \partial v_t := 1 / (1 + k |v_t - \vartheta|)^2

    Θ is the step (1 where v_t > ϑ, else 0); the reset is applied in the step after the
    spike (as snnTorch's ``RLeaky``), so every path from s_t to the future goes through the
    carried spikes, which are what the probes perturb. The emitted h_t is s_t.
    Carry: ``LIFCarry(v, s)``.

    Step options (defaults): ``beta=0.9`` (membrane decay per step), ``threshold=1.0`` (ϑ),
    ``slope=25.0`` (k of the fast-sigmoid surrogate), ``reset="subtract"`` (or ``"zero"``).
    Init options (defaults): ``recurrent_init="orthogonal"`` with ``recurrent_scale=1.0``,
    ``input_init="glorot_uniform"`` with ``input_scale=1.0``, ``bias=0.0``.
    Params: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,).
    """

    beta: float = 0.9
    threshold: float = 1.0
    slope: float = 25.0
    reset: str = "subtract"
    name = "lif"
    init_options = ("recurrent_init", "recurrent_scale", "input_init", "input_scale", "bias")

    def __post_init__(self):
        check_choice("reset", self.reset, LIF_RESETS)
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"lif needs 0 <= beta <= 1, got beta={self.beta!r}")
        if not self.slope > 0:
            raise ValueError(f"lif needs slope > 0, got slope={self.slope!r}")

    def _init(self, key, input_dim, hidden, *, recurrent_init: str = "orthogonal",
              recurrent_scale: float = 1.0, input_init: str = "glorot_uniform",
              input_scale: float = 1.0, bias: float = 0.0, dtype=jnp.float32) -> Params:
        k_x, k_h = jax.random.split(key)
        return {"W_x": _input_block(k_x, input_dim, hidden, input_init, input_scale, dtype),
                "W_h": _recurrent_block(k_h, hidden, recurrent_init, recurrent_scale, dtype),
                "b": jnp.full((hidden,), bias, dtype)}

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> LIFCarry:
        z = jnp.zeros((batch, hidden), dtype)
        return LIFCarry(v=z, s=z)

    def step_projected(self, params, carry: LIFCarry, xw_BxH):
        current = xw_BxH + carry.s @ params["W_h"]
        if self.reset == "subtract":
            v = self.beta * carry.v + current - self.threshold * carry.s
        else:
            v = self.beta * (1.0 - carry.s) * carry.v + current
        s = spike(v - self.threshold, self.slope)
        return LIFCarry(v=v, s=s), s

    def hidden(self, carry):
        return carry.s

    def with_hidden(self, carry, h):
        return carry._replace(s=h)


MODERN_CELLS = {"mingru": MinGRU, "minlstm": MinLSTM, "lru": LRU, "lif": LIF}
