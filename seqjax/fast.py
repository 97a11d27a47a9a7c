"""Faster training-step unrolls: a custom-VJP recurrence with cuDNN-style weight gradients.

Registered as ``unroll`` implementations (``seqjax.unroll.IMPLS``), so a model picks one by
name: ``unroll(..., impl="fused")``. ``default_impl(backend)`` names the fastest correct
implementation measured on a backend; a config field ``model.impl = "auto"`` means
``default_impl()`` (``resolve_impl("auto")``).

The "fused" unroll (rnn, lstm, gru)
-----------------------------------
Autodiff of ``lax.scan`` builds a backward loop that, at every step, also accumulates the
weight gradients ``dW_h += h_{t-1}^T dG_t`` and ``dW_x += x_t^T dG_t`` — an (H, G·H)
read-modify-write and skinny matmuls (inner size B) per step — and runs the many small
operations of the step's JVP. cuDNN instead splits backprop through time in two:

1. a backward scan whose carry is only ∂L/∂carry (∂h, and ∂C for an LSTM) and which emits
   the gradient of every gate pre-activation, ``dG_t`` (B, G·H), with one matmul per step,
   ``∂h_{t-1} = dG_t W_h^T (+ direct terms)``;
2. after the loop, the parameter and input gradients as a few large matmuls over all T·B
   rows at once::

       dW_x = X^T dG^x        (D, G·H)      X:      (T·B, D)
       dW_h = H_prev^T dG^h   (H, G·H)      H_prev: (T·B, H), the carry h before each step
       db   = Σ_{t,b} dG^x    (G·H,)
       dX   = dG^x W_x^T      (T·B, D)

The forward pass projects every input in one matmul before the loop (``X W_x + b``), then
runs the recurrence, storing per step only what the backward step needs, chosen so that
each loop iteration is one matmul plus a few fused elementwise kernels (on a CPU the
per-operation cost, not the FLOPs, dominates at small batch). Per-cell maths (σ the
logistic function, ``dh`` the total gradient reaching h_t, ``dc`` the one reaching C_t):

* RNN ``h_t = φ(a_t)``, ``a_t = h_{t-1} W_h + x_t W_x + b``; stores h_t.
  ``dG = dh · φ'(a)``, φ'(a) read from h_t (tanh: 1 − h_t²; relu: [h_t > 0]; linear: 1).
* LSTM, ``z_t = h_{t-1} W_h + x_t W_x + b`` split into gates (i, f, g, o); stores z_t and
  C_t (h_t = σ(z_o)·tanh(C_t) is rebuilt after the loop).
  ``dc ← dc + dh·o·(1 − tanh²C_t)``;
  ``dG = [dc·g·i(1−i), dc·C_{t−1}·f(1−f), dc·i·(1−g²), dh·tanh(C_t)·o(1−o)]``;
  ``∂C_{t−1} = dc·f``; ``dG^x = dG^h = dG``.
* GRU (reset after), ``hw = h_{t-1} W_h``, ``hn = hw_n + b_hn``, ``r, z = σ(xw_{r,z} +
  hw_{r,z})``, ``n = tanh(xw_n + r·hn)``; stores hw_t and h_t.
  ``da_n = dh(1−z)(1−n²)``, ``da_r = da_n·hn·r(1−r)``, ``da_z = dh(h_{t−1}−n)·z(1−z)``;
  ``dG^x = [da_r, da_z, da_n]``, ``dG^h = [da_r, da_z, da_n·r]`` (``db_hn = Σ da_n·r``),
  ``∂h_{t−1} = dG^h W_h^T + dh·z``.

Masking (``lengths``), ``reverse``, an initial carry and probes (∂L/∂h_t, see
``seqjax.diagnostics``) behave exactly as in ``impl="scan"`` (see ``seqjax.unroll``): at a
padded step the carry passes through, the output is zero and the step's gate gradients
are zero.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import cells as C
from seqjax.unroll import register_impl

Array = jax.Array


# --------------------------------------------------------------------------- helpers


def _shift(seq_TxBxH, first_BxH, reverse):
    """The value before each step: ``seq`` moved one step along the direction of the scan,
    ``first`` at the first step processed (t=0 forward, t=T-1 reverse)."""
    if reverse:
        return jnp.concatenate([seq_TxBxH[1:], first_BxH[None]], axis=0)
    return jnp.concatenate([first_BxH[None], seq_TxBxH[:-1]], axis=0)


def _prev_hidden(h_TxBxH, h0_BxH, valid_TxB, reverse):
    """The carry h before each step, given h after each *valid* step.

    Without masking this is a shift. With masking the carry before a valid step is the h
    of the previously processed step if that one was valid, else h0 (a reverse scan passes
    h0 through the padded tail before it reaches the last valid element).
    """
    prev = _shift(h_TxBxH, h0_BxH, reverse)
    if valid_TxB is None:
        return prev
    prev_valid = _shift(valid_TxB, jnp.zeros_like(valid_TxB[0]), reverse)
    return jnp.where(prev_valid[..., None], prev, h0_BxH[None])


def _sel(valid_B, new, old):
    """new where the step is valid, else old (broadcast over features)."""
    return jnp.where(valid_B[:, None], new, old)


def _scan(step, carry, scanned, *, reverse, unroll):
    return jax.lax.scan(step, carry, scanned, reverse=reverse, unroll=unroll)


def _inputs(valid_TxB, probes_TxBxH, **arrays):
    scanned = {k: v for k, v in arrays.items() if v is not None}
    if valid_TxB is not None:
        scanned["valid"] = valid_TxB
    if probes_TxBxH is not None:
        scanned["probe"] = probes_TxBxH
    return scanned


def _masked_dh(dh_BxH, inp):
    """Total gradient reaching h_t: from the future plus from the output (zero if padded)."""
    dhs = inp["dhs"]
    if "valid" in inp:
        dhs = jnp.where(inp["valid"][:, None], dhs, jnp.zeros_like(dhs))
    return dh_BxH + dhs


def _rows(a_TxBxF):
    """(T, B, F) -> (T·B, F): every (timestep, example) pair as one row of a 2-D matmul."""
    return a_TxBxF.reshape(-1, a_TxBxF.shape[-1])


def _input_grads(params, x_TxBxD, dGx_TxBxG, hprev_TxBxH, dGh_TxBxG):
    """The weight, bias and input gradients as large 2-D matmuls over all T·B rows.

    (Written on (T·B, ·) matrices: XLA:CPU runs an einsum that contracts two axes at once
    several times slower than the same product on reshaped 2-D operands.)
    """
    T, B, D = x_TxBxD.shape
    dGx_NxG = _rows(dGx_TxBxG)
    grads = {
        "W_x": _rows(x_TxBxD).T @ dGx_NxG,
        "W_h": _rows(hprev_TxBxH).T @ _rows(dGh_TxBxG),
        "b": jnp.sum(dGx_NxG, axis=0),
    }
    dx_TxBxD = (dGx_NxG @ params["W_x"].T).reshape(T, B, D)
    return grads, dx_TxBxD


# --------------------------------------------------------------------------- RNN


class _RNN(NamedTuple):
    """h_t = φ(h_{t-1} W_h + xw_t); see the module docstring for the backward maths."""

    activation: str

    def to_tuple(self, carry):
        return (carry,)

    def from_tuple(self, carry):
        return carry[0]

    def dact(self, h_BxH):
        """φ'(a) written in terms of h = φ(a)."""
        if self.activation == "tanh":
            return 1.0 - h_BxH * h_BxH
        if self.activation == "relu":
            return (h_BxH > 0).astype(h_BxH.dtype)
        return jnp.ones_like(h_BxH)

    def forward(self, params, xw_TxBxH, carry, valid_TxB, probes_TxBxH, *, reverse, unroll,
                save):
        act = C.ACTIVATIONS[self.activation]
        W_h, b = params["W_h"], params["b"]

        def step(h_BxH, inp):
            h_new = act(h_BxH @ W_h + inp["xw"] + b[None, :])
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                h_new = _sel(inp["valid"], h_new, h_BxH)
            return h_new, h_new

        (h0,) = carry
        hT, h_TxBxH = _scan(step, h0, _inputs(valid_TxB, probes_TxBxH, xw=xw_TxBxH),
                            reverse=reverse, unroll=unroll)
        return (hT,), h_TxBxH, (h_TxBxH if save else None)

    def backward(self, params, x_TxBxD, xw_TxBxH, res, carry0, dcarry, dhs_TxBxH, valid_TxB,
                 probes_TxBxH, *, reverse, unroll):
        h_TxBxH = res
        W_hT = params["W_h"].T

        def step(dh_BxH, inp):
            dh = _masked_dh(dh_BxH, inp)
            h = inp["h"] - inp["probe"] if "probe" in inp else inp["h"]
            dG = dh * self.dact(h)
            if "valid" in inp:
                dG = _sel(inp["valid"], dG, jnp.zeros_like(dG))
            dh_prev = dG @ W_hT
            if "valid" in inp:
                dh_prev = _sel(inp["valid"], dh_prev, dh)
            return dh_prev, {"dG": dG, "dprobe": dh} if "probe" in inp else {"dG": dG}

        (dh0,) = dcarry
        dh0, out = _scan(step, dh0, _inputs(valid_TxB, probes_TxBxH, h=h_TxBxH, dhs=dhs_TxBxH),
                         reverse=not reverse, unroll=unroll)
        hprev = _prev_hidden(h_TxBxH, carry0[0], valid_TxB, reverse)
        grads, dx = _input_grads(params, x_TxBxD, out["dG"], hprev, out["dG"])
        return grads, dx, (dh0,), _masked_probe_grads(out, valid_TxB)


