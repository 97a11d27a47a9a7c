"""Recurrent cells as pure functions over named parameter pytrees.

Every cell is a frozen (hashable, stateless) dataclass whose methods are pure
functions, so a cell can be a static argument of ``jax.jit``:

* ``init(key, input_dim, hidden, **options) -> params``: a dict of named arrays.
  Every option that changes a comparison (forget-gate bias, recurrent init and
  its scale, input init) is a keyword with a stated default.
* ``initial_carry(batch, hidden) -> carry``: zeros.
* ``step(params, carry, x_BxD) -> (carry, h_BxH)``: lax.scan's order.
* ``project_inputs(params, x_...xD)`` and ``step_projected(params, carry, xw)``:
  the same step split in two, so that an unroll can compute the input
  projection for every timestep in one matmul outside the loop ("hoisting").
  ``step(p, c, x) == step_projected(p, c, project_inputs(p, x))`` exactly.
* ``hidden(carry) -> h`` and ``with_hidden(carry, h) -> carry``: access to the
  hidden state inside a carry (used by the gradient-flow probes).

Weights act on row vectors (batch-first): the paper form ``W_hh h_{t-1}`` is
computed as ``h_{t-1} @ W_hh`` with ``W_hh`` stored as (H_in, H_out).

``CELLS`` maps names to cell classes; ``get_cell(name, **options)`` builds one
and raises a ValueError naming the valid cells for an unknown name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = dict[str, Array]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "linear": lambda z: z,
}
RECURRENT_INITS = ("orthogonal", "identity", "normal")
INPUT_INITS = ("glorot_uniform", "normal", "zeros")


# --------------------------------------------------------------------------- helpers


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(sorted(allowed))}")


def _recurrent_block(key, hidden: int, init: str, scale: float, dtype) -> Array:
    """One (H, H) recurrent matrix."""
    _check_choice("recurrent_init", init, RECURRENT_INITS)
    if init == "orthogonal":
        return jax.nn.initializers.orthogonal(scale=scale)(key, (hidden, hidden), dtype)
    if init == "identity":
        return scale * jnp.eye(hidden, dtype=dtype)
    # normal: entries N(0, scale^2 / H), so the spectral radius is about `scale`.
    return (scale / np.sqrt(hidden)) * jax.random.normal(key, (hidden, hidden), dtype)


def _input_block(key, input_dim: int, hidden: int, init: str, scale: float, dtype) -> Array:
    """One (D, H) input matrix."""
    _check_choice("input_init", init, INPUT_INITS)
    if init == "glorot_uniform":
        return scale * jax.nn.initializers.glorot_uniform()(key, (input_dim, hidden), dtype)
    if init == "normal":
        return (scale / np.sqrt(input_dim)) * jax.random.normal(key, (input_dim, hidden), dtype)
    return jnp.zeros((input_dim, hidden), dtype)


def _gated_weights(key, input_dim, hidden, n_gates, *, recurrent_init, recurrent_scale,
                   input_init, input_scale, dtype):
    """Fused (D, G*H) and (H, G*H) matrices, each gate block initialised on its own."""
    keys = jax.random.split(key, 2 * n_gates)
    W_x = jnp.concatenate(
        [_input_block(keys[g], input_dim, hidden, input_init, input_scale, dtype)
         for g in range(n_gates)], axis=1)
    W_h = jnp.concatenate(
        [_recurrent_block(keys[n_gates + g], hidden, recurrent_init, recurrent_scale, dtype)
         for g in range(n_gates)], axis=1)
    return W_x, W_h


def check_input(params: Params, x: Array, *, rank: int, what: str = "x") -> None:
    """Raise a ValueError unless ``x`` has ``rank`` dims and the cell's feature size."""
    input_dim = params["W_x"].shape[0]
    if x.ndim != rank:
        expected = "(batch, features)" if rank == 2 else "(batch, time, features)"
        raise ValueError(f"{what} must have rank {rank} {expected}, got shape {tuple(x.shape)}")
    if x.shape[-1] != input_dim:
        raise ValueError(
            f"{what} has {x.shape[-1]} features but the cell was initialised with "
            f"input_dim={input_dim}; shape {tuple(x.shape)}")


