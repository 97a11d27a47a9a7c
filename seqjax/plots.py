"""Figures drawn from run directories (never from a live model), with matplotlib.

``experiments/figures.py`` and ``experiments/report.py`` are the command lines over these
functions. Importing this module leaves matplotlib's backend alone.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
from matplotlib.figure import Figure

from seqjax.rundir import (CHECKPOINTS_DIR, CONFIG_FILE, DIVERGED_FILE, HIDDEN_NORMS, LOCK_FILE,
                           METRICS_FILE, SWEEP_FILE)
from seqjax.tasks import SUCCESS  # what counts as solved, defined by each task
from seqjax.writer import log10_norms, read_metrics


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, dpi=None, layout=None, **kwargs):
    """A figure and its axes through matplotlib's object API: no pyplot state, no backend
    switch (inline figures in a notebook keep working after ``import seqjax.plots``)."""
    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)


class NotARunDir(FileNotFoundError):
    """A directory given as a run that is none (yet): the message says which and why."""


def run_dir_problem(workdir: str) -> str | None:
    """Why ``workdir`` cannot be read as a run or a sweep, or None when it can."""
    if any(os.path.isfile(os.path.join(workdir, f)) for f in (CONFIG_FILE, SWEEP_FILE)):
        return None
    sweep_dir = os.path.dirname(os.path.normpath(workdir))
    if os.path.isfile(os.path.join(sweep_dir, SWEEP_FILE)):
        return (f"{workdir} has no config.json yet: this member of the sweep in {sweep_dir} has "
                f"not started, or has just started; try again once it has")
    if not os.path.isdir(workdir):
        return (f"{workdir} is not a run directory: it does not exist (a run directory holds "
                f"config.json, a sweep's sweep.json)")
    started = [n for n in (CHECKPOINTS_DIR, LOCK_FILE, METRICS_FILE)
               if os.path.exists(os.path.join(workdir, n))]
    if started or glob.glob(os.path.join(glob.escape(workdir), "events.out.tfevents.*")):
        return (f"{workdir} has no config.json yet: its run has just started, and writes it once "
                f"its data and model are ready, before the first compile; try again shortly")
    return (f"{workdir} is not a run directory: no config.json (a run's) or sweep.json "
            f"(a sweep's) in it")


def _gate_init_label(m: dict) -> str:
    """How a run's LSTM starts, from its config.json: "forget bias 1", "chrono, T_max 100",
    "torch init", "keras init, chrono, T_max 50" (older runs have no init_preset)."""
    preset, fb = m.get("init_preset", "seqjax"), m["forget_bias"]
    parts = [] if preset == "seqjax" else [f"{preset} init"]
    if fb == "chrono":
        parts.append(f"chrono, T_max {m.get('chrono_tmax', 100):g}")
    elif not parts:
        parts.append(f"forget bias {fb:g}")
    return ", ".join(parts)


def load_run(workdir: str) -> dict:
    """config, metrics rows, summary (if finished) and a display label of one run directory."""
    cfg_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(cfg_path):
        raise NotARunDir(run_dir_problem(workdir) or f"{workdir}: no config.json in it")
    with open(cfg_path) as f:
        config = json.load(f)
    summary_path = os.path.join(workdir, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
    diverged_path = os.path.join(workdir, DIVERGED_FILE)
    diverged = json.load(open(diverged_path)) if os.path.exists(diverged_path) else None
    m = config["model"]
    if m["kind"] == "feedforward":
        label = "feed-forward"
    elif m["kind"] == "bow":
        label = "bag of words"
    elif m["kind"] == "lru_stack":
        label = f"LRU stack ({m['layers']} blocks)"
    elif m["cell"] == "lstm":
        label = f"LSTM ({_gate_init_label(m)})"
    elif m["cell"] == "rnn" and m["recurrent_init"] == "identity" and m["activation"] == "relu":
        label = "IRNN"
    elif m["cell"] == "rnn":
        label = f"{m['activation']} RNN"
    else:
        label = m["cell"].upper()
    # a sweep member is named by its condition (arm and swept values), not only by its cell
    sweep_path = os.path.join(os.path.dirname(os.path.normpath(workdir)), "sweep.json")
    if os.path.exists(sweep_path):
        with open(sweep_path) as f:
            fields = json.load(f).get("member_fields", {}).get(
                os.path.basename(os.path.normpath(workdir)))
        if fields and fields.get("arm"):
            label = _condition(fields, drop=())
        elif fields and set(fields) - {"model.cell", "arm"}:  # cell names it, the rest tells apart
            label += ", " + _condition(fields, drop=("model.cell",))
    return {"dir": workdir, "config": config, "rows": read_metrics(workdir), "summary": summary,
            "label": label, "diverged": diverged}


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


def _draw_heatmap(ax, steps, mat, title):
    logm = log10_norms(mat)
    im = ax.imshow(logm, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                   extent=(-0.5, mat.shape[1] - 0.5, -0.5, len(steps) - 0.5))
    ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int)
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks])
    ax.set_xlabel("timestep t")
    ax.set_ylabel("training step")
    ax.set_title(title, fontsize=10)
    return im


def _metric_for(run) -> tuple[str, str, float | None]:
    """(metrics key, axis label, baseline) of a run's headline eval metric."""
    baseline = (run["summary"] or {}).get("baseline", {})
    for name in ("mse", "accuracy", "ce", "recall_accuracy", "rmse", "loss"):
        if series(run["rows"], f"eval/{name}")[0].size:
            return f"eval/{name}", f"eval {name}", baseline.get(name)
    return "train/loss", "train loss", None