def _masked_probe_grads(out, valid_TxB):
    if "dprobe" not in out:
        return None
    d = out["dprobe"]
    return d if valid_TxB is None else jnp.where(valid_TxB[..., None], d, jnp.zeros_like(d))


# --------------------------------------------------------------------------- LSTM


def _lstm_u(z_Bx4H):
    """u = tanh(z·s), s = ½ on the σ gates (i, f, o) and 1 on g: ONE tanh over (B, 4H).

    The gates follow as σ(x) = ½ + ½·tanh(x/2): i, f, o = ½ + ½u and g = u, and the
    derivatives as σ' = ¼(1 − u²), tanh' = 1 − u².
    """
    H = z_Bx4H.shape[-1] // 4
    scale = np.concatenate([np.full(2 * H, 0.5), np.ones(H), np.full(H, 0.5)])
    return jnp.tanh(z_Bx4H * jnp.asarray(scale, z_Bx4H.dtype)[None, :])


def _lstm_gates(u_Bx4H):
    H = u_Bx4H.shape[-1] // 4
    i = 0.5 + 0.5 * u_Bx4H[..., :H]
    f = 0.5 + 0.5 * u_Bx4H[..., H:2 * H]
    g = u_Bx4H[..., 2 * H:3 * H]
    o = 0.5 + 0.5 * u_Bx4H[..., 3 * H:]
    return i, f, g, o


