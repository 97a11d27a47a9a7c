r"""The character-level language-model study, from run directories only.

    python -m experiments.char_lm_study --root=runs/char_lm --out=docs/figures/char_lm

Reads the runs of configs/char_lm.py under ``--root`` (``lstm`` = ``:cpu``; ``no_dropout``, its
learning curve only; ``small``, ``gru``, ``rnn``, ``tbptt10``, ``tbptt50``, ``tbptt200``: the
comparison at 0.35 M parameters; any that is missing is left out) and writes:

* ``table.md``: per run its cell, width, parameters, window, steps, validation loss as the
  trainer measured it (32 pieces, each from a zero state) and over the validation text in ONE
  pass (the state carried over all 55,770 characters), bits/char and wall time;
* ``learning_curves.png``: validation nats/char against training steps: the 0.35 M comparison,
  and the 512-unit LSTM with and without dropout, with the 1.55 target;
* ``window_gradients.png``: ‖∂ℓ_T/∂h_t‖ of the last prediction of 300-character validation
  windows against the distance T − t (seqjax.lm.last_prediction_gradients), at initialisation
  and after training, with the truncation horizons 10, 50, 100 and 200 marked: truncated BPTT
  with windows of K characters keeps only what lies within K steps.
"""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
from absl import app, flags

from seqjax import checkpoint, lm, train
from seqjax.writer import read_metrics

_ROOT = flags.DEFINE_string("root", "runs/char_lm", "folder holding the char_lm runs")
_OUT = flags.DEFINE_string("out", "docs/figures/char_lm", "where the table and figures go")
_WINDOW = flags.DEFINE_integer("window", 300, "characters per window of the gradient figure")

RUNS = ("lstm", "small", "gru", "rnn", "tbptt10", "tbptt50", "tbptt200")
CURVE_ONLY = ("no_dropout",)  # drawn from its metrics even if it was stopped before the end
TARGET = 1.55


def curve(run_dir: str, key: str = "eval/nats_per_char"):
    rows = [r for r in read_metrics(run_dir) if key in r]
    return np.asarray([r["step"] for r in rows]), np.asarray([r[key] for r in rows])


def one_pass_loss(task, params) -> float:
    """Validation nats/char with the state carried over the whole text (one stream)."""
    ids = task.ids[task.settings.eval_split]
    logits, _ = jax.jit(lm.forward, static_argnums=0)(task.cell, params, ids[None, :-1])
    logp = jax.nn.log_softmax(logits[0], axis=-1)
    return float(-np.mean(np.take_along_axis(np.asarray(logp), ids[1:, None], axis=-1)))


def window_norms(task, params, window: int, count: int = 32) -> np.ndarray:
    """Mean ‖∂ℓ_T/∂h_t‖ over ``count`` evenly spaced validation windows, t = 0..T."""
    ids = task.ids[task.settings.eval_split]
    starts = np.linspace(0, len(ids) - window - 2, count).astype(int)
    tokens = np.stack([ids[s:s + window + 1] for s in starts])
    return np.asarray(jax.jit(lm.last_prediction_gradients, static_argnums=0)(
        task.cell, params, tokens))


def study_run(run_dir: str, window: int) -> dict:
    config, task, model, step, params = checkpoint.trained_model(run_dir)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with jax.numpy_dtype_promotion("standard"):
        init = train.init_params(model, config.seed, next(task.eval_batches()))
    return {
        "name": os.path.basename(run_dir), "cell": config.model.cell,
        "hidden": config.model.hidden, "tbptt": config.train.tbptt, "steps": step,
        "params": sum(int(np.size(x)) for x in jax.tree.leaves(params)),
        "nats": summary["final_eval"]["nats_per_char"], "one_pass": one_pass_loss(task, params),
        "wall_s": summary["wall_time_s"], "curve": curve(run_dir),
        "norms": window_norms(task, params, window), "norms_init": window_norms(task, init, window),
    }


