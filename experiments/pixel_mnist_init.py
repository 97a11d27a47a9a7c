r"""Why a forget bias of 2 explodes on pixel-MNIST at initialisation, and why chrono does not.

A digit read pixel by pixel starts with about 150 blank pixels (x_t = 0). With zero biases
except b_f and zero input, h = c = 0 is a fixed point of the LSTM, and its one-step
Jacobian there is, in the blocks (h, c) (gates i, f, o = σ(b), g = tanh(0) = 0):

    ∂c_t/∂c_{t−1} = f·I,  ∂c_t/∂h_{t−1} = i·W_hgᵀ,  ∂h_t/∂(·) = o·tanh'(0)·∂c_t/∂(·).

So J = [o; 1] ⊗ [i·W_hgᵀ, f·I], whose non-zero eigenvalues are those of f·I + o·i·W_hgᵀ:
f + ¼·λ with λ the eigenvalues of W_hg (|λ| = 1 for seqjax's orthogonal blocks). Its spectral
radius is about σ(b_f) + ¼, above 1 once σ(b_f) > ¾, i.e. b_f > ln 3 ≈ 1.1: the gradient then
grows by that factor for every blank pixel it crosses on its way back. At b_f = 2 that is
1.13^196 ≈ 2.5e10 over the first 7 rows. Chrono sets b_i = −b_f: the units that remember
(f → 1) have their input gate shut (i → 0), so the spectral radius stays at or below 1.

    python -m experiments.pixel_mnist_init [--raw_dir=../shared/data/mnist --hidden=64]

Prints, per initialisation: the closed-form and the measured spectral radius at the zero
state, ‖∂L/∂h_t‖ at t = 0, 196 and 784, and the norm of the bias gradient on 32 training
digits (cross entropy of a Glorot read-out of h_T).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from seqjax import cells, diagnostics
from seqjax import unroll as U
from seqjax.data.mnist import read_idx

INITS = (("forget_bias=1", {"forget_bias": 1.0}), ("forget_bias=2", {"forget_bias": 2.0}),
         ("forget_bias=3", {"forget_bias": 3.0}), ("forget_bias=4", {"forget_bias": 4.0}),
         ("chrono T_max=784", {"forget_bias": "chrono", "chrono_tmax": 784.0}))


def zero_state_jacobian(params) -> jax.Array:
    """The (2H, 2H) Jacobian of one LSTM step at h = c = 0 with input 0, blocks (h, c)."""
    cell = cells.get_cell("lstm")
    H = params["W_h"].shape[0]

    def step(v):
        carry = cells.classic.LSTMCarry(h=v[None, :H], c=v[None, H:])
        new, _ = cell.step(params, carry, jnp.zeros((1, params["W_x"].shape[0]), v.dtype))
        return jnp.concatenate([new.h[0], new.c[0]])

    return jax.jacfwd(step)(jnp.zeros((2 * H,), params["W_h"].dtype))


def closed_form_eigenvalues(params) -> np.ndarray:
    """Eigenvalues of f·I + o·i·W_hgᵀ (gate values σ(b) at the zero state, g = 0)."""
    H = params["W_h"].shape[0]
    b = np.asarray(params["b"], np.float64).reshape(4, H)
    i, f, o = (1.0 / (1.0 + np.exp(-b[k])) for k in (0, 1, 3))
    W_hg = np.asarray(params["W_h"], np.float64)[:, 2 * H:3 * H]
    return np.linalg.eigvals(np.diag(f) + (o * i)[:, None] * W_hg.T)


def load_digits(raw_dir: str, n: int) -> tuple[jax.Array, jax.Array]:
    """The first ``n`` training digits as (n, 784, 1) pixels in [0, 1] and their labels."""
    images = read_idx(os.path.join(raw_dir, "train-images-idx3-ubyte.gz"))[:n].reshape(n, 784)
    labels = read_idx(os.path.join(raw_dir, "train-labels-idx1-ubyte.gz"))[:n]
    return jnp.asarray(images[:, :, None] / 255.0, jnp.float32), jnp.asarray(labels)


def measure(x, y, hidden: int = 64, seed: int = 0, inits=INITS) -> dict[str, dict]:
    """{init label: closed-form and measured radius, ‖∂L/∂h_t‖ at 0/196/T, ‖∂L/∂b‖}."""
    cell, B, T = cells.get_cell("lstm"), x.shape[0], x.shape[1]
    out = {}
    for label, opts in inits:
        k_cell, k_out = jax.random.split(jax.random.key(seed))
        params = cell.init(k_cell, x.shape[-1], hidden, **opts)
        w_out = jax.nn.initializers.glorot_uniform()(k_out, (hidden, 10), jnp.float32)

        def loss_fn(final, hs, w_out=w_out):
            logp = jax.nn.log_softmax(cell.hidden(final) @ w_out)
            return -jnp.mean(logp[jnp.arange(B), y])

        norms = jnp.mean(diagnostics.hidden_grad_norms(cell, params, x, loss_fn), axis=0)
        g = jax.grad(lambda p: loss_fn(*U.unroll(cell, p, x, impl="scan")))(params)
        J = np.asarray(zero_state_jacobian(params), np.float64)
        out[label] = {
            "radius_closed_form": float(np.max(np.abs(closed_form_eigenvalues(params)))),
            "radius_measured": float(np.max(np.abs(np.linalg.eigvals(J)))),
            "grad_h": {t: float(norms[t]) for t in (0, min(196, T), T)},
            "grad_bias": float(jnp.linalg.norm(g["b"])),
        }
    return out


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    x, y = load_digits(flags.FLAGS.raw_dir, 32)
    results = measure(x, y, flags.FLAGS.hidden)
    print(f"LSTM H={flags.FLAGS.hidden} at initialisation, 32 MNIST digits read pixel by pixel "
          f"(T=784), seed 0\n")
    print(f"{'init':18s}{'rho closed':>11s}{'rho J':>9s}{'|dL/dh_0|':>11s}{'|dL/dh_196|':>12s}"
          f"{'|dL/dh_T|':>11s}{'|dL/db|':>10s}")
    for label, r in results.items():
        g = list(r["grad_h"].values())
        print(f"{label:18s}{r['radius_closed_form']:11.4f}{r['radius_measured']:9.4f}"
              f"{g[0]:11.2e}{g[1]:12.2e}{g[2]:11.2e}{r['grad_bias']:10.2e}")


if __name__ == "__main__":
    flags.DEFINE_string("raw_dir", "../shared/data/mnist", "directory of the MNIST IDX files")
    flags.DEFINE_integer("hidden", 64, "hidden units H")
    app.run(main)