class _CellBase:
    """Shared plumbing. Subclasses define ``n_gates`` and the maths."""

    name: str = ""
    init_options: tuple[str, ...] = ()

    def step(self, params: Params, carry, x_BxD: Array):
        check_input(params, x_BxD, rank=2)
        return self.step_projected(params, carry, self.project_inputs(params, x_BxD))

    def init(self, key, input_dim: int, hidden: int, **options) -> Params:
        """Named parameters for inputs of size ``input_dim`` and ``hidden`` units."""
        _check_positive("input_dim", input_dim)
        _check_positive("hidden", hidden)
        unknown = set(options) - set(self.init_options) - {"dtype"}
        if unknown:
            raise ValueError(
                f"cell {self.name!r} has no init option(s) {sorted(unknown)}; "
                f"allowed: {', '.join(self.init_options)}")
        return self._init(key, input_dim, hidden, **options)

    def project_inputs(self, params: Params, x: Array) -> Array:
        """x @ W_x + b for any leading shape; the part of a step that needs no carry."""
        b = params["b"].reshape((1,) * (x.ndim - 1) + (-1,))
        return x @ params["W_x"] + b

    def hidden_size(self, params: Params) -> int:
        return params["W_h"].shape[0]



# --------------------------------------------------------------------------- RNN


@dataclasses.dataclass(frozen=True)
class RNN(_CellBase):
    r"""Vanilla (Elman) RNN.

    .. math::  h_t = \mathrm{act}(W_{hh} h_{t-1} + W_{hx} x_t + b)

    computed as ``act(h @ W_h + x @ W_x + b)``. Params: ``W_x`` (D, H), ``W_h`` (H, H),
    ``b`` (H,). ``activation`` is one of tanh (default), relu, linear.

    Init options (defaults): ``recurrent_init="orthogonal"`` (or ``"identity"`` — with
    ``activation="relu"`` this is the IRNN of Le et al. 2015 — or ``"normal"``, entries
    N(0, ρ²/H)), ``recurrent_scale=1.0`` (ρ; multiplies the orthogonal/identity matrix),
    ``input_init="glorot_uniform"``, ``input_scale=1.0``, bias zero.
    """

    activation: str = "tanh"
    name = "rnn"
    init_options = ("recurrent_init", "recurrent_scale", "input_init", "input_scale")

    def __post_init__(self):
        _check_choice("activation", self.activation, ACTIVATIONS)

    def _init(self, key, input_dim: int, hidden: int, *, recurrent_init: str = "orthogonal",
             recurrent_scale: float = 1.0, input_init: str = "glorot_uniform",
             input_scale: float = 1.0, dtype=jnp.float32) -> Params:
        W_x, W_h = _gated_weights(
            key, input_dim, hidden, 1, recurrent_init=recurrent_init,
            recurrent_scale=recurrent_scale, input_init=input_init,
            input_scale=input_scale, dtype=dtype)
        return {"W_x": W_x, "W_h": W_h, "b": jnp.zeros((hidden,), dtype)}

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> Array:
        return jnp.zeros((batch, hidden), dtype)

    def step_projected(self, params, h_BxH, xw_BxH):
        h_BxH = ACTIVATIONS[self.activation](h_BxH @ params["W_h"] + xw_BxH)
        return h_BxH, h_BxH

    def hidden(self, carry):
        return carry

    def with_hidden(self, carry, h):
        return h


# --------------------------------------------------------------------------- LSTM


class LSTMCarry(NamedTuple):
    h: Array  # (B, H) hidden state h_t
    c: Array  # (B, H) cell state C_t


LSTM_GATES = ("i", "f", "g", "o")  # column blocks of W_x, W_h, b, in this order


