"""Figures drawn from run directories (never from a live model). matplotlib, Agg backend.

``experiments/figures.py`` is the command line over these functions; the trainer uses
``heatmap_rgb`` for the TensorBoard image of ‖∂L/∂h_t‖ over (step, t).
"""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from seqjax.logging import read_metrics  # noqa: E402

HIDDEN_NORMS = "grad/hidden_norms"


def load_run(workdir: str) -> dict:
    """config, metrics rows, summary (if finished) and a display label of one run directory."""
    cfg_path = os.path.join(workdir, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{workdir} is not a run directory: no config.json in it")
    with open(cfg_path) as f:
        config = json.load(f)
    summary_path = os.path.join(workdir, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
    m = config["model"]
    if m["kind"] == "feedforward":
        label = "feed-forward"
    elif m["cell"] == "lstm":
        label = f"LSTM (forget bias {m['forget_bias']:g})"
    elif m["cell"] == "rnn" and m["recurrent_init"] == "identity" and m["activation"] == "relu":
        label = "IRNN"
    elif m["cell"] == "rnn":
        label = f"{m['activation']} RNN"
    else:
        label = m["cell"].upper()
    return {"dir": workdir, "config": config, "rows": read_metrics(workdir), "summary": summary,
            "label": label}


def series(rows: list[dict], key: str):
    pts = [(r["step"], r[key]) for r in rows if key in r and not isinstance(r[key], str)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pts)
    return np.asarray(s), np.asarray(v, dtype=np.float64)


def diagnostics_matrix(rows: list[dict]):
    """(steps, matrix steps × (T+1)) of ‖∂L/∂h_t‖ from the rows that have them."""
    pts = [(r["step"], r[HIDDEN_NORMS]) for r in rows if HIDDEN_NORMS in r]
    if not pts:
        return np.zeros(0, int), np.zeros((0, 0))
    steps, mat = zip(*pts)
    return np.asarray(steps), np.asarray(mat, dtype=np.float64)


def _fig_to_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def _draw_heatmap(ax, steps, mat, title):
    logm = np.log10(np.maximum(mat, 1e-30))
    im = ax.imshow(logm, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                   extent=(-0.5, mat.shape[1] - 0.5, -0.5, len(steps) - 0.5))
    ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int)
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("timestep t")
    ax.set_ylabel("training step")
    ax.set_title(title, fontsize=10)
    return im


def heatmap_rgb(steps, mat, title: str = "log10 ‖∂L/∂h_t‖") -> np.ndarray:
    """An RGB image (H, W, 3) of the (step × t) heatmap, for TensorBoard."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=80)
    im = _draw_heatmap(ax, steps, mat, title)
    fig.colorbar(im, ax=ax, label="log10 ‖∂L/∂h_t‖")
    fig.tight_layout()
    return _fig_to_rgb(fig)


def _metric_for(run) -> tuple[str, str, float | None]:
    """(metrics key, axis label, baseline) of a run's headline eval metric."""
    baseline = (run["summary"] or {}).get("baseline", {})
    for name in ("mse", "accuracy", "ce", "recall_accuracy", "rmse", "loss"):
        if series(run["rows"], f"eval/{name}")[0].size:
            return f"eval/{name}", f"eval {name}", baseline.get(name)
    return "train/loss", "train loss", None


def learning_curves(runs, path: str, title: str | None = None) -> str:
    """Eval metric vs step, every run, with the trivial baseline(s) dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    drawn_baselines = set()
    ylabel = "eval"
    for run in runs:
        key, ylabel, base = _metric_for(run)
        s, v = series(run["rows"], key)
        ax.plot(s, v, marker="o", ms=2.5, lw=1.5, label=run["label"])
        if base is not None and base not in drawn_baselines:
            ax.axhline(base, ls="--", color="grey", lw=1)
            ax.text(ax.get_xlim()[0], base, f" baseline {base:.3g}", va="bottom", color="grey",
                    fontsize=8)
            drawn_baselines.add(base)
    if "mse" in ylabel or "ce" in ylabel:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} vs step", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def gradient_profiles(runs, path: str, title: str | None = None) -> str:
    """‖∂L/∂h_t‖ vs t on a log scale, at initialisation (dashed) and at the end (solid)."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, run in enumerate(runs):
        steps, mat = diagnostics_matrix(run["rows"])
        if not len(steps):
            continue
        color = f"C{i}"
        t = np.arange(mat.shape[1])
        ax.semilogy(t, np.maximum(mat[0], 1e-30), ls="--", color=color,
                    label=f"{run['label']}, step {steps[0]}")
        ax.semilogy(t, np.maximum(mat[-1], 1e-30), ls="-", color=color,
                    label=f"{run['label']}, step {steps[-1]}")
    ax.set_xlabel("timestep t (h_0 = initial state, h_T = last)")
    ax.set_ylabel("‖∂L/∂h_t‖ (mean over examples)")
    ax.set_title(title or "gradient reaching each timestep: init (dashed) vs end (solid)",
                 fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def heatmaps(runs, path: str) -> str:
    """One (training step × t) heatmap of log10 ‖∂L/∂h_t‖ per run, on a shared colour scale."""
    runs = [r for r in runs if len(diagnostics_matrix(r["rows"])[0])]
    fig, axes = plt.subplots(1, max(1, len(runs)), figsize=(4.8 * max(1, len(runs)), 3.6),
                             squeeze=False, layout="constrained")
    mats = [diagnostics_matrix(r["rows"]) for r in runs]
    finite = [np.log10(np.maximum(m, 1e-30)) for _, m in mats]
    vmin = min((f.min() for f in finite), default=0.0)
    vmax = max((f.max() for f in finite), default=1.0)
    im = None
    for i, (ax, run, (steps, mat)) in enumerate(zip(axes[0], runs, mats)):
        im = _draw_heatmap(ax, steps, mat, f"{run['label']}: log10 ‖∂L/∂h_t‖")
        im.set_clim(vmin, vmax)
        if i:
            ax.set_ylabel("")
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), label="log10 ‖∂L/∂h_t‖")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def all_figures(run_dirs, out_dir: str) -> list[str]:
    """Every figure for these runs into ``out_dir``; returns the paths written."""
    runs = [load_run(d) for d in run_dirs]
    os.makedirs(out_dir, exist_ok=True)
    paths = [learning_curves(runs, os.path.join(out_dir, "learning_curves.png"))]
    if any(len(diagnostics_matrix(r["rows"])[0]) for r in runs):
        paths.append(gradient_profiles(runs, os.path.join(out_dir, "gradient_vs_t.png")))
        paths.append(heatmaps(runs, os.path.join(out_dir, "gradient_heatmaps.png")))
    return paths
