r"""Figures and the results table of the spoken-digit runs (configs/spoken_digits.py), from the
run directories alone: each run's config.json, summary.json and newest checkpoint, evaluated
on the task's fixed test recordings (never retrains; the initial parameters are made again
from the run's seed exactly as the trainer made them, checked against its step-0 row).

    python -m experiments.spoken_digits_figures runs/spoken_digits [--out=docs/figures/spoken_digits]

``runs/spoken_digits`` holds the run directories ``lstm``, ``gru``, ``rnn`` (official split)
and ``holdout_lstm``, ``holdout_gru``, ``holdout_rnn`` (speaker_holdout); missing ones are
left out. Writes to ``--out``:

* ``confusion_lstm_official.png``: the LSTM's confusion matrix on the 300 official test
  recordings;
* ``grad_norms_utterance.png``: the log-mel frames of one test recording (``--utterance``,
  default the longest, 5_lucas_1.wav) and ‖∂L/∂h_t‖ at every step t of it, at
  initialisation and after training, for the LSTM and the tanh RNN (official split), also
  divided by its value at the last step;

and prints the markdown table of test accuracy (cells × splits) with training wall times.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", "docs/figures/spoken_digits", "folder for the PNG files")
_UTTERANCE = flags.DEFINE_string("utterance", "5_lucas_1.wav",
                                  "test recording of figure (b); default: the longest (113 frames)")

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "tanh RNN"}
SPLITS = {"official": "", "speaker_holdout": "holdout_"}


def load_run(run_dir: str):
    """(config, task, model, trained params) of a finished run."""
    from seqjax.checkpoint import trained_model
    config, task, model, _, params = trained_model(run_dir)
    return config, task, model, params


def initial_params(config, task, model):
    """The parameters the trainer started from (seqjax.train.init_params)."""
    import jax

    from seqjax.train import init_params
    with jax.numpy_dtype_promotion("standard"):
        return init_params(model, config.seed, next(task.eval_batches()))


def grad_norms(params, batch, task, model) -> np.ndarray:
    """Mean over ``batch`` of ‖∂ℓ/∂h_t‖, t = 0..T (the trainer's ``diagnostics_step``)."""
    import jax

    from seqjax.train import diagnostics_step
    B, T = batch["inputs"].shape[:2]
    norms, _ = jax.jit(lambda p, b: diagnostics_step(
        p, b, model=model, task=task, probe_shape=(B, T + 1, model.model_config.hidden)))(
        params, batch)
    return np.asarray(norms)


def check_against_log(run_dir: str, step: int, norms: np.ndarray) -> None:
    """``norms`` (first 64 evaluation recordings) must be the row the trainer logged at ``step``."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    logged = [r["grad/hidden_norms"] for r in rows if r["step"] == step and "grad/hidden_norms" in r]
    if not logged:
        raise ValueError(f"{run_dir}: no gradient norms logged at step {step}")
    np.testing.assert_allclose(norms, logged[-1], rtol=1e-3, atol=1e-9,
                               err_msg=f"{run_dir}: step {step} not reproduced")


def utterance_norms(run_dir: str, name: str):
    """(batch of the one test recording ``name``, its norms at t = 0..length at initialisation
    and after training, the digit predicted at each)."""
    import jax
    config, task, model, trained = load_run(run_dir)
    init = initial_params(config, task, model)
    first = jax.tree.map(lambda a: a[:64], next(task.eval_batches()))
    check_against_log(run_dir, 0, grad_norms(init, first, task, model))
    check_against_log(run_dir, config.train.num_steps, grad_norms(trained, first, task, model))
    batch = task.recording_batch(name)
    n = int(batch["lengths"][0])
    if task.files.index(name) not in task.split_ids()["test"]:
        raise ValueError(f"{name} is not a test recording of {run_dir}")
    preds = [int(np.argmax(model.apply({"params": p}, batch))) for p in (init, trained)]
    return (batch, grad_norms(init, batch, task, model)[:n + 1],
            grad_norms(trained, batch, task, model)[:n + 1], preds)


def confusion_png(run_dir: str, path: str) -> float:
    from seqjax.tasks.spoken_digits import confusion_figure, confusion_matrix
    _, task, model, params = load_run(run_dir)
    labels, preds = [], []
    for batch in task.eval_batches():
        preds.append(np.argmax(np.asarray(model.apply({"params": params}, batch)), -1))
        labels.append(batch["targets"])
    cm = confusion_matrix(np.concatenate(labels), np.concatenate(preds))
    _save_rgb(confusion_figure(cm, "LSTM, official split"), path)
    return float(np.trace(cm) / cm.sum())


def _save_rgb(rgb: np.ndarray, path: str) -> None:
    from seqjax.tasks.realdata import pyplot
    plt = pyplot()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    plt.imsave(path, rgb)


def draw_utterance(rows: dict, name: str, path: str) -> None:
    """Top: the recording's log-mel frames, input step j drawn under h_(j+1), the state it
    makes; middle: ‖∂L/∂h_t‖ per step (initialisation dashed); bottom: the same divided by
    its value at the last step, ‖∂L/∂h_T‖."""
    from seqjax.tasks.realdata import pyplot
    plt = pyplot()
    batch = next(iter(rows.values()))[0]
    n = int(batch["lengths"][0])
    k = batch["inputs"].shape[-1] // 40
    mel = batch["inputs"][0, :n].reshape(n * k, 40).T
    fig, (ax0, ax1, ax2) = plt.subplots(3, 1, figsize=(7.5, 8.4), sharex=True,
                                        gridspec_kw={"height_ratios": [1, 1.4, 1.4]})
    ax0.imshow(mel, origin="lower", aspect="auto", cmap="magma",
               extent=(0.5, n + 0.5, -0.5, 39.5))
    ax0.set_ylabel("mel band")
    ax0.set_title(f"test recording {name} (label {int(batch['targets'][0])}): log-mel, "
                  f"standardised", fontsize=10)
    t = np.arange(n + 1)
    for (label, (_, at_init, trained, preds)), color in zip(rows.items(), ("C0", "C3")):
        for ax, scale in ((ax1, 1.0), (ax2, None)):
            ax.semilogy(t, at_init / (scale or at_init[-1]), ls="--", color=color,
                        label=f"{label}, initialisation (predicts {preds[0]})")
            ax.semilogy(t, trained / (scale or trained[-1]), color=color,
                        label=f"{label}, trained (predicts {preds[1]})")
    ax1.set_ylabel("‖∂L/∂h_t‖")
    ax2.set_ylabel("‖∂L/∂h_t‖ / ‖∂L/∂h_T‖")
    ax2.set_xlabel(f"step t ({10 * k} ms: {k} frame{'s' if k > 1 else ''} per step); "
                   f"h_0 is the initial state, h_T the last")
    ax1.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(root: str) -> str:
    lines = ["| cell | official split (300 test recordings) | speaker_holdout (theo, 500) |",
             "|---|---|---|"]
    for cell, label in CELLS.items():
        cols = []
        for prefix in SPLITS.values():
            path = os.path.join(root, prefix + cell, "summary.json")
            if not os.path.isfile(path):
                cols.append("—")
                continue
            with open(path) as f:
                s = json.load(f)
            cols.append(f"**{100 * s['final_eval']['accuracy']:.1f}%** "
                        f"({s['wall_time_s'] / 60:.1f} min training)")
        lines.append(f"| {label} | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("give the folder that holds the spoken-digit run directories")
    logging.set_verbosity(logging.WARNING)  # orbax's restore messages
    root, out = argv[1], _OUT.value
    print(table(root))
    lstm = os.path.join(root, "lstm")
    if os.path.isdir(lstm):
        acc = confusion_png(lstm, os.path.join(out, "confusion_lstm_official.png"))
        print(f"LSTM official-split accuracy from the checkpoint: {100 * acc:.1f}%")
    rows = {CELLS[c]: utterance_norms(os.path.join(root, c), _UTTERANCE.value)
            for c in ("lstm", "rnn") if os.path.isdir(os.path.join(root, c))}
    if rows:
        draw_utterance(rows, _UTTERANCE.value, os.path.join(out, "grad_norms_utterance.png"))
        for label, (_, at_init, trained, preds) in rows.items():
            print(f"{label}: ‖∂L/∂h_0‖/‖∂L/∂h_T‖ at init {at_init[0] / at_init[-1]:.3g}, "
                  f"trained {trained[0] / trained[-1]:.3g}; predicts {preds[0]} → {preds[1]}")
    print(f"figures in {out}")


if __name__ == "__main__":
    app.run(main)