def table(rows: list[dict]) -> str:
    lines = ["| run | cell | units | parameters | window | steps | validation nats/char (32 pieces)"
             " | one pass | bits/char (one pass) | wall time |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cell']} | {r['hidden']} | {r['params'] / 1e6:.2f} M | "
                     f"{r['tbptt']} | {r['steps']:,} | {r['nats']:.3f} | {r['one_pass']:.3f} | "
                     f"{r['one_pass'] / math.log(2):.3f} | {r['wall_s'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def draw_curves(rows: list[dict], extra: dict, path: str) -> None:
    """Left: the 0.35 M comparison; right: the 512-unit LSTM with and without dropout."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    big = {r["name"]: r["curve"] for r in rows if r["name"] == "lstm"} | extra
    for r in rows:
        if r["name"] != "lstm":
            steps, nats = r["curve"]
            ax1.plot(steps[1:], nats[1:], marker="o", ms=3,
                     label=f"{r['name']} ({r['cell']} {r['hidden']}, window {r['tbptt']})")
    labels = {"lstm": "dropout 0.25 (:cpu)", "no_dropout": "no dropout (:no_dropout)"}
    for name, (steps, nats) in big.items():
        ax2.plot(steps[1:], nats[1:], marker="o", ms=3, label=labels.get(name, name))
    for ax in (ax1, ax2):
        ax.axhline(TARGET, color="k", ls=":", lw=1, label=f"target {TARGET}")
        ax.legend(fontsize=7)
    ax1.set_xlabel("training step (3,200 characters each: streams × window)")
    ax2.set_xlabel("training step (32 streams × 100 characters)")
    ax1.set(ylabel="validation nats/char (32 pieces)",
            title="0.35 M parameters, 1,000 steps, no dropout")
    ax2.set(title="LSTM 512 (1.22 M parameters), 3,000 steps")
    fig.savefig(path, dpi=120)


def draw_gradients(rows: list[dict], path: str) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    for r in rows:
        lag = np.arange(len(r["norms"]))[::-1]  # T − t
        label = f"{r['name']} ({r['cell']} {r['hidden']}, window {r['tbptt']})"
        ax2.semilogy(lag, np.maximum(r["norms"], 1e-30), label=label)
        ax1.semilogy(lag, np.maximum(r["norms_init"], 1e-30), label=label)
    for ax, when in ((ax1, "at initialisation"), (ax2, "after training")):
        for k in (10, 50, 100, 200):
            ax.axvline(k, color="grey", ls=":", lw=1)
        ax.set(xlabel="distance T − t (characters back from the prediction)",
               title=f"‖∂ℓ_T/∂h_t‖ {when}" + (" (float32 underflow drawn at 1e-30)"
                                               if ax is ax1 else ""))
    ax1.set_ylabel("mean over 32 validation windows")
    ax2.legend(fontsize=7)
    fig.savefig(path, dpi=120)


def main(argv):
    del argv
    root, out = _ROOT.value, _OUT.value
    os.makedirs(out, exist_ok=True)
    rows = [study_run(os.path.join(root, n), _WINDOW.value) for n in RUNS
            if os.path.isfile(os.path.join(root, n, "summary.json"))]
    if not rows:
        raise SystemExit(f"no finished char_lm run under {root} (looked for {', '.join(RUNS)})")
    text = table(rows)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text)
    extra = {n: curve(os.path.join(root, n)) for n in CURVE_ONLY
             if os.path.isfile(os.path.join(root, n, "metrics.jsonl"))}
    draw_curves(rows, extra, os.path.join(out, "learning_curves.png"))
    with open(os.path.join(out, "window_gradients.json"), "w") as f:  # the figure's numbers
        json.dump({r["name"]: {"trained": r["norms"].tolist(), "init": r["norms_init"].tolist()}
                   for r in rows}, f)
    draw_gradients([r for r in rows if r["name"] != "lstm"],
                   os.path.join(out, "window_gradients.png"))
    print(f"figures in {out}")


if __name__ == "__main__":
    app.run(main)
