r"""Library init presets: the default initialisation of torch's, Keras's and flax.linen's
LSTM, GRU and simple (tanh) RNN, drawn with JAX and mapped onto seqjax's parameter layout.

``cell.init(key, D, H, init_preset=name)`` for the cells ``rnn``, ``lstm`` and ``gru``
(``seqjax.cells.PRESET_CELLS``); "seqjax", the default, is each cell's own init. Gate
orders: seqjax's LSTM blocks are (i, f, g, o) as in all three libraries; its GRU blocks
are (r, z, n) as in torch and flax, Keras orders them (z, r, h) and is permuted here. All
three GRUs are the "reset after" variant (Keras: ``reset_after=True``, its default) and
keep z on h_{t−1} as seqjax does: h_t = (1 − z) n + z h_{t−1}.

* ``torch`` (``torch.nn.RNN/LSTM/GRU.reset_parameters``): every weight and both biases
  U(−k, k), k = 1/√H. torch keeps two biases b_ih and b_hh that it always adds, seqjax one
  b: here ``b = b_ih + b_hh``, the sum of two independent uniforms (triangular on [−2k, 2k],
  variance 2k²/3 = 2/(3H)). GRU: the n gate's hidden bias sits inside the reset product, so
  b_n = b_in alone (U(−k, k)) and ``b_hn`` = b_hn (U(−k, k)); b_r, b_z are sums.
* ``keras`` (``keras.layers.LSTM/GRU/SimpleRNN`` defaults): ``kernel`` (D, G·H)
  glorot_uniform over the whole fused matrix, U(±√(6/(D + G·H))); ``recurrent_kernel``
  (H, G·H) orthogonal over the whole matrix (QR of a (G·H, H) Gaussian, transposed: its rows
  are orthonormal, W_h W_hᵀ = I_H; for G = 1 it is an orthogonal (H, H) matrix); biases
  zero, and for the LSTM ``unit_forget_bias=True``: b_f = 1. GRU: the (2, 3H) bias (input
  row, recurrent row) maps to b = input + recurrent for r and z, b_n = input, b_hn = the
  recurrent n entry (all zero).
* ``flax`` (``flax.linen.LSTMCell/GRUCell/SimpleCell`` defaults): one Dense per gate and
  side; input kernels (D, H) lecun_normal (truncated normal, variance 1/D), recurrent
  kernels (H, H) orthogonal per gate, biases zero. Each kernel is drawn with the key flax
  itself derives for it (``_flax_key``), so ``init_preset="flax"`` with key k equals
  ``from_flax(cell.init(k, carry, x)["params"])`` of flax's own cell, bit for bit.
"""

from __future__ import annotations

import hashlib
import math

import jax
import jax.numpy as jnp

from seqjax.cells._base import Params, check_choice, check_preset
from seqjax.convert import from_flax

N_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
KERAS_GRU_BLOCKS = (1, 0, 2)  # seqjax's (r, z, n) are blocks 1, 0, 2 of Keras's (z, r, h)
LIBRARIES = ("torch", "keras", "flax")


def library_params(preset: str, cell_name: str, key, input_dim: int, hidden: int,
                   dtype=jnp.float32) -> Params:
    """``preset``'s default init of cell ``cell_name`` in seqjax's layout (a pure function)."""
    check_choice("library preset", preset, LIBRARIES)
    check_preset(preset, cell_name)
    return {"torch": _torch, "keras": _keras, "flax": _flax}[preset](
        cell_name, key, input_dim, hidden, dtype)


# --------------------------------------------------------------------------- torch


def _torch(cell_name, key, input_dim, hidden, dtype) -> Params:
    """``reset_parameters``: U(−1/√H, 1/√H) for weight_ih, weight_hh, bias_ih, bias_hh."""
    GH, k = N_GATES[cell_name] * hidden, 1.0 / math.sqrt(hidden)
    shapes = {"weight_ih": (GH, input_dim), "weight_hh": (GH, hidden),
              "bias_ih": (GH,), "bias_hh": (GH,)}
    keys = jax.random.split(key, len(shapes))
    t = {name: jax.random.uniform(kk, shape, dtype, -k, k)
         for kk, (name, shape) in zip(keys, shapes.items())}
    return from_torch(cell_name, t)