def learning_curves(runs, path: str, title: str | None = None) -> str:
    """Eval metric vs step, every run, with the trivial baseline(s) dashed."""
    fig, ax = _subplots(figsize=(6.4, 4))
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
    return path


def gradient_profiles(runs, path: str, title: str | None = None) -> str:
    """‖∂L/∂h_t‖ vs t on a log scale, at initialisation (dashed) and at the end (solid)."""
    fig, ax = _subplots(figsize=(6.4, 4))
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
    return path


def gradient_panels(runs, path: str, title: str | None = None, ncols: int = 4) -> str:
    """Side by side, one panel per run on a shared log axis: ‖∂L/∂h_t‖ vs t at init (dashed)
    and at the end of training (solid). Many cells stay readable, unlike one crowded axis."""
    runs = [r for r in runs if len(diagnostics_matrix(r["rows"])[0])]
    n = max(1, len(runs))
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, run in zip(axes.flat, runs):
        steps, mat = diagnostics_matrix(run["rows"])
        t = np.arange(mat.shape[1])
        ax.semilogy(t, np.maximum(mat[0], 1e-30), ls="--", color="C0", label=f"step {steps[0]}")
        if len(steps) > 1:
            ax.semilogy(t, np.maximum(mat[-1], 1e-30), ls="-", color="C3",
                        label=f"step {steps[-1]}")
        ax.set_title(run["label"], fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("timestep t")
    for ax in axes[:, 0]:
        ax.set_ylabel("‖∂L/∂h_t‖")
    fig.suptitle(title or "gradient reaching each timestep: init (dashed) vs end (solid)",
                 fontsize=10)
    fig.savefig(path, dpi=110)
    return path


def heatmaps(runs, path: str) -> str:
    """One (training step × t) heatmap of log10 ‖∂L/∂h_t‖ per run, on a shared colour scale."""
    runs = [r for r in runs if len(diagnostics_matrix(r["rows"])[0])]
    fig, axes = _subplots(1, max(1, len(runs)), figsize=(4.8 * max(1, len(runs)), 3.6),
                             squeeze=False, layout="constrained")
    mats = [diagnostics_matrix(r["rows"]) for r in runs]
    finite = [f[np.isfinite(f)] for f in (log10_norms(m) for _, m in mats)]
    vmin = min((f.min() for f in finite if f.size), default=0.0)
    vmax = max((f.max() for f in finite if f.size), default=1.0)
    im = None
    for i, (ax, run, (steps, mat)) in enumerate(zip(axes[0], runs, mats)):
        im = _draw_heatmap(ax, steps, mat, f"{run['label']}: log10 ‖∂L/∂h_t‖")
        im.set_clim(vmin, vmax)
        if i:
            ax.set_ylabel("")
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), label="log10 ‖∂L/∂h_t‖")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def unique_labels(runs: list[dict]) -> list[dict]:
    """The runs, those whose labels collide relabelled with their directory, e.g.
    "LSTM (forget bias 1) [runs/a]", so that no two curves share a legend entry."""
    counts: dict = {}
    for run in runs:
        counts[run["label"]] = counts.get(run["label"], 0) + 1
    return [dict(r, label=f"{r['label']} [{os.path.normpath(r['dir'])}]")
            if counts[r["label"]] > 1 else r for r in runs]


