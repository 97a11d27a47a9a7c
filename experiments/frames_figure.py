"""Per-frame accuracy vs frame index for the frame-labelling runs (configs/frames.py), from the run
directories alone: each run's config.json and its newest checkpoint, evaluated on the task's
fixed evaluation videos (never retrains).

    python -m experiments.frames_figure runs/frames            # a sweep dir (cell=rnn, cell=lstm)

Writes ``<dir>/figures/accuracy_by_frame.png``: accuracy at every frame t for each run, with
the share of videos whose digit is fully hidden at t shaded, and prints the per-frame numbers.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app


def frame_accuracy(run_dir: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(cell name, accuracy per frame (T,), fraction of occluded videos per frame (T,))."""
    import jax

    from seqjax.checkpoint import trained_model

    config, task, model, _, params = trained_model(run_dir)
    apply = jax.jit(lambda p, x: model.apply({"params": p}, {"inputs": x}))
    hits, occluded = [], []
    for batch in task.eval_batches():
        logits = np.asarray(apply(params, batch["inputs"]))
        hits.append(logits.argmax(-1) == batch["targets"])
        occluded.append(batch["occluded"])
    return config.model.cell, np.concatenate(hits).mean(0), np.concatenate(occluded).mean(0)


def draw(rows, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    occ = rows[0][2]
    t = np.arange(len(occ))
    ax.bar(t, occ, color="0.85", width=1.0, label="share of videos with the digit hidden")
    for cell, acc, _ in rows:
        ax.plot(t, acc, marker="o", ms=3, label=f"{cell}: accuracy at frame t")
    ax.axhline(0.1, color="k", ls=":", lw=1, label="chance")
    ax.set_xlabel("frame t")
    ax.set_ylim(0, 1)
    ax.set_title("MNIST digit behind an occluder: per-frame accuracy (1024 test videos)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("give one run directory (a frames sweep, or one run)")
    from seqjax.rundir import run_dirs
    rows = [frame_accuracy(d) for d in run_dirs(argv[1])]
    for cell, acc, occ in rows:
        print(f"{cell:5s} acc by frame: " + " ".join(f"{a:.2f}" for a in acc))
    print("hidden share:   " + " ".join(f"{o:.2f}" for o in rows[0][2]))
    path = os.path.join(argv[1], "figures", "accuracy_by_frame.png")
    draw(rows, path)
    print(path)


if __name__ == "__main__":
    app.run(main)
