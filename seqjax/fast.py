"""Faster training-step unrolls: a custom-VJP recurrence with cuDNN-style weight gradients.

Registered as ``unroll`` implementations (``seqjax.unroll.IMPLS``), so a model picks one by
name: ``unroll(..., impl="fused")``. ``DEFAULT_IMPLS`` names the fastest correct
implementation measured on a backend (benchmarks/RESULTS.md), registered with the impl; a
config field ``model.impl = "auto"`` means that one for the cells it runs
(``seqjax.unroll.resolve_impl`` decides). The default of ``unroll`` itself stays
``impl="scan"``, and the diagnostics always use "scan".

Impls (cells rnn, lstm, gru; any other cell raises a ValueError that says to use "scan"):

* ``"fused"``: the custom VJP below. Its forward stores what the backward needs either for
  every step or, when that would be a large buffer, only the carries (policy
  ``storage_plan``); ``remat=True`` keeps only the carry at the start of each chunk of
  ≈ √T steps and reruns each chunk's recurrence in the backward pass (memory O(√T)).
* ``"fused_chunked"``: always the chunk-start checkpointing of ``remat=True``.

The backward pass (as cuDNN does it)
------------------------------------
Autodiff of ``lax.scan`` builds a backward loop that, at every step, also accumulates the
weight gradients ``dW_h += h_{t-1}^T dG_t`` and ``dW_x += x_t^T dG_t`` — an (H, G·H)
read-modify-write and skinny matmuls (inner size B) per step — and runs the many small
operations of the step's JVP. Here backprop through time is split in three:

1. before the backward scan, everything in the step's derivative that does not depend on
   the incoming gradient is computed for a whole chunk of K steps at once (vectorised, no
   recurrence): the coefficients below;
2. a backward scan whose carry is only ∂L/∂carry (∂h, and ∂C for an LSTM): per step it
   forms the gate gradients ``dG_t`` (B, G·H) from those coefficients and one matmul,
   ``∂h_{t-1} = dG_t W_h^T (+ direct terms)``;
3. after the scan, the parameter and input gradients of the chunk as large matmuls over
   its K·B rows::

       dW_x += X^T dG^x        (D, G·H)      X:      (K·B, D)
       dW_h += H_prev^T dG^h   (H, G·H)      H_prev: (K·B, H), the carry h before each step
       db   += Σ dG^x          (G·H,)
       dX    = dG^x W_x^T      (K·B, D)

Per-cell maths (σ the logistic function; ``dh`` the total gradient reaching h_t, i.e.
from the next step plus from the output; ``dc`` the one reaching C_t):

* RNN ``h_t = φ(a_t)``, ``a_t = h_{t-1} W_h + x_t W_x + b``; coefficient φ'(a_t), read from
  h_t (tanh: 1 − h_t²; relu: [h_t > 0]; linear: 1); ``dG = dh · φ'(a_t)``.
* LSTM, ``z_t = h_{t-1} W_h + x_t W_x + b`` in gate blocks (i, f, g, o), computed with ONE
  tanh per element, σ(x) = ½ + ½ tanh(x/2). Coefficients
  ``A = [g·i(1−i), C_{t−1}·f(1−f), i·(1−g²), tanh(C_t)·o(1−o)]`` and
  ``β = o·(1 − tanh²C_t)``; per step ``dc ← dc + dh·β``, ``dG = [dc, dc, dc, dh] ⊙ A``,
  ``∂C_{t−1} = dc·f``; ``dG^x = dG^h = dG``.
* GRU (reset after), ``hw = h_{t-1} W_h``, ``hn = hw_n + b_hn``, ``r, z = σ(xw_{r,z} + b +
  hw_{r,z})``, ``n = tanh(xw_n + b_n + r·hn)``, ``h_t = (1−z)·n + z·h_{t−1}``. Every gate
  gradient is linear in dh: with ``α_n = (1−z)(1−n²)``, ``α_r = α_n·hn·r(1−r)``,
  ``α_z = (h_{t−1}−n)·z(1−z)``: ``dG^h = dh·[α_r, α_z, α_n·r]``,
  ``dG^x = dh·[α_r, α_z, α_n]``, ``db_hn = Σ dG^h_n``, ``∂h_{t−1} = dG^h W_h^T + dh·z``.

Where the backward gets each step's residuals (``MODES``):

* ``"all"``: the forward stores them for every step (LSTM: the gates u and C; GRU:
  h_{t−1} W_h, from which the backward recomputes r, z, n for the whole sequence; plus h,
  which is the output anyway);
* ``"carries"``: the forward stores only the carry of every step (h, and C for an LSTM);
  per chunk the backward rebuilds the pre-activations from them with ONE large matmul,
  ``H_prev W_h + X W_x``, without the recurrence (the carries are known);
* ``"starts"``: the forward keeps only the carry at the start of each chunk; the backward
  reruns each chunk's recurrence (one extra sequential forward; memory O(T/K + K)).

Why the choice matters on a CPU: XLA allocates a training step's temporaries afresh on
every call, and glibc serves blocks above 32 MB with new pages, so every byte of a large
residual buffer costs a page fault per step; below that size "all" is fastest, above it
recomputing is cheaper than faulting (measured in benchmarks/RESULTS.md).

Masking (``lengths``), ``reverse``, an initial carry and probes (∂L/∂h_t, see
``seqjax.diagnostics``) behave exactly as in ``impl="scan"`` (see ``seqjax.unroll``): at a
padded step the carry passes through, the output is zero and the step's gate gradients
are zero.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from seqjax import cells as C
from seqjax.unroll import register_impl, valid_mask

Array = jax.Array
MODES = ("all", "carries", "starts")


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


def _zero_padded(valid_B, a_BxF):
    return a_BxF if valid_B is None else _sel(valid_B, a_BxF, jnp.zeros_like(a_BxF))


def _inputs(valid_TxB, probes_TxBxH, **arrays):
    """The per-step inputs of a scan; None entries are left out."""
    scanned = {k: v for k, v in arrays.items() if v is not None}
    if valid_TxB is not None:
        scanned["valid"] = valid_TxB
    if probes_TxBxH is not None:
        scanned["probe"] = probes_TxBxH
    return scanned


def _projected(inp, W_x):
    """This step's x_t W_x: precomputed (``inp["xw"]``) or formed here from ``inp["x"]``."""
    return inp["xw"] if "xw" in inp else inp["x"] @ W_x