def headline_metric(run: dict) -> str:
    """The axis label of a run's headline metric, e.g. "eval mse": runs compared on one axis
    must share it."""
    return _metric_for(run)[1]


def all_figures(run_dirs, out_dir: str) -> list[str]:
    """Every figure for these runs into ``out_dir``; returns the paths written."""
    runs = unique_labels([load_run(d) for d in run_dirs])
    os.makedirs(out_dir, exist_ok=True)
    paths = [learning_curves(runs, os.path.join(out_dir, "learning_curves.png"))]
    if any(len(diagnostics_matrix(r["rows"])[0]) for r in runs):
        paths.append(gradient_profiles(runs, os.path.join(out_dir, "gradient_vs_t.png")))
        paths.append(heatmaps(runs, os.path.join(out_dir, "gradient_heatmaps.png")))
    return paths


# --------------------------------------------------------------------------- sweeps

def success(summary: dict) -> tuple[str, bool] | None:
    """(criterion text, met?) for a finished run's final eval, e.g. ("eval mse < 0.05", True)."""
    ev = (summary or {}).get("final_eval", {})
    for metric, (op, bound) in SUCCESS.items():
        if metric in ev:
            met = ev[metric] < bound if op == "<" else ev[metric] >= bound
            return f"eval {metric} {op} {bound:g}", bool(met)
    return None