def from_torch(cell_name: str, t: dict) -> Params:
    """seqjax params from torch's ``weight_ih`` (G·H, D), ``weight_hh`` (G·H, H), ``bias_ih``
    and ``bias_hh`` (G·H,): the same gate order, weights transposed, the biases summed
    except the GRU's n-gate hidden bias, which is ``b_hn``."""
    p = {"W_x": t["weight_ih"].T, "W_h": t["weight_hh"].T}
    if cell_name != "gru":
        return p | {"b": t["bias_ih"] + t["bias_hh"]}
    H = t["weight_hh"].shape[1]
    return p | {"b": t["bias_ih"].at[:2 * H].add(t["bias_hh"][:2 * H]),
                "b_hn": t["bias_hh"][2 * H:]}


# --------------------------------------------------------------------------- Keras


def _keras(cell_name, key, input_dim, hidden, dtype) -> Params:
    """glorot_uniform kernel, orthogonal recurrent kernel (whole matrices), zero bias with
    the LSTM's unit forget bias; the GRU's bias has Keras's reset_after shape (2, 3H)."""
    GH = N_GATES[cell_name] * hidden
    k_kernel, k_recurrent = jax.random.split(key)
    kernel = jax.nn.initializers.glorot_uniform()(k_kernel, (input_dim, GH), dtype)
    recurrent = jax.nn.initializers.orthogonal()(k_recurrent, (hidden, GH), dtype)
    if cell_name == "lstm":
        bias = jnp.zeros((GH,), dtype).at[hidden:2 * hidden].set(1.0)  # unit_forget_bias
    else:
        bias = jnp.zeros((2, GH) if cell_name == "gru" else (GH,), dtype)
    return from_keras(cell_name, kernel, recurrent, bias)


def from_keras(cell_name: str, kernel, recurrent_kernel, bias) -> Params:
    """seqjax params from a Keras cell's ``kernel`` (D, G·H), ``recurrent_kernel`` (H, G·H)
    and ``bias``; the GRU's (z, r, h) blocks reordered to (r, z, n) and its (2, 3H) bias
    split into b (input + recurrent for r, z; input for n) and b_hn (recurrent n)."""
    if cell_name != "gru":
        return {"W_x": kernel, "W_h": recurrent_kernel, "b": bias}
    H = recurrent_kernel.shape[0]
    order = lambda a: jnp.concatenate(
        [a[..., g * H:(g + 1) * H] for g in KERAS_GRU_BLOCKS], axis=-1)
    b_in, b_rec = order(bias)
    return {"W_x": order(kernel), "W_h": order(recurrent_kernel),
            "b": b_in.at[:2 * H].add(b_rec[:2 * H]), "b_hn": b_rec[2 * H:]}


# --------------------------------------------------------------------------- flax.linen


def _flax_layers(cell_name) -> dict[str, bool]:
    """{Dense name: has a bias} of flax.linen's cell (flax/linen/recurrent.py)."""
    if cell_name == "lstm":  # input Denses without bias, recurrent ones with it
        return {f"{side}{g}": side == "h" for g in "ifgo" for side in "ih"}
    if cell_name == "gru":   # input Denses with bias; recurrent without, except hn
        return {f"{side}{g}": side == "i" or g == "n" for g in "rzn" for side in "ih"}
    return {"i": True, "h": False}


def _flax_key(key, module: str, counter: int = 1):
    """The key flax.linen gives the ``counter``-th parameter (1: kernel) of the submodule
    named ``module`` of a cell initialised with ``key``: ``fold_in(key, h)``, h the first 4
    bytes of sha1(module name, counter) (``_fold_in_static`` in flax/core/scope.py, with its
    default ``flax_fix_rng_separator=False``)."""
    digest = hashlib.sha1(module.encode() +
                          counter.to_bytes((counter.bit_length() + 7) // 8, "big")).digest()
    return jax.random.fold_in(key, jnp.uint32(int.from_bytes(digest[:4], "big")))


def _flax(cell_name, key, input_dim, hidden, dtype) -> Params:
    """lecun_normal input kernels, orthogonal recurrent kernels per gate, zero biases."""
    fp = {}
    for name, has_bias in _flax_layers(cell_name).items():
        if name.startswith("i"):
            shape, init = (input_dim, hidden), jax.nn.initializers.lecun_normal()
        else:
            shape, init = (hidden, hidden), jax.nn.initializers.orthogonal()
        fp[name] = {"kernel": init(_flax_key(key, name), shape, dtype)}
        if has_bias:
            fp[name]["bias"] = jnp.zeros((hidden,), dtype)
    return from_flax(cell_name, fp)