def _total_dh(dh_BxH, inp):
    """Total gradient reaching h_t: from the next step plus from the output (zero if padded;
    absent when the loss does not use the outputs)."""
    if "dhs" not in inp:
        return dh_BxH
    return dh_BxH + _zero_padded(inp.get("valid"), inp["dhs"])


def _rows(a_TxBxF):
    """(T, B, F) -> (T·B, F): every (timestep, example) pair as one row of a 2-D matmul.

    (XLA:CPU runs an einsum that contracts two axes at once several times slower than the
    same product written on reshaped 2-D operands.)
    """
    return a_TxBxF.reshape(-1, a_TxBxF.shape[-1])


def _matmul(a_TxBxF, W_FxG):
    """(T, B, F) @ (F, G) -> (T, B, G) as one 2-D matmul."""
    T, B, _ = a_TxBxF.shape
    return (_rows(a_TxBxF) @ W_FxG).reshape(T, B, -1)


def _param_grads(params, x_TxBxD, dGx_TxBxG, hprev_TxBxH, dGh_TxBxG, need_dx=True):
    """dW_x, dW_h, db and dX (None unless need_dx) from the gate gradients of a chunk
    (module docstring, step 3)."""
    dGx_NxG = _rows(dGx_TxBxG)
    grads = {"W_x": _rows(x_TxBxD).T @ dGx_NxG,
             "W_h": _rows(hprev_TxBxH).T @ _rows(dGh_TxBxG),
             "b": jnp.sum(dGx_NxG, axis=0)}
    return grads, _matmul(dGx_TxBxG, params["W_x"].T) if need_dx else None


def _probe_grads(out, valid_TxB):
    """∂L/∂probe_t = the total ∂L/∂h_t at valid steps, zero at padded ones."""
    if "dprobe" not in out:
        return None
    d = out["dprobe"]
    return d if valid_TxB is None else jnp.where(valid_TxB[..., None], d, jnp.zeros_like(d))


