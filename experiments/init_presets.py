r"""How much the vanishing picture depends on the initialisation: ‖∂L/∂h_0‖/‖∂L/∂h_T‖ at
initialisation for the tanh RNN, LSTM and GRU under each library's default init.

Rows: every ``model.init_preset`` ("seqjax", "torch", "keras", "flax"; seqjax.cells.presets)
× cell, plus seqjax's LSTM at forget bias 0 (the README's worst case) and the chrono init
(Tallec & Ollivier 2018: LSTM ``forget_bias="chrono"``, GRU ``update_bias="chrono"``, with
T_max = T). The setting is experiments.gradient_flow's: one batch of the adding problem, a
Glorot-uniform linear read-out of h_T, MSE; parameter seed s, data seed s + 1. Each ratio
is computed in float64 after drawing the parameters in float32 (at T = 1000 many ratios
are below float32's range), for seeds 0..n−1 and T = 100 and 1000.

    python -m experiments.init_presets [--seeds=5 --hidden=128 --batch=32 \
        --out=docs/figures/init_presets]

Writes ``ratios.json`` (every seed), ``table.md`` (geometric mean and range over seeds)
and ``ratios.png`` to ``--out``.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments import gradient_flow
from seqjax import cells

PRESETS = ("seqjax", "torch", "keras", "flax")
CELL_LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}
SEQ_LENS = (100, 1000)


def rows(seq_len: int) -> list[tuple[str, str, dict]]:
    """(label, cell name, init options) for every row of the table at this T."""
    out = [(f"{CELL_LABELS[c]} {p}", c, {"init_preset": p})
           for c in CELL_LABELS for p in PRESETS]
    out.insert(5, ("LSTM seqjax forget_bias=0", "lstm", {"forget_bias": 0.0}))
    out.append(("LSTM chrono", "lstm", {"forget_bias": "chrono", "chrono_tmax": float(seq_len)}))
    out.append(("GRU chrono", "gru", {"update_bias": "chrono", "chrono_tmax": float(seq_len)}))
    return out


def ratio(cell_name: str, init_opts: dict, seq_len: int, hidden: int, batch: int,
          seed: int) -> float:
    """‖∂L/∂h_0‖/‖∂L/∂h_T‖ (batch means of the per-example norms), in float64."""
    norms = gradient_flow.init_grad_norms(cells.get_cell(cell_name), init_opts, seq_len, hidden,
                                          batch, seed, dtype=jnp.float64)
    return float(norms[0] / norms[seq_len])


def measure(seeds: int, hidden: int, batch: int, seq_lens=SEQ_LENS) -> dict:
    """{str(T): {row label: [ratio per seed]}}."""
    return {str(T): {label: [ratio(c, opts, T, hidden, batch, s) for s in range(seeds)]
                     for label, c, opts in rows(T)}
            for T in seq_lens}


def _fmt(values) -> str:
    v = np.asarray(values, np.float64)
    if np.any(v == 0):
        return "0 (underflow)"
    geo = math.exp(np.mean(np.log(v)))
    return f"{geo:.1e} ({v.min():.0e}–{v.max():.0e})"


def format_table(results: dict) -> str:
    Ts = list(results)
    head = "| cell, init | " + " | ".join(f"T = {T}" for T in Ts) + " |"
    lines = [head, "|---" * (len(Ts) + 1) + "|"]
    for label in results[Ts[0]]:
        lines.append(f"| {label} | " + " | ".join(_fmt(results[T][label]) for T in Ts) + " |")
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ts = list(results)
    labels = list(results[Ts[0]])
    cell_of = {label: c for label, c, _ in rows(int(Ts[0]))}
    colours = {c: f"C{i}" for i, c in enumerate(CELL_LABELS)}
    fig, axes = plt.subplots(1, len(Ts), figsize=(6.5 * len(Ts), 5.5), sharey=False)
    for ax, T in zip(np.atleast_1d(axes), Ts):
        for i, label in enumerate(labels):
            v = np.log10(np.maximum(np.asarray(results[T][label], np.float64), 1e-320))
            ax.scatter(v, np.full(v.shape, i), s=14, color=colours[cell_of[label]], alpha=0.8)
            ax.plot([v.mean()], [i], "k|", markersize=12)
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("log10 ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at initialisation (dots: seeds, |: mean)")
        ax.set_title(f"adding problem, T = {T}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)
    start = time.perf_counter()
    results = measure(FLAGS.seeds, FLAGS.hidden, FLAGS.batch)
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "ratios.json"), "w") as f:
        json.dump({"hidden": FLAGS.hidden, "batch": FLAGS.batch, "ratios": results}, f, indent=1)
    table = format_table(results)
    with open(os.path.join(FLAGS.out, "table.md"), "w") as f:
        f.write(table + "\n")
    plot(results, os.path.join(FLAGS.out, "ratios.png"))
    print(table)
    print(f"\n({time.perf_counter() - start:.1f} s on {jax.default_backend()})")


def define_flags() -> None:
    """The command line's flags (defined here, not at import, so that the module can be
    imported beside other scripts that define flags of the same names)."""
    flags.DEFINE_integer("seeds", 5, "parameter seeds 0..seeds-1 (data seed is seed + 1)")
    flags.DEFINE_integer("hidden", 128, "hidden units H")
    flags.DEFINE_integer("batch", 32, "examples averaged over")
    flags.DEFINE_string("out", "docs/figures/init_presets", "output directory")


if __name__ == "__main__":
    define_flags()
    app.run(main)