class _LSTM(NamedTuple):
    """C_t = f C_{t-1} + i g, h_t = o tanh(C_t); see the module docstring."""

    def to_tuple(self, carry):
        return (carry.h, carry.c)

    def from_tuple(self, carry):
        return C.LSTMCarry(h=carry[0], c=carry[1])

    def forward(self, params, xw_TxBx4H, carry, valid_TxB, probes_TxBxH, *, reverse, unroll,
                save):
        W_h, b = params["W_h"], params["b"]

        def step(carry, inp):
            h_BxH, c_BxH = carry
            u_Bx4H = _lstm_u(h_BxH @ W_h + inp["xw"] + b[None, :])
            i, f, g, o = _lstm_gates(u_Bx4H)
            c_new = f * c_BxH + i * g
            tc_new = jnp.tanh(c_new)
            h_new = o * tc_new
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                c_new = _sel(inp["valid"], c_new, c_BxH)
                h_new = _sel(inp["valid"], h_new, h_BxH)
            return (h_new, c_new), ((u_Bx4H, c_new, tc_new, h_new) if save else h_new)

        final, ys = _scan(step, carry, _inputs(valid_TxB, probes_TxBxH, xw=xw_TxBx4H),
                          reverse=reverse, unroll=unroll)
        if not save:
            return final, ys, None
        return final, ys[3], ys

    def backward(self, params, x_TxBxD, xw_TxBx4H, res, carry0, dcarry, dhs_TxBxH, valid_TxB,
                 probes_TxBxH, *, reverse, unroll):
        u_TxBx4H, c_TxBxH, tc_TxBxH, h_TxBxH = res
        h0, c0 = carry0
        W_hT = params["W_h"].T
        cprev_TxBxH = _shift(c_TxBxH, c0, reverse)

        def step(dcarry, inp):
            dh_BxH, dc_BxH = dcarry
            dh = _masked_dh(dh_BxH, inp)
            u = inp["u"]
            i, f, g, o = _lstm_gates(u)
            tc = inp["tc"]
            dc = dc_BxH + dh * o * (1.0 - tc * tc)
            dG = jnp.concatenate([dc * g * i * (1.0 - i),
                                  dc * inp["cprev"] * f * (1.0 - f),
                                  dc * i * (1.0 - g * g),
                                  dh * tc * o * (1.0 - o)], axis=-1)
            dc_prev = dc * f
            if "valid" in inp:
                v = inp["valid"]
                dG = _sel(v, dG, jnp.zeros_like(dG))
                dc_prev = _sel(v, dc_prev, dc_BxH)
            dh_prev = dG @ W_hT
            if "valid" in inp:
                dh_prev = _sel(v, dh_prev, dh)
            out = {"dG": dG, "dprobe": dh} if "probe" in inp else {"dG": dG}
            return (dh_prev, dc_prev), out

        scanned = _inputs(valid_TxB, probes_TxBxH, u=u_TxBx4H, tc=tc_TxBxH, cprev=cprev_TxBxH,
                          dhs=dhs_TxBxH)
        dcarry0, out = _scan(step, dcarry, scanned, reverse=not reverse, unroll=unroll)
        hprev = _prev_hidden(h_TxBxH, h0, valid_TxB, reverse)
        grads, dx = _input_grads(params, x_TxBxD, out["dG"], hprev, out["dG"])
        return grads, dx, dcarry0, _masked_probe_grads(out, valid_TxB)