# --------------------------------------------------------------------------- RNN


class _RNN(NamedTuple):
    """h_t = φ(h_{t-1} W_h + x_t W_x + b)."""

    activation: str
    project_in_loop = False  # x W_x for a whole chunk at once: measured no slower here

    def to_tuple(self, carry):
        return (carry,)

    def from_tuple(self, carry):
        return carry[0]

    def dact(self, h):
        """φ'(a) written in terms of h = φ(a)."""
        if self.activation == "tanh":
            return 1.0 - h * h
        if self.activation == "relu":
            return (h > 0).astype(h.dtype)
        return jnp.ones_like(h)

    def forward(self, params, xs, carry, valid_TxB, probes_TxBxH, *, reverse, unroll, save):
        """The recurrence over ``xs`` ({"xw": x W_x} or {"x": x}, time-major); ``save`` in
        ("h", "carries", "residuals") picks what is kept."""
        act = C.ACTIVATIONS[self.activation]
        W_x, W_h, b = params["W_x"], params["W_h"], params["b"][None, :]

        def step(h_BxH, inp):
            h_new = act(h_BxH @ W_h + _projected(inp, W_x) + b)
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                h_new = _sel(inp["valid"], h_new, h_BxH)
            return h_new, h_new

        (h0,) = carry
        hT, h_TxBxH = jax.lax.scan(step, h0, _inputs(valid_TxB, probes_TxBxH, **xs),
                                   reverse=reverse, unroll=unroll)
        return (hT,), h_TxBxH, {"h": None, "carries": (h_TxBxH,), "residuals": h_TxBxH}[save]

    def residuals(self, params, xw_TxBxH, carries, start, valid_TxB, *, reverse):
        return carries[0]

    def backward(self, params, x_TxBxD, xw_TxBxH, h_TxBxH, start, dcarry, dhs_TxBxH,
                 valid_TxB, probes_TxBxH, *, reverse, unroll, need_dx=True):
        h_pre = h_TxBxH if probes_TxBxH is None else h_TxBxH - probes_TxBxH
        W_hT = params["W_h"].T

        def step(dh_BxH, inp):
            dh = _total_dh(dh_BxH, inp)
            dG = _zero_padded(inp.get("valid"), dh * inp["dact"])
            dh_prev = dG @ W_hT
            if "valid" in inp:
                dh_prev = _sel(inp["valid"], dh_prev, dh)
            return dh_prev, {"dG": dG, "dprobe": dh} if "probe" in inp else {"dG": dG}

        scanned = _inputs(valid_TxB, probes_TxBxH, dact=self.dact(h_pre), dhs=dhs_TxBxH)
        dh0, out = jax.lax.scan(step, dcarry[0], scanned, reverse=not reverse, unroll=unroll)
        hprev = _prev_hidden(h_TxBxH, start[0], valid_TxB, reverse)
        grads, dx = _param_grads(params, x_TxBxD, out["dG"], hprev, out["dG"], need_dx)
        return grads, dx, (dh0,), _probe_grads(out, valid_TxB)


# --------------------------------------------------------------------------- LSTM


def _lstm_u(z_Bx4H):
    """u = tanh(z·s), s = ½ on the σ gates (i, f, o) and 1 on g: ONE tanh over (…, 4H).

    The gates follow as σ(x) = ½ + ½·tanh(x/2): i, f, o = ½ + ½u and g = u.
    """
    H = z_Bx4H.shape[-1] // 4
    scale = np.concatenate([np.full(2 * H, 0.5), np.ones(H), np.full(H, 0.5)])
    scale = jnp.asarray(scale, z_Bx4H.dtype).reshape((1,) * (z_Bx4H.ndim - 1) + (-1,))
    return jnp.tanh(z_Bx4H * scale)


def _lstm_gates(u_Bx4H):
    H = u_Bx4H.shape[-1] // 4
    i = 0.5 + 0.5 * u_Bx4H[..., :H]
    f = 0.5 + 0.5 * u_Bx4H[..., H:2 * H]
    g = u_Bx4H[..., 2 * H:3 * H]
    o = 0.5 + 0.5 * u_Bx4H[..., 3 * H:]
    return i, f, g, o


