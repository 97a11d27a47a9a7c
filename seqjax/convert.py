"""seqjax cell parameters ↔ flax.linen cell parameters: the same weights in each layout.

seqjax keeps a cell's gates fused (``W_x`` D×kH, ``W_h`` H×kH, ``b`` kH, gate blocks in
the order of its equations); flax.linen's cells keep one Dense layer per gate and input.
  * lstm ↔ ``LSTMCell`` / ``OptimizedLSTMCell``: gates (i, f, g, o) → ``i{gate}`` (input
    kernel, no bias) and ``h{gate}`` (recurrent kernel and the bias);
  * gru ↔ ``GRUCell``: gates (r, z, n) → ``i{gate}`` (input kernel and bias), ``h{gate}``
    (recurrent kernel; ``hn`` also holds ``b_hn``, the bias inside the reset product);
  * rnn ↔ ``SimpleCell``: ``i`` (input kernel and the bias) and ``h`` (recurrent kernel).
Used by the peer tests and the throughput benchmark; needs only jax (no flax import).
"""

from __future__ import annotations

import jax.numpy as jnp

GATES = {"lstm": "ifgo", "gru": "rzn"}


def to_flax(cell_name: str, p: dict) -> dict:
    """The ``params`` collection of the flax cell that computes what seqjax's ``p`` does."""
    if cell_name not in ("lstm", "gru", "rnn"):
        raise ValueError(f"no flax layout for cell {cell_name!r}; choose one of: lstm, gru, rnn")
    if cell_name == "rnn":
        return {"i": {"kernel": p["W_x"], "bias": p["b"]}, "h": {"kernel": p["W_h"]}}
    gates = GATES[cell_name]
    Wx, Wh, b = (jnp.split(p[k], len(gates), axis=-1) for k in ("W_x", "W_h", "b"))
    if cell_name == "lstm":
        return {name: layer for k, g in enumerate(gates) for name, layer in (
            ("i" + g, {"kernel": Wx[k]}), ("h" + g, {"kernel": Wh[k], "bias": b[k]}))}
    out = {"i" + g: {"kernel": Wx[k], "bias": b[k]} for k, g in enumerate(gates)}
    out |= {"h" + g: {"kernel": Wh[k]} for k, g in enumerate(gates)}
    out["hn"]["bias"] = p["b_hn"]
    return out


def from_flax(cell_name: str, fp: dict) -> dict:
    """seqjax's parameters of cell ``cell_name`` from a flax cell's ``params`` collection."""
    if cell_name not in ("lstm", "gru", "rnn"):
        raise ValueError(f"no flax layout for cell {cell_name!r}; choose one of: lstm, gru, rnn")
    if cell_name == "rnn":
        return {"W_x": fp["i"]["kernel"], "W_h": fp["h"]["kernel"], "b": fp["i"]["bias"]}
    gates = GATES[cell_name]
    cat = lambda side, key: jnp.concatenate([fp[side + g][key] for g in gates], axis=-1)
    bias_side = "h" if cell_name == "lstm" else "i"
    out = {"W_x": cat("i", "kernel"), "W_h": cat("h", "kernel"), "b": cat(bias_side, "bias")}
    if cell_name == "gru":
        out["b_hn"] = fp["hn"]["bias"]
    return out