# --------------------------------------------------------------------------- GRU


class _GRU(NamedTuple):
    """Reset-after GRU; see the module docstring."""

    def to_tuple(self, carry):
        return (carry,)

    def from_tuple(self, carry):
        return carry[0]

    @staticmethod
    def gates(xw_Bx3H, hw_Bx3H, b_hn_H):
        H = hw_Bx3H.shape[-1] // 3
        r = jax.nn.sigmoid(xw_Bx3H[..., :H] + hw_Bx3H[..., :H])
        z = jax.nn.sigmoid(xw_Bx3H[..., H:2 * H] + hw_Bx3H[..., H:2 * H])
        hn = hw_Bx3H[..., 2 * H:] + b_hn_H[None, :]
        n = jnp.tanh(xw_Bx3H[..., 2 * H:] + r * hn)
        return r, z, hn, n

    def forward(self, params, xw_TxBx3H, carry, valid_TxB, probes_TxBxH, *, reverse, unroll,
                save):
        W_h, b, b_hn = params["W_h"], params["b"], params["b_hn"]

        def step(h_BxH, inp):
            hw_Bx3H = h_BxH @ W_h
            r, z, hn, n = self.gates(inp["xw"] + b[None, :], hw_Bx3H, b_hn)
            h_new = (1.0 - z) * n + z * h_BxH
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                h_new = _sel(inp["valid"], h_new, h_BxH)
            return h_new, ((hw_Bx3H, h_new) if save else h_new)

        (h0,) = carry
        hT, ys = _scan(step, h0, _inputs(valid_TxB, probes_TxBxH, xw=xw_TxBx3H),
                       reverse=reverse, unroll=unroll)
        if not save:
            return (hT,), ys, None
        hw_TxBx3H, h_TxBxH = ys
        return (hT,), h_TxBxH, (hw_TxBx3H, h_TxBxH)

    def backward(self, params, x_TxBxD, xw_TxBx3H, res, carry0, dcarry, dhs_TxBxH, valid_TxB,
                 probes_TxBxH, *, reverse, unroll):
        hw_TxBx3H, h_TxBxH = res
        (h0,) = carry0
        W_hT, b, b_hn = params["W_h"].T, params["b"], params["b_hn"]
        hprev_TxBxH = _prev_hidden(h_TxBxH, h0, valid_TxB, reverse)

        def step(dh_BxH, inp):
            dh = _masked_dh(dh_BxH, inp)
            r, z, hn, n = self.gates(inp["xw"] + b[None, :], inp["hw"], b_hn)
            da_n = dh * (1.0 - z) * (1.0 - n * n)
            da_r = da_n * hn * r * (1.0 - r)
            da_z = dh * (inp["hprev"] - n) * z * (1.0 - z)
            dGh = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)
            if "valid" in inp:
                v = inp["valid"]
                dGh = _sel(v, dGh, jnp.zeros_like(dGh))
                da_n = _sel(v, da_n, jnp.zeros_like(da_n))
            dh_prev = dGh @ W_hT + dh * z
            if "valid" in inp:
                dh_prev = _sel(v, dh_prev, dh)
            out = {"dGh": dGh, "da_n": da_n}
            if "probe" in inp:
                out["dprobe"] = dh
            return dh_prev, out

        scanned = _inputs(valid_TxB, probes_TxBxH, xw=xw_TxBx3H, hw=hw_TxBx3H,
                          hprev=hprev_TxBxH, dhs=dhs_TxBxH)
        dh0, out = _scan(step, dcarry[0], scanned, reverse=not reverse, unroll=unroll)
        H = h0.shape[-1]
        dGh = out["dGh"]
        dGx = jnp.concatenate([dGh[..., :2 * H], out["da_n"]], axis=-1)
        grads, dx = _input_grads(params, x_TxBxD, dGx, hprev_TxBxH, dGh)
        grads["b_hn"] = jnp.sum(dGh[..., 2 * H:], axis=(0, 1))
        return grads, dx, (dh0,), _masked_probe_grads(out, valid_TxB)