class _LSTM(NamedTuple):
    """C_t = f C_{t-1} + i g, h_t = o tanh(C_t)."""

    # x_t W_x formed inside the loop, not sliced from a (T, B, 4H) precomputed buffer: the
    # gate fusion that reads a slice of that buffer ran slower on XLA:CPU (the forward at
    # B=64, D=2, H=64, T=100: 7.6 -> 6.4 ms; benchmarks/RESULTS.md)
    project_in_loop = True

    def to_tuple(self, carry):
        return (carry.h, carry.c)

    def from_tuple(self, carry):
        return C.LSTMCarry(h=carry[0], c=carry[1])

    def forward(self, params, xs, carry, valid_TxB, probes_TxBxH, *, reverse, unroll, save):
        W_x, W_h, b = params["W_x"], params["W_h"], params["b"][None, :]

        def step(carry, inp):
            h_BxH, c_BxH = carry
            u_Bx4H = _lstm_u(h_BxH @ W_h + _projected(inp, W_x) + b)
            i, f, g, o = _lstm_gates(u_Bx4H)
            c_new = f * c_BxH + i * g
            h_new = o * jnp.tanh(c_new)
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                c_new = _sel(inp["valid"], c_new, c_BxH)
                h_new = _sel(inp["valid"], h_new, h_BxH)
            ys = {"h": h_new, "carries": (h_new, c_new),
                  "residuals": (u_Bx4H, c_new, h_new)}[save]
            return (h_new, c_new), ys

        final, ys = jax.lax.scan(step, carry, _inputs(valid_TxB, probes_TxBxH, **xs),
                                 reverse=reverse, unroll=unroll)
        if save == "h":
            return final, ys, None
        return final, ys[-1] if save == "residuals" else ys[0], ys

    def residuals(self, params, xw_TxBx4H, carries, start, valid_TxB, *, reverse):
        """(u, C, h) of every step from the stored carries without the recurrence:
        z_t = h_{t-1} W_h + x_t W_x + b for all steps at once is one large matmul."""
        h_TxBxH, c_TxBxH = carries
        hprev = _prev_hidden(h_TxBxH, start[0], valid_TxB, reverse)
        z = _matmul(hprev, params["W_h"]) + xw_TxBx4H + params["b"][None, None]
        return _lstm_u(z), c_TxBxH, h_TxBxH

    def backward(self, params, x_TxBxD, xw_TxBx4H, res, start, dcarry, dhs_TxBxH, valid_TxB,
                 probes_TxBxH, *, reverse, unroll, need_dx=True):
        u, c, h = res
        h0, c0 = start
        i, f, g, o = _lstm_gates(u)
        tc = jnp.tanh(c)
        cprev = _shift(c, c0, reverse)
        A = jnp.concatenate([g * i * (1.0 - i), cprev * f * (1.0 - f), i * (1.0 - g * g),
                             tc * o * (1.0 - o)], axis=-1)
        beta = o * (1.0 - tc * tc)
        W_hT = params["W_h"].T

        def step(dcarry, inp):
            dh_in, dc_in = dcarry
            dh = _total_dh(dh_in, inp)
            dc = dc_in + dh * inp["beta"]
            dG = jnp.concatenate([dc, dc, dc, dh], axis=-1) * inp["A"]
            dc_prev = dc * inp["f"]
            if "valid" in inp:
                v = inp["valid"]
                dG = _zero_padded(v, dG)
                dc_prev = _sel(v, dc_prev, dc_in)
            dh_prev = dG @ W_hT
            if "valid" in inp:
                dh_prev = _sel(v, dh_prev, dh)
            out = {"dG": dG, "dprobe": dh} if "probe" in inp else {"dG": dG}
            return (dh_prev, dc_prev), out

        scanned = _inputs(valid_TxB, probes_TxBxH, A=A, beta=beta, f=f, dhs=dhs_TxBxH)
        dcarry0, out = jax.lax.scan(step, dcarry, scanned, reverse=not reverse, unroll=unroll)
        hprev = _prev_hidden(h, h0, valid_TxB, reverse)
        grads, dx = _param_grads(params, x_TxBxD, out["dG"], hprev, out["dG"], need_dx)
        return grads, dx, dcarry0, _probe_grads(out, valid_TxB)