def load_sweep(workdir: str) -> dict | None:
    """sweep.json with each member's run loaded (``runs``: name -> load_run)."""
    path = os.path.join(workdir, "sweep.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        sweep = json.load(f)
    sweep["runs"] = {m: load_run(os.path.join(workdir, m)) for m in sweep["members"]
                     if os.path.exists(os.path.join(workdir, m, "config.json"))}
    return sweep


def _condition(fields: dict, drop=("seed", "task.seq_len")) -> str:
    """A display label for a member's condition: its arm and swept values except ``drop``."""
    parts = [fields["arm"]] if fields.get("arm") else []
    parts += [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in fields.items()
              if k != "arm" and k not in drop]
    return ", ".join(parts) or "all"


def sweep_table(sweep: dict) -> dict:
    """{condition: {T: {"ratios": [...], "success": [...], "final": [...]}}} over seeds."""
    table: dict = {}
    for name, run in sweep["runs"].items():
        fields = sweep["member_fields"][name]
        T = fields.get("task.seq_len", run["config"]["task"]["seq_len"])
        cell = table.setdefault(_condition(fields), {}).setdefault(
            T, {"ratios": [], "success": [], "final": [], "criterion": None, "diverged": 0})
        init = [r for r in run["rows"] if r["step"] == 0 and "grad/h0_over_hT" in r]
        if init:
            cell["ratios"].append(init[0]["grad/h0_over_hT"])
        ok = success(run["summary"]) if run["summary"] and run["summary"]["steps"] else None
        if run.get("diverged") and run["diverged"].get("diverged_at") is not None:
            cell["diverged"] += 1  # NaN/Inf: a failure, whatever its last eval said
            cell["success"].append(False)
            continue
        if ok:
            cell["criterion"] = ok[0]
            cell["success"].append(ok[1])
        if run["summary"]:
            key, label, base = _metric_for(run)
            cell["final"].append(run["summary"]["final_eval"].get(key.split("/", 1)[1]))
            cell["metric"], cell["baseline"] = label, base
    return table


# The smallest positive float32 (subnormal). A ratio below it was computed as exactly 0: the
# cotangent underflowed on its way back through the scan, so the true value is only known to be
# smaller than this. It is drawn on this floor with a down-pointing marker, never as 1e-300.
F32_FLOOR = float(np.nextafter(np.float32(0), np.float32(1)))


def gmean_ratio(r) -> tuple[float, bool]:
    """Geometric mean over seeds of positive ratios, and whether any seed underflowed to 0.

    With an underflowed seed the mean is only an upper bound; it is taken with that seed at the
    float32 floor.
    """
    r = np.asarray(r, np.float64)
    under = bool(np.any(r <= 0))
    return float(np.exp(np.mean(np.log(np.maximum(r, F32_FLOOR))))), under


def _band(ax, x, ys, label, color, log=True):
    ys = [np.asarray(y, np.float64) for y in ys]
    if log:
        stats = [gmean_ratio(y) for y in ys]
        mid = [m for m, _ in stats]
        ys = [np.maximum(y, F32_FLOOR) for y in ys]
    else:
        stats, mid = [(np.mean(y), False) for y in ys], [np.mean(y) for y in ys]
    lo, hi = [y.min() for y in ys], [y.max() for y in ys]
    ax.plot(x, mid, marker="o", ms=3, color=color, label=label)
    under = [i for i, (_, u) in enumerate(stats) if u]
    if under:
        ax.plot([x[i] for i in under], [mid[i] for i in under], ls="none", marker="v", ms=7,
                color=color, markerfacecolor="none")
    ax.fill_between(x, lo, hi, color=color, alpha=0.15)


def ratio_vs_T(table: dict, path: str) -> str:
    """‖∂L/∂h_0‖/‖∂L/∂h_T‖ at init vs T per condition: geometric mean, min–max band over seeds."""
    fig, ax = _subplots(figsize=(7.2, 4.6))
    for i, (cond, by_T) in enumerate(table.items()):
        Ts = sorted(T for T in by_T if by_T[T]["ratios"])
        if Ts:
            _band(ax, Ts, [by_T[T]["ratios"] for T in Ts], cond, f"C{i % 10}",)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(F32_FLOOR, color="black", lw=0.8, ls=":")
    ax.text(0.01, F32_FLOOR, "  float32 underflow: ▽ = some seeds' gradient at t=0 is exactly 0",
            transform=ax.get_yaxis_transform(), fontsize=7, va="bottom")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("‖∂L/∂h_0‖ / ‖∂L/∂h_T‖ at init")
    n_seeds = max((len(c["ratios"]) for by_T in table.values() for c in by_T.values()), default=0)
    ax.set_title(f"gradient reaching t=0 at initialisation (geometric mean, band: min–max of "
                 f"{n_seeds} seeds)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def final_by_condition(table: dict, path: str) -> str:
    """The final eval metric of every condition (x) at every T (colour), the trivial baseline
    dashed; a run that diverged is an × at the top. Readable with many conditions and few
    seeds, where success-rate lines would lie on top of each other."""
    conds = list(table)
    Ts = sorted({T for by_T in table.values() for T in by_T})
    metric = next((c["metric"] for by_T in table.values() for c in by_T.values()
                   if c.get("metric")), "final eval")
    base = next((c["baseline"] for by_T in table.values() for c in by_T.values()
                 if c.get("baseline") is not None), None)
    log = "mse" in metric or "ce" in metric
    fig, ax = _subplots(figsize=(max(6.4, 0.8 * len(conds) + 1.5), 4))
    finals = [v for by_T in table.values() for c in by_T.values() for v in c["final"]
              if v is not None]
    top = max(finals + ([base] if base is not None else []), default=1.0)
    for j, T in enumerate(Ts):
        dx = (j - (len(Ts) - 1) / 2) * 0.18
        for i, cond in enumerate(conds):
            c = table[cond].get(T)
            if not c:
                continue
            vals = [v for v in c["final"] if v is not None]
            ax.plot([i + dx] * len(vals), vals, ls="none", marker="o", color=f"C{j}",
                    label=f"T={T}" if i == 0 else None)
            if c.get("diverged"):
                ax.plot([i + dx], [top * (2 if log else 1.05)], ls="none", marker="x", ms=8,
                        color=f"C{j}")
    if base is not None:
        ax.axhline(base, ls="--", color="grey", lw=1)
        ax.text(len(conds) - 0.5, base, f"baseline {base:.3g}", ha="right", va="bottom",
                fontsize=8, color="grey")
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(len(conds)), conds, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} at the end of training (× = stopped on NaN/Inf)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def success_vs_T(table: dict, path: str) -> str:
    """Fraction of seeds that solve the task vs T, per condition (Pascanu et al. 2013 style)."""
    fig, ax = _subplots(figsize=(6.4, 4))
    criterion = None
    for i, (cond, by_T) in enumerate(table.items()):
        Ts = sorted(T for T in by_T if by_T[T]["success"])
        if not Ts:
            continue
        criterion = by_T[Ts[0]]["criterion"]
        rates = [np.mean(by_T[T]["success"]) for T in Ts]
        ax.plot(Ts, rates, marker="o", color=f"C{i % 10}",
                label=f"{cond} ({len(by_T[Ts[0]]['success'])} seeds)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("success rate")
    ax.set_title(f"success rate vs T (success: {criterion})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def seed_bands(sweep: dict, path: str) -> str:
    """Eval metric vs step per condition, mean and min–max across seeds; one panel per T."""
    by_T: dict = {}
    for name, run in sweep["runs"].items():
        fields = sweep["member_fields"][name]
        T = fields.get("task.seq_len", run["config"]["task"]["seq_len"])
        by_T.setdefault(T, {}).setdefault(_condition(fields), []).append(run)
    Ts = sorted(by_T)
    fig, axes = _subplots(1, len(Ts), figsize=(4.6 * len(Ts), 3.8), squeeze=False,
                             layout="constrained")
    for ax, T in zip(axes[0], Ts):
        for i, (cond, runs) in enumerate(by_T[T].items()):
            key, ylabel, base = _metric_for(runs[0])
            curves = [series(r["rows"], key) for r in runs]
            n = min(len(s) for s, _ in curves)
            if n == 0:
                continue
            steps = curves[0][0][:n]
            vals = np.stack([v[:n] for _, v in curves])
            color = f"C{i % 10}"
            ax.plot(steps, vals.mean(0), color=color, label=f"{cond} ({len(runs)} seeds)")
            ax.fill_between(steps, vals.min(0), vals.max(0), color=color, alpha=0.15)
            if base is not None:
                ax.axhline(base, ls="--", color="grey", lw=1)
            ax.set_ylabel(ylabel)
            if "mse" in ylabel or "ce" in ylabel:
                ax.set_yscale("log")
        ax.set_title(f"T = {T}", fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    return path


def _first_seed_per_condition(sweep: dict, T) -> list[dict]:
    """One run per condition at sequence length T (the lowest seed), labelled by condition."""
    chosen: dict = {}
    for name, run in sweep["runs"].items():
        fields = sweep["member_fields"][name]
        if fields.get("task.seq_len", run["config"]["task"]["seq_len"]) != T:
            continue
        cond, seed = _condition(fields), fields.get("seed", run["config"]["seed"])
        if cond not in chosen or seed < chosen[cond][0]:
            chosen[cond] = (seed, dict(run, label=cond))
    return [run for _, run in chosen.values()]


def sweep_figures(workdir: str, out_dir: str) -> list[str]:
    """Figures of a sweep: seed bands, and the vs-T figures when T was swept."""
    sweep = load_sweep(workdir)
    os.makedirs(out_dir, exist_ok=True)
    table = sweep_table(sweep)
    paths = []
    trained = any((r["summary"] and r["summary"]["steps"]) or  # a member that stopped on NaN
                  any(row["step"] > 0 for row in r["rows"])      # has no summary, only rows
                  for r in sweep["runs"].values())
    if trained:
        paths.append(seed_bands(sweep, os.path.join(out_dir, "learning_curves_seeds.png")))
    Ts = {T for by_T in table.values() for T in by_T}
    if len(table) > 2 and trained:  # several conditions (cells): their final metric side by side
        paths.append(final_by_condition(table, os.path.join(out_dir, "final_by_condition.png")))
    if len(table) > 2:  # several conditions (cells): side by side, first seed of each, per T
        for T in sorted(Ts):
            runs = _first_seed_per_condition(sweep, T)
            if trained and any(len(diagnostics_matrix(r["rows"])[0]) for r in runs):
                paths.append(gradient_panels(
                    runs, os.path.join(out_dir, f"gradient_panels_T{T}.png"),
                    title=f"T={T}: ‖∂L/∂h_t‖ at init (dashed) and after training (solid)"))
    if len(Ts) > 1:
        if any(c["ratios"] for by_T in table.values() for c in by_T.values()):
            paths.append(ratio_vs_T(table, os.path.join(out_dir, "init_ratio_vs_T.png")))
        if any(c["success"] for by_T in table.values() for c in by_T.values()):
            paths.append(success_vs_T(table, os.path.join(out_dir, "success_vs_T.png")))
    return paths