# --------------------------------------------------------------------------- custom VJP


def _math_of(cell, impl: str):
    """The maths of ``cell`` (exact types only: a subclass may change the step)."""
    if type(cell) is C.LSTM:
        return _LSTM()
    if type(cell) is C.GRU:
        return _GRU()
    if type(cell) is C.RNN:
        return _RNN(cell.activation)
    raise ValueError(f"impl={impl!r} supports the cells gru, lstm, rnn; got cell "
                     f"{getattr(cell, 'name', type(cell).__name__)!r}; use impl='scan'")


def _project(params, x_TxBxD):
    """X W_x for every timestep in one matmul: (T, B, G·H) (the bias is added in the step)."""
    T, B, _ = x_TxBxD.shape
    return (_rows(x_TxBxD) @ params["W_x"]).reshape(T, B, -1)


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


def _chunks(a_TxF, K):
    """(T, ...) -> (T/K, K, ...); None stays None."""
    return None if a_TxF is None else a_TxF.reshape((-1, K) + a_TxF.shape[1:])


def _unchunk(a_NxKxF):
    return None if a_NxKxF is None else a_NxKxF.reshape((-1,) + a_NxKxF.shape[2:])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _fused(math, reverse, unroll, K, params, x_TxBxD, carry, valid_TxB, probes_TxBxH):
    """The recurrence; ``K`` is None (store every step's residuals) or the chunk length."""
    final, h_TxBxH, _ = math.forward(params, _project(params, x_TxBxD), carry, valid_TxB,
                                     probes_TxBxH, reverse=reverse, unroll=unroll, save=False)
    return final, h_TxBxH