# --------------------------------------------------------------------------- GRU


class _GRU(NamedTuple):
    """Reset-after GRU: n = tanh(x W_xn + b_n + r·(h W_hn + b_hn)), h' = (1−z) n + z h."""

    # x_t W_x formed inside the loop: XLA:CPU did not vectorise the gate fusion when it
    # read its x W_x from a slice of a precomputed (T, B, 3H) buffer (the forward at
    # B=64, D=2, H=64, T=100: 16 -> 5.5 ms; benchmarks/RESULTS.md)
    project_in_loop = True

    def to_tuple(self, carry):
        return (carry,)

    def from_tuple(self, carry):
        return carry[0]

    @staticmethod
    def gates(xwb_Bx3H, hw_Bx3H, b_hn_H):
        """(r, z, hn, n) from x W_x + b and h W_h (any leading axes)."""
        H = hw_Bx3H.shape[-1] // 3
        b_hn = b_hn_H.reshape((1,) * (hw_Bx3H.ndim - 1) + (-1,))
        rz = 0.5 + 0.5 * jnp.tanh(0.5 * (xwb_Bx3H[..., :2 * H] + hw_Bx3H[..., :2 * H]))
        r, z = rz[..., :H], rz[..., H:]  # σ(x) = ½ + ½ tanh(x/2): one tanh for both gates
        hn = hw_Bx3H[..., 2 * H:] + b_hn
        n = jnp.tanh(xwb_Bx3H[..., 2 * H:] + r * hn)
        return r, z, hn, n

    def forward(self, params, xs, carry, valid_TxB, probes_TxBxH, *, reverse, unroll, save):
        W_x, W_h, b, b_hn = params["W_x"], params["W_h"], params["b"][None, :], params["b_hn"]

        def step(h_BxH, inp):
            hw_Bx3H = h_BxH @ W_h
            r, z, hn, n = self.gates(_projected(inp, W_x) + b, hw_Bx3H, b_hn)
            h_new = (1.0 - z) * n + z * h_BxH
            if "probe" in inp:
                h_new = h_new + inp["probe"]
            if "valid" in inp:
                h_new = _sel(inp["valid"], h_new, h_BxH)
            ys = {"h": h_new, "carries": (h_new,), "residuals": (hw_Bx3H, h_new)}[save]
            return h_new, ys

        (h0,) = carry
        hT, ys = jax.lax.scan(step, h0, _inputs(valid_TxB, probes_TxBxH, **xs),
                              reverse=reverse, unroll=unroll)
        if save == "h":
            return (hT,), ys, None
        return (hT,), ys[1] if save == "residuals" else ys[0], ys

    def residuals(self, params, xw_TxBx3H, carries, start, valid_TxB, *, reverse):
        """(h_{t-1} W_h, h_t) of every step from the stored h: one large matmul."""
        (h_TxBxH,) = carries
        hprev = _prev_hidden(h_TxBxH, start[0], valid_TxB, reverse)
        return _matmul(hprev, params["W_h"]), h_TxBxH

    def backward(self, params, x_TxBxD, xw_TxBx3H, res, start, dcarry, dhs_TxBxH, valid_TxB,
                 probes_TxBxH, *, reverse, unroll, need_dx=True):
        hw, h = res
        hprev = _prev_hidden(h, start[0], valid_TxB, reverse)
        # r and z recomputed for the whole sequence rather than stored: the same step time
        # and bits, a third less residual memory (benchmarks/RESULTS.md)
        r, z, hn, n = self.gates(xw_TxBx3H + params["b"][None, None], hw, params["b_hn"])
        a_n = (1.0 - z) * (1.0 - n * n)
        a_r = a_n * hn * r * (1.0 - r)
        a_z = (hprev - n) * z * (1.0 - z)
        A_h = jnp.concatenate([a_r, a_z, a_n * r], axis=-1)
        W_hT = params["W_h"].T

        def step(dh_in, inp):
            dh = _zero_padded(inp.get("valid"), _total_dh(dh_in, inp))
            dGh = jnp.concatenate([dh, dh, dh], axis=-1) * inp["A_h"]
            dh_prev = dGh @ W_hT + dh * inp["z"]
            if "valid" in inp:
                dh_prev = _sel(inp["valid"], dh_prev, dh_in)
            return dh_prev, {"dGh": dGh, "dh": dh}

        scanned = _inputs(valid_TxB, None, A_h=A_h, z=z, dhs=dhs_TxBxH)
        dh0, out = jax.lax.scan(step, dcarry[0], scanned, reverse=not reverse, unroll=unroll)
        dh_all, dGh = out["dh"], out["dGh"]
        dGx = jnp.concatenate([dGh[..., :2 * a_n.shape[-1]], dh_all * a_n], axis=-1)
        grads, dx = _param_grads(params, x_TxBxD, dGx, hprev, dGh, need_dx)
        grads["b_hn"] = jnp.sum(_rows(dGh[..., 2 * a_n.shape[-1]:]), axis=0)
        dprobes = None if probes_TxBxH is None else dh_all
        return grads, dx, (dh0,), dprobes


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