@dataclasses.dataclass(frozen=True)
class LSTM(_CellBase):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate).

    .. math::
        i_t &= \sigma(W_i [h_{t-1}, x_t] + b_i) \\
        f_t &= \sigma(W_f [h_{t-1}, x_t] + b_f) \\
        \tilde C_t &= \tanh(W_g [h_{t-1}, x_t] + b_g) \\
        o_t &= \sigma(W_o [h_{t-1}, x_t] + b_o) \\
        C_t &= f_t * C_{t-1} + i_t * \tilde C_t \\
        h_t &= o_t * \tanh(C_t)

    Params: ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b`` (4H,); column blocks in the order
    ``LSTM_GATES = (i, f, g, o)`` (g is the candidate C̃; the order of torch.nn.LSTM).
    Carry: ``LSTMCarry(h, c)``.

    Init options (defaults): ``forget_bias=1.0`` — the initial value of ``b_f``; no
    constant is added at step time, so the step is exactly the equations above.
    ``recurrent_init="orthogonal"`` with ``recurrent_scale=1.0`` per (H, H) gate block,
    ``input_init="glorot_uniform"`` per (D, H) gate block, other biases zero.
    """

    name = "lstm"
    init_options = ("forget_bias", "recurrent_init", "recurrent_scale", "input_init",
                    "input_scale")

    def _init(self, key, input_dim: int, hidden: int, *, forget_bias: float = 1.0,
             recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
             input_init: str = "glorot_uniform", input_scale: float = 1.0,
             dtype=jnp.float32) -> Params:
        W_x, W_h = _gated_weights(
            key, input_dim, hidden, 4, recurrent_init=recurrent_init,
            recurrent_scale=recurrent_scale, input_init=input_init,
            input_scale=input_scale, dtype=dtype)
        b = jnp.zeros((4, hidden), dtype).at[1].set(forget_bias).reshape(4 * hidden)
        return {"W_x": W_x, "W_h": W_h, "b": b}

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> LSTMCarry:
        z = jnp.zeros((batch, hidden), dtype)
        return LSTMCarry(h=z, c=z)

    def step_projected(self, params, carry: LSTMCarry, xw_Bx4H):
        z_Bx4H = carry.h @ params["W_h"] + xw_Bx4H
        i, f, g, o = jnp.split(z_Bx4H, 4, axis=-1)
        c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return LSTMCarry(h=h, c=c), h

    def hidden(self, carry):
        return carry.h

    def with_hidden(self, carry, h):
        return carry._replace(h=h)


# --------------------------------------------------------------------------- GRU


GRU_GATES = ("r", "z", "n")


@dataclasses.dataclass(frozen=True)
class GRU(_CellBase):
    r"""Gated recurrent unit, the "reset after" variant of torch.nn.GRU, cuDNN and flax.

    .. math::
        r_t &= \sigma(W_{xr} x_t + W_{hr} h_{t-1} + b_r) \\
        z_t &= \sigma(W_{xz} x_t + W_{hz} h_{t-1} + b_z) \\
        n_t &= \tanh(W_{xn} x_t + b_n + r_t * (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) * n_t + z_t * h_{t-1}

    (Cho et al. 2014 apply r before the matmul, ``W_hn (r * h)``; this variant applies it
    after, so all three recurrent matmuls fuse into one.)
    Params: ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b`` (3H,), ``b_hn`` (H,); column blocks in
    the order ``GRU_GATES = (r, z, n)``.

    Init options (defaults): ``recurrent_init="orthogonal"``, ``recurrent_scale=1.0``
    per (H, H) block, ``input_init="glorot_uniform"`` per (D, H) block, biases zero.
    """

    name = "gru"
    init_options = ("recurrent_init", "recurrent_scale", "input_init", "input_scale")

    def _init(self, key, input_dim: int, hidden: int, *, recurrent_init: str = "orthogonal",
             recurrent_scale: float = 1.0, input_init: str = "glorot_uniform",
             input_scale: float = 1.0, dtype=jnp.float32) -> Params:
        W_x, W_h = _gated_weights(
            key, input_dim, hidden, 3, recurrent_init=recurrent_init,
            recurrent_scale=recurrent_scale, input_init=input_init,
            input_scale=input_scale, dtype=dtype)
        return {"W_x": W_x, "W_h": W_h, "b": jnp.zeros((3 * hidden,), dtype),
                "b_hn": jnp.zeros((hidden,), dtype)}

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> Array:
        return jnp.zeros((batch, hidden), dtype)

    def step_projected(self, params, h_BxH, xw_Bx3H):
        H = h_BxH.shape[-1]
        hw_Bx3H = h_BxH @ params["W_h"]
        r = jax.nn.sigmoid(xw_Bx3H[:, :H] + hw_Bx3H[:, :H])
        z = jax.nn.sigmoid(xw_Bx3H[:, H:2 * H] + hw_Bx3H[:, H:2 * H])
        n = jnp.tanh(xw_Bx3H[:, 2 * H:] + r * (hw_Bx3H[:, 2 * H:] + params["b_hn"][None, :]))
        h = (1.0 - z) * n + z * h_BxH
        return h, h

    def hidden(self, carry):
        return carry

    def with_hidden(self, carry, h):
        return h


# --------------------------------------------------------------------------- registry

CELLS: dict[str, type] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def get_cell(name: str, **options):
    """Build the cell registered as ``name`` with its step-time options (e.g. activation)."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(sorted(CELLS))}")
    cls = CELLS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(
            f"cell {name!r} has no option(s) {sorted(unknown)}; "
            f"its options: {sorted(fields) or 'none'}")
    return cls(**options)


# --------------------------------------------------------------------------- more cells (issue 8)
# minGRU, minLSTM, LRU and LIF live in seqjax/cells_modern.py, which adds them to CELLS when
# imported. Imported here, at the bottom (it imports this module), so get_cell knows them.
from seqjax import cells_modern as _cells_modern  # noqa: E402,F401