def _fused_fwd(math, reverse, unroll, K, params, x_TxBxD, carry, valid_TxB, probes_TxBxH):
    if K is None:
        xw = _project(params, x_TxBxD)
        final, h_TxBxH, res = math.forward(params, xw, carry, valid_TxB, probes_TxBxH,
                                           reverse=reverse, unroll=unroll, save=True)
        return (final, h_TxBxH), (params, x_TxBxD, xw, carry, valid_TxB, probes_TxBxH, res)

    # Chunked: keep only the carry at the start of each chunk of K steps.
    def chunk(carry, inp):
        xw = _project(params, inp["x"])
        final, h_KxBxH, _ = math.forward(params, xw, carry, inp.get("valid"), inp.get("probe"),
                                         reverse=reverse, unroll=unroll, save=False)
        return final, (carry, h_KxBxH)

    scanned = _inputs(_chunks(valid_TxB, K), _chunks(probes_TxBxH, K), x=_chunks(x_TxBxD, K))
    final, (starts, h_NxKxBxH) = jax.lax.scan(chunk, carry, scanned, reverse=reverse)
    return (final, _unchunk(h_NxKxBxH)), (params, x_TxBxD, None, starts, valid_TxB,
                                           probes_TxBxH, None)


def _fused_bwd(math, reverse, unroll, K, saved, cts):
    params, x_TxBxD, xw, carry0, valid_TxB, probes_TxBxH, res = saved
    dfinal, dh_TxBxH = cts
    if K is None:
        grads, dx, dcarry0, dprobes = math.backward(
            params, x_TxBxD, xw, res, carry0, dfinal, dh_TxBxH, valid_TxB, probes_TxBxH,
            reverse=reverse, unroll=unroll)
        return grads, dx, dcarry0, None, dprobes

    # Chunked: per chunk (last processed first) recompute its residuals from its start carry,
    # run its backward scan and add its parameter gradients (matmuls over K·B rows).
    starts = carry0

    def chunk(acc, inp):
        dcarry, grads = acc
        valid, probe = inp.get("valid"), inp.get("probe")
        xw = _project(params, inp["x"])
        _, _, res = math.forward(params, xw, inp["start"], valid, probe, reverse=reverse,
                                 unroll=unroll, save=True)
        g, dx, dcarry, dprobe = math.backward(params, inp["x"], xw, res, inp["start"], dcarry,
                                              inp["dhs"], valid, probe, reverse=reverse,
                                              unroll=unroll)
        return (dcarry, _tree_add(grads, g)), (dx, dprobe)

    scanned = _inputs(_chunks(valid_TxB, K), _chunks(probes_TxBxH, K), x=_chunks(x_TxBxD, K),
                      start=starts, dhs=_chunks(dh_TxBxH, K))
    zeros = jax.tree.map(jnp.zeros_like, params)
    (dcarry0, grads), (dx, dprobes) = jax.lax.scan(chunk, (dfinal, zeros), scanned,
                                                   reverse=not reverse)
    return grads, _unchunk(dx), dcarry0, None, _unchunk(dprobes)


_fused.defvjp(_fused_fwd, _fused_bwd)


def chunk_length(T: int) -> int:
    """Steps per recomputed chunk for a sequence of T steps: about √T (memory O(√T)).

    A divisor of T near √T when there is one in [√T/2, 2√T]; otherwise round(√T) and the
    sequence is padded with masked steps to a multiple of it.
    """
    if T <= 3:
        return T
    root = math.sqrt(T)
    divisors = [k for k in range(max(2, int(root / 2)), int(2 * root) + 1) if T % k == 0]
    if divisors:
        return min(divisors, key=lambda k: abs(k - root))
    return max(1, round(root))