def _chunks(a_TxF, K):
    """(T, ...) -> (T/K, K, ...); None stays None."""
    return None if a_TxF is None else a_TxF.reshape((-1, K) + a_TxF.shape[1:])


def _unchunk(a_NxKxF):
    return None if a_NxKxF is None else a_NxKxF.reshape((-1,) + a_NxKxF.shape[2:])


def _forward_inputs(math, x_KxBxD, W_x, xw_KxBxG=None):
    """What ``math.forward`` scans over: x itself, for the cells that form x_t W_x inside
    the loop (``project_in_loop``), else x W_x (``xw_KxBxG`` when already computed)."""
    if math.project_in_loop:
        return {"x": x_KxBxD}
    return {"xw": _matmul(x_KxBxD, W_x) if xw_KxBxG is None else xw_KxBxG}


def _chunked_forward(math, reverse, unroll, K, params, x_TxBxD, carry, valid_TxB,
                     probes_TxBxH, save):
    """Outer scan over chunks of K steps (one input-projection matmul per chunk, or x_t W_x
    inside the recurrence for the cells that ``project_in_loop``), inner recurrence.
    Returns (final carry, h of every step, chunk-start carries, saved)."""

    def chunk(carry, inp):
        xs = _forward_inputs(math, inp["x"], params["W_x"])
        final, h_KxBxH, saved = math.forward(params, xs, carry, inp.get("valid"),
                                             inp.get("probe"), reverse=reverse, unroll=unroll,
                                             save=save)
        return final, (carry, h_KxBxH, saved)

    scanned = _inputs(_chunks(valid_TxB, K), _chunks(probes_TxBxH, K), x=_chunks(x_TxBxD, K))
    final, (starts, h_NxKxBxH, saved) = jax.lax.scan(chunk, carry, scanned, reverse=reverse)
    return final, _unchunk(h_NxKxBxH), starts, jax.tree.map(_unchunk, saved)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _fused(math, reverse, unroll, mode, K, params, x_TxBxD, carry, valid_TxB, probes_TxBxH):
    """The recurrence over time-major inputs (T a multiple of the chunk length K)."""
    return _chunked_forward(math, reverse, unroll, K, params, x_TxBxD, carry, valid_TxB,
                            probes_TxBxH, "h")[:2]


def _fused_fwd(math, reverse, unroll, mode, K, params, x_TxBxD, carry, valid_TxB,
               probes_TxBxH):
    # symbolic_zeros=True: every array argument arrives as CustomVJPPrimal(value, perturbed).
    is_primal = lambda a: isinstance(a, CustomVJPPrimal)
    need_dx = any(p.perturbed for p in jax.tree.leaves(x_TxBxD, is_leaf=is_primal))
    params, x_TxBxD, carry, valid_TxB, probes_TxBxH = jax.tree.map(
        lambda a: a.value, (params, x_TxBxD, carry, valid_TxB, probes_TxBxH), is_leaf=is_primal)
    save = {"all": "residuals", "carries": "carries", "starts": "h"}[mode]
    final, h_TxBxH, starts, saved = _chunked_forward(
        math, reverse, unroll, K, params, x_TxBxD, carry, valid_TxB, probes_TxBxH, save)
    # need_dx travels in the residuals' pytree structure (a dict key), which is static.
    x_res = {"x_needs_grad" if need_dx else "x": x_TxBxD}
    return (final, h_TxBxH), (params, x_res, valid_TxB, probes_TxBxH, starts, saved)


