"""The classic cells: the Elman RNN (and the IRNN as its relu/identity preset), LSTM, GRU.

Each carries its equations in its docstring, written exactly as it computes them; the
interface is ``seqjax.cells._base.Cell``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells._base import (ACTIVATIONS, Array, CellBase, Params, _gated_weights,
                                check_choice, check_chrono_tmax, check_gate_bias, chrono_bias,
                                set_block)
from seqjax.cells.presets import library_params


# --------------------------------------------------------------------------- RNN


@dataclasses.dataclass(frozen=True)
class RNN(CellBase):
    r"""Vanilla (Elman) RNN.

    .. math::  h_t = \mathrm{act}(W_{hh} h_{t-1} + W_{hx} x_t + b)

    computed as ``act(h @ W_h + x @ W_x + b)``. Params: ``W_x`` (D, H), ``W_h`` (H, H),
    ``b`` (H,). ``activation`` is one of tanh (default), relu, linear.

    Init options (defaults): ``recurrent_init="orthogonal"`` (or ``"identity"`` — with
    ``activation="relu"`` this is the IRNN of Le et al. 2015 — or ``"normal"``, entries
    N(0, ρ²/H)), ``recurrent_scale=1.0`` (ρ; multiplies the orthogonal/identity matrix),
    ``input_init="glorot_uniform"``, ``input_scale=1.0``, bias zero.
    ``init_preset="torch"``, ``"keras"`` or ``"flax"``: that library's default init of its
    simple RNN instead (``seqjax.cells.presets``; the options above are then not used).
    """

    activation: str = "tanh"
    name = "rnn"
    init_options = ("recurrent_init", "recurrent_scale", "input_init", "input_scale")

    def __post_init__(self):
        check_choice("activation", self.activation, ACTIVATIONS)

    def _init(self, key, input_dim: int, hidden: int, *, init_preset: str = "seqjax",
             recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
             input_init: str = "glorot_uniform", input_scale: float = 1.0,
             dtype=jnp.float32) -> Params:
        if init_preset != "seqjax":
            return library_params(init_preset, self.name, key, input_dim, hidden, dtype)
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
class LSTM(CellBase):
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
    ``init_preset="torch"``, ``"keras"`` or ``"flax"``: that library's default init of its
    LSTM instead (``seqjax.cells.presets``; a numeric ``forget_bias`` and the options above
    are then not used). ``forget_bias="chrono"`` (Tallec & Ollivier 2018), with any preset:
    b_f = log u, u ~ U(1, ``chrono_tmax`` − 1) per unit (default T_max = 100), and b_i = −b_f.
    """

    name = "lstm"
    init_options = ("forget_bias", "chrono_tmax", "recurrent_init", "recurrent_scale",
                    "input_init", "input_scale")

    def _init(self, key, input_dim: int, hidden: int, *, init_preset: str = "seqjax",
             forget_bias: float | str = 1.0, chrono_tmax: float = 100.0,
             recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
             input_init: str = "glorot_uniform", input_scale: float = 1.0,
             dtype=jnp.float32) -> Params:
        check_gate_bias("forget_bias", forget_bias)
        chrono = isinstance(forget_bias, str)
        if init_preset != "seqjax":
            params = library_params(init_preset, self.name, key, input_dim, hidden, dtype)
        else:
            W_x, W_h = _gated_weights(
                key, input_dim, hidden, 4, recurrent_init=recurrent_init,
                recurrent_scale=recurrent_scale, input_init=input_init,
                input_scale=input_scale, dtype=dtype)
            b_f = 0.0 if chrono else forget_bias
            b = jnp.zeros((4, hidden), dtype).at[1].set(b_f).reshape(4 * hidden)
            params = {"W_x": W_x, "W_h": W_h, "b": b}
        if chrono:  # gate blocks (i, f, g, o)
            check_chrono_tmax(chrono_tmax)
            b_f = chrono_bias(key, hidden, chrono_tmax, dtype)
            params["b"] = set_block(set_block(params["b"], 1, b_f), 0, -b_f)
        return params

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
class GRU(CellBase):
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

    Init options (defaults): ``update_bias=0.0`` — the initial b_z (z keeps h_{t−1}, so a
    positive b_z starts with long memory), ``recurrent_init="orthogonal"``,
    ``recurrent_scale=1.0`` per (H, H) block, ``input_init="glorot_uniform"`` per (D, H)
    block, other biases zero. ``init_preset="torch"``, ``"keras"`` or ``"flax"``: that
    library's default init of its GRU instead (``seqjax.cells.presets``; a numeric
    ``update_bias`` and the options above are then not used). ``update_bias="chrono"``, with
    any preset: z plays the LSTM's forget gate, so b_z = log u, u ~ U(1, ``chrono_tmax`` − 1)
    (Tallec & Ollivier 2018); 1 − z, the candidate's weight, needs no bias of its own.
    """

    name = "gru"
    init_options = ("update_bias", "chrono_tmax", "recurrent_init", "recurrent_scale",
                    "input_init", "input_scale")

    def _init(self, key, input_dim: int, hidden: int, *, init_preset: str = "seqjax",
             update_bias: float | str = 0.0, chrono_tmax: float = 100.0,
             recurrent_init: str = "orthogonal", recurrent_scale: float = 1.0,
             input_init: str = "glorot_uniform", input_scale: float = 1.0,
             dtype=jnp.float32) -> Params:
        check_gate_bias("update_bias", update_bias)
        chrono = isinstance(update_bias, str)
        if init_preset != "seqjax":
            params = library_params(init_preset, self.name, key, input_dim, hidden, dtype)
        else:
            W_x, W_h = _gated_weights(
                key, input_dim, hidden, 3, recurrent_init=recurrent_init,
                recurrent_scale=recurrent_scale, input_init=input_init,
                input_scale=input_scale, dtype=dtype)
            b = jnp.zeros((3, hidden), dtype).at[1].set(0.0 if chrono else update_bias)
            params = {"W_x": W_x, "W_h": W_h, "b": b.reshape(3 * hidden),
                      "b_hn": jnp.zeros((hidden,), dtype)}
        if chrono:  # gate blocks (r, z, n)
            check_chrono_tmax(chrono_tmax)
            params["b"] = set_block(params["b"], 1, chrono_bias(key, hidden, chrono_tmax, dtype))
        return params

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


CLASSIC_CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