def _unroll_custom_vjp(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, impl, reverse,
                       unroll, chunked):
    math_ = _math_of(cell, impl)
    B, T, _ = xs_BxTxD.shape
    x_TxBxD = jnp.swapaxes(xs_BxTxD, 0, 1)
    probes_TxBxH = None if probes_BxTxH is None else jnp.swapaxes(probes_BxTxH, 0, 1)
    K, T_pad = None, T
    if chunked:
        K = chunk_length(T)
        T_pad = -(-T // K) * K
    if lengths is None and T_pad != T:
        lengths = jnp.full((B,), T, jnp.int32)
    valid_TxB = None if lengths is None else jnp.arange(T_pad)[:, None] < lengths[None, :]
    if T_pad != T:  # masked steps at the end; they leave the carry as it is
        pad = lambda a: jnp.pad(a, [(0, T_pad - T)] + [(0, 0)] * (a.ndim - 1))
        x_TxBxD = pad(x_TxBxD)
        probes_TxBxH = None if probes_TxBxH is None else pad(probes_TxBxH)
    final, h_TxBxH = _fused(math_, reverse, unroll, K, params, x_TxBxD, math_.to_tuple(carry),
                            valid_TxB, probes_TxBxH)
    if valid_TxB is not None:
        h_TxBxH = jnp.where(valid_TxB[..., None], h_TxBxH, jnp.zeros_like(h_TxBxH))
    return math_.from_tuple(final), jnp.swapaxes(h_TxBxH[:T], 0, 1)


_STATIC = ("cell", "reverse", "unroll", "remat", "hoist")


@functools.partial(jax.jit, static_argnames=_STATIC)
def unroll_fused(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse, unroll,
                 remat, hoist):
    """``unroll(..., impl="fused")``: every step's residuals stored; with ``remat=True`` the
    chunked recomputation of ``unroll_fused_chunked``. ``hoist`` is ignored (the input
    projection is always one matmul outside the loop)."""
    return _unroll_custom_vjp(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                              impl="fused", reverse=reverse, unroll=unroll, chunked=remat)


@functools.partial(jax.jit, static_argnames=_STATIC)
def unroll_fused_chunked(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                         unroll, remat, hoist):
    """``unroll(..., impl="fused_chunked")``: the fused backward with only the carry at the
    start of each chunk of ``chunk_length(T)`` ≈ √T steps kept; each chunk's residuals are
    recomputed in the backward pass (one extra forward). ``remat`` and ``hoist`` are
    ignored (it always recomputes; memory O(√T) for the recurrence)."""
    return _unroll_custom_vjp(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH,
                              impl="fused_chunked", reverse=reverse, unroll=unroll,
                              chunked=True)


register_impl("fused", unroll_fused)
register_impl("fused_chunked", unroll_fused_chunked)


# --------------------------------------------------------------------------- selection

# The fastest correct impl per backend, measured with benchmarks/throughput.py (see
# benchmarks/RESULTS.md). Backends without a measurement keep the plain scan.
DEFAULT_IMPLS = {"cpu": "fused_chunked"}


def default_impl(backend: str | None = None) -> str:
    """The unroll impl to use on ``backend`` (default: jax.default_backend())."""
    backend = jax.default_backend() if backend is None else backend
    return DEFAULT_IMPLS.get(backend, "scan")


def resolve_impl(name: str, backend: str | None = None) -> str:
    """A config value (``model.impl``) to a registered impl name: "auto" → default_impl()."""
    from seqjax.unroll import IMPLS
    if name == "auto":
        return default_impl(backend)
    if name not in IMPLS:
        raise ValueError(f"unknown unroll impl {name!r}; allowed: auto, "
                         f"{', '.join(sorted(IMPLS))}")
    return name