def _fused_bwd(math, reverse, unroll, mode, K, saved_, cts):
    params, x_res, valid_TxB, probes_TxBxH, starts, saved = saved_
    (need_dx, x_TxBxD), = [(k == "x_needs_grad", v) for k, v in x_res.items()]
    dfinal, dh_TxBxH = cts
    # Symbolic zeros: an unused output (e.g. every h_t when the loss reads only the final
    # carry) is never materialised; an unused final carry becomes zeros of its small shape.
    if isinstance(dh_TxBxH, SymbolicZero):
        dh_TxBxH = None
    dfinal = tuple(jnp.zeros(d.shape, d.dtype) if isinstance(d, SymbolicZero) else d
                   for d in dfinal)

    # Per chunk, last processed first: its residuals (stored, rebuilt from the stored
    # carries, or by rerunning its recurrence from its start carry), its backward scan and
    # its parameter gradients.
    def chunk(acc, inp):
        dcarry, grads = acc
        valid, probe, start = inp.get("valid"), inp.get("probe"), inp["start"]
        xw = _matmul(inp["x"], params["W_x"])
        if mode == "all":
            res = inp["saved"]
        elif mode == "carries":
            res = math.residuals(params, xw, inp["saved"], start, valid, reverse=reverse)
        else:
            xs = _forward_inputs(math, inp["x"], params["W_x"], xw)
            res = math.forward(params, xs, start, valid, probe, reverse=reverse, unroll=unroll,
                               save="residuals")[2]
        g, dx, dcarry, dprobe = math.backward(params, inp["x"], xw, res, start, dcarry,
                                              inp.get("dhs"), valid, probe, reverse=reverse,
                                              unroll=unroll, need_dx=need_dx)
        return (dcarry, jax.tree.map(jnp.add, grads, g)), (dx, dprobe)

    scanned = _inputs(_chunks(valid_TxB, K), _chunks(probes_TxBxH, K), x=_chunks(x_TxBxD, K),
                      start=starts, dhs=_chunks(dh_TxBxH, K))
    if saved is not None:
        scanned["saved"] = jax.tree.map(lambda a: _chunks(a, K), saved)
    zeros = jax.tree.map(jnp.zeros_like, params)
    (dcarry0, grads), (dx, dprobes) = jax.lax.scan(chunk, (dfinal, zeros), scanned,
                                                   reverse=not reverse)
    return grads, _unchunk(dx), dcarry0, None, _unchunk(dprobes)


_fused.defvjp(_fused_fwd, _fused_bwd, symbolic_zeros=True)


