"""What the real-data tasks (smnist, imdb, forecast) share: a classification loss, the
constant-predictor baseline, the noise-field check, matplotlib figures as RGB arrays, and
the data plumbing of a classification task over "train"/"test" splits."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax

from seqjax.data import pipeline
from seqjax.tasks.base import Task


def classification_loss(logits, targets):
    """(mean cross entropy, {"ce", "accuracy"}) for integer ``targets``."""
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
    acc = jnp.mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32))
    return ce, {"ce": ce, "accuracy": acc}


def constant_baseline(labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """The best constant predictor on these (evaluation) labels: always the most frequent
    class (``accuracy``), and the label frequencies as probabilities (``ce`` = their entropy)."""
    p = np.bincount(np.asarray(labels), minlength=num_classes) / len(labels)
    return {"accuracy": float(p.max()), "ce": float(-sum(q * math.log(q) for q in p if q > 0))}


def no_input_noise(settings, task_name: str) -> None:
    """Real data takes no input noise: ``settings.noise_std`` must be 0."""
    if settings.noise_std:
        raise ValueError(f"task.noise_std={settings.noise_std!r}: input noise is for the "
                         f"synthetic tasks; {task_name} reads real data (set it to 0.0)")


def figure_rgb(fig) -> np.ndarray:
    """A matplotlib figure as an (H, W, 3) uint8 array (then closes the figure)."""
    import matplotlib.pyplot as plt  # heavy (≈0.7 s): only the figures need it
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (≈0.7 s)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


class ClassificationFromSplits(Task):
    """A classification task over a prepared TFDS dataset with "train" and "test" splits.

    Subclasses define ``_loader(split) -> (source, load_batch)`` and ``num_classes``; this
    class gives the grain training iterator, the fixed evaluation subset, the loss and the
    constant-predictor baseline.
    """

    num_classes: int = 0

    def train_iterator(self, seed: int):
        source, load_batch = self._loader("train")
        return pipeline.GrainIterator(len(source), pipeline.per_host_batch(
            self.config.train.batch_size), seed, load_batch)

    def eval_batches(self):
        if self._eval is None:
            t = self.settings
            source, load_batch = self._loader("test")
            idx = pipeline.eval_indices(len(source), t.eval_size, t.eval_seed)
            self._eval = pipeline.batched(idx, t.eval_batch_size, load_batch)
        return iter(self._eval)

    def loss(self, logits, batch):
        return classification_loss(logits, batch["targets"])

    def baseline(self):
        labels = np.concatenate([b["targets"] for b in self.eval_batches()])
        return constant_baseline(labels, self.num_classes)