def fused_unroll(cell, params, xs_BxTxD, carry, lengths=None, probes_BxTxH=None, *,
                 reverse=False, unroll=1, mode="all", K=None, impl="fused"):
    """The custom-VJP unroll with an explicit residual ``mode`` (MODES) and chunk length K.

    Batch-first in and out, like ``seqjax.unroll.unroll``; T is padded with masked steps to
    a multiple of K (K=None: one chunk). The registered impls pick ``mode`` and K.
    """
    C.check_choice("residual mode", mode, MODES)
    math_ = _math_of(cell, impl)
    params = dict(params.items())  # a plain dict: flax may hand a FrozenDict to a module
    B, T, _ = xs_BxTxD.shape
    x_TxBxD = jnp.swapaxes(xs_BxTxD, 0, 1)
    probes_TxBxH = None if probes_BxTxH is None else jnp.swapaxes(probes_BxTxH, 0, 1)
    K = T if K is None else max(1, min(int(K), T))
    T_pad = -(-T // K) * K
    if lengths is None and T_pad != T:
        lengths = jnp.full((B,), T, jnp.int32)
    valid_TxB = None if lengths is None else valid_mask(lengths, T_pad, time_major=True)
    if T_pad != T:  # masked steps at the end; they leave the carry as it is
        pad = lambda a: jnp.pad(a, [(0, T_pad - T)] + [(0, 0)] * (a.ndim - 1))
        x_TxBxD = pad(x_TxBxD)
        probes_TxBxH = None if probes_TxBxH is None else pad(probes_TxBxH)
    final, h_TxBxH = _fused(math_, reverse, unroll, mode, K, params, x_TxBxD,
                            math_.to_tuple(carry), valid_TxB, probes_TxBxH)
    if valid_TxB is not None:
        h_TxBxH = jnp.where(valid_TxB[..., None], h_TxBxH, jnp.zeros_like(h_TxBxH))
    return math_.from_tuple(final), jnp.swapaxes(h_TxBxH[:T], 0, 1)


# --------------------------------------------------------------------------- policy


def chunk_length(T: int) -> int:
    """Steps per checkpointed chunk ("starts"): about √T, so memory is O(√T).

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


# Residual bytes per step and example, in units of H floats: the LSTM stores u (4H), C, h;
# the GRU h W_h (3H) and h; the RNN h.
_RESIDUAL_H = {_LSTM: 6, _GRU: 4, _RNN: 1}
STORE_ALL_BYTES = 24 * 2 ** 20  # below glibc's 32 MB mmap threshold, with room to spare
CHUNK_ROWS = 1024  # K·B rows per chunk when the carries are stored


def storage_plan(cell, B: int, T: int, H: int, itemsize: int = 4) -> tuple[str, int]:
    """(mode, K) of ``impl="fused"`` without remat: every step's residuals while they fit in
    STORE_ALL_BYTES, else the carries with chunks of about CHUNK_ROWS rows."""
    per_step = _RESIDUAL_H[type(_math_of(cell, "fused"))] * B * H * itemsize
    if per_step * T <= STORE_ALL_BYTES:
        return "all", T
    return "carries", max(1, min(T, round(CHUNK_ROWS / B)))


_STATIC = ("cell", "reverse", "unroll", "remat", "hoist")


@functools.partial(jax.jit, static_argnames=_STATIC)
def unroll_fused(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse, unroll,
                 remat, hoist):
    """``unroll(..., impl="fused")``: residuals stored per ``storage_plan``; with
    ``remat=True`` only chunk-start carries (as "fused_chunked"). ``hoist`` is ignored:
    each cell's maths says where its input projection is formed (``project_in_loop``)."""
    B, T, _ = xs_BxTxD.shape
    if remat:
        mode, K = "starts", chunk_length(T)
    else:
        mode, K = storage_plan(cell, B, T, cell.hidden_size(params),
                               params["W_h"].dtype.itemsize)
    return fused_unroll(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, reverse=reverse,
                        unroll=unroll, mode=mode, K=K, impl="fused")


@functools.partial(jax.jit, static_argnames=_STATIC)
def unroll_fused_chunked(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, *, reverse,
                         unroll, remat, hoist):
    """``unroll(..., impl="fused_chunked")``: only the carry at the start of each chunk of
    ``chunk_length(T)`` ≈ √T steps is kept; the backward reruns each chunk (one extra
    forward; memory O(√T) for the recurrence). ``remat`` and ``hoist`` are ignored."""
    return fused_unroll(cell, params, xs_BxTxD, carry, lengths, probes_BxTxH, reverse=reverse,
                        unroll=unroll, mode="starts", K=chunk_length(xs_BxTxD.shape[1]),
                        impl="fused_chunked")


# The fastest correct impl per backend, measured with benchmarks/throughput.py (see
# benchmarks/RESULTS.md); "auto" means it there (``seqjax.unroll.resolve_impl``). Backends
# without a measurement keep the plain scan.
DEFAULT_IMPLS = {"cpu": "fused"}
FAST_CELLS = ("gru", "lstm", "rnn")  # the cells the fused impls implement


def _default_on(name: str) -> tuple[str, ...]:
    return tuple(b for b, impl in DEFAULT_IMPLS.items() if impl == name)


register_impl("fused", unroll_fused, cells=FAST_CELLS, default_on=_default_on("fused"))
register_impl("fused_chunked", unroll_fused_chunked, cells=FAST_CELLS,
              default_on=_default_on("fused_chunked"))
