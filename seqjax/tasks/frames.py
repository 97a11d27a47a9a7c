"""Frame-level labelling (many-to-many, synchronous): task ``mnist_frames``.

A video of T = ``task.seq_len`` frames, each 14 px high and W = 14 + speed·(T − 1) + 3 px wide:
one MNIST digit (downsampled to 14×14) slides ``task.speed`` pixels per frame, left to right or
right to left (random), from a random start offset of 0–2 px. A grey occluder of ``occluder_width`` columns
(value 0.5), centred on the canvas, is drawn over it. The label of **every** frame is the
digit's class, so a frame where the digit is wholly behind the occluder can only be labelled
from memory. A frame is *occluded* when none of the digit's ink (pixels > 0.1) is visible.

Inputs: (B, T, 14·W) float32 (each frame flattened); the model is the generic
``SequenceModel`` with ``readout="all"``. Loss: cross entropy averaged over all frames.
Metrics: ``accuracy_visible`` and ``accuracy_occluded`` (per-frame accuracy over the visible /
occluded frames of the batch) and ``accuracy``. Chance is 0.1.

Digits: MNIST train[:55000] for training, the MNIST test set for the fixed evaluation set
(``eval_seed``). Batch n of a run is a function of (seed, n): resumable.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from seqjax.batching import IndexedIterator
from seqjax.data import local
from seqjax.tasks.base import InputSpec, Task

SIDE = 14
INK = 0.1


def downsample(images_Nx28x28: np.ndarray) -> np.ndarray:
    """(N, 14, 14) float32 in [0, 1]: 2×2 mean pooling."""
    x = images_Nx28x28.astype(np.float32) / 255.0
    return x.reshape(-1, SIDE, 2, SIDE, 2).mean(axis=(2, 4))


def canvas_width(T: int, speed: int = 1) -> int:
    return SIDE + speed * (T - 1) + 3


def make_videos(rng: np.random.Generator, digits_Nx14x14, labels_N, batch: int, T: int,
                occluder_width: int, speed: int = 1):
    """(frames_BxTxHxW float32, labels_BxT int32, occluded_BxT bool)."""
    if not isinstance(speed, int) or speed < 1:
        raise ValueError(f"speed must be a positive integer (pixels per frame), got {speed!r}")
    W = canvas_width(T, speed)
    if not 0 <= occluder_width <= W:
        raise ValueError(f"occluder_width must lie in [0, {W}] for seq_len={T}, speed={speed}, "
                         f"got {occluder_width}")
    o0 = (W - occluder_width) // 2
    pick = rng.integers(0, len(digits_Nx14x14), size=batch)
    start = rng.integers(0, 3, size=batch)
    backwards = rng.integers(0, 2, size=batch).astype(bool)
    frames = np.zeros((batch, T, SIDE, W), np.float32)
    occluded = np.zeros((batch, T), bool)
    for b in range(batch):
        d = digits_Nx14x14[pick[b]]
        ink_cols = np.flatnonzero((d > INK).any(axis=0))
        for t in range(T):
            x = start[b] + speed * t
            if backwards[b]:
                x = W - SIDE - x
            frames[b, t, :, x:x + SIDE] = d
            cols = x + ink_cols
            occluded[b, t] = bool(np.all((cols >= o0) & (cols < o0 + occluder_width)))
    frames[:, :, :, o0:o0 + occluder_width] = 0.5
    labels = np.repeat(labels_N[pick].astype(np.int32)[:, None], T, axis=1)
    return frames, labels, occluded


class _NumpyIterator(IndexedIterator):
    """Batch n drawn from numpy's generator seeded with (seed, 1, n)."""

    def __init__(self, make, seed: int):
        self._make, self._seed = make, seed

    def batch(self, n: int):
        return self._make(np.random.default_rng([self._seed, 1, n]))


class FramesTask(Task):
    name = "mnist_frames"
    config_defaults = {"occluder_width": 40, "speed": 2, "eval_seed": 1234}

    def __init__(self, config):
        super().__init__(config)
        from seqjax.data.mnist_scenes import load_mnist  # imports tensorflow_datasets (≈0.5 s)
        raw = local.raw_dir_for(config, "mnist")
        train_x, train_y = load_mnist(raw, "train")
        test_x, test_y = load_mnist(raw, "test")
        self.train = (downsample(train_x[:55000]), train_y[:55000])
        self.test = (downsample(test_x), test_y)

    def input_spec(self) -> InputSpec:
        T = self.settings.seq_len
        return InputSpec(kind="features", dim=SIDE * canvas_width(T, self.settings.speed),
                         output_dim=10, readout="all", seq_len=T)

    def make_batch(self, rng, batch_size: int, digits=None):
        t = self.settings
        x, y = digits or self.train
        frames, labels, occluded = make_videos(rng, x, y, batch_size, t.seq_len, t.occluder_width,
                                               t.speed)
        return {"inputs": frames.reshape(batch_size, t.seq_len, -1), "targets": labels,
                "occluded": occluded.astype(np.float32)}

    def train_iterator(self, seed: int):
        return _NumpyIterator(lambda rng: self.make_batch(rng, self.config.train.batch_size), seed)

    def eval_batches(self):
        n, seed = self.settings.eval_size, self.settings.eval_seed
        for start in range(0, n, 512):
            rng = np.random.default_rng([seed, 2, start])
            yield self.make_batch(rng, min(512, n - start), self.test)

    def loss(self, logits, batch):
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]))
        hit = (jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32)
        occ = batch["occluded"]
        vis = 1.0 - occ
        acc_occ = jnp.sum(hit * occ) / jnp.maximum(jnp.sum(occ), 1.0)
        acc_vis = jnp.sum(hit * vis) / jnp.maximum(jnp.sum(vis), 1.0)
        return ce, {"ce": ce, "accuracy": jnp.mean(hit), "accuracy_visible": acc_vis,
                    "accuracy_occluded": acc_occ}

    def baseline(self):
        return {"accuracy": 0.1, "accuracy_visible": 0.1, "accuracy_occluded": 0.1}

    def examples(self, outputs, batch):
        """One video as a filmstrip (first 12 frames' worth, every other frame), labels above."""
        T = self.settings.seq_len
        W = canvas_width(T, self.settings.speed)
        frames = np.asarray(batch["inputs"][0]).reshape(T, SIDE, W)
        step = max(1, T // 12)
        strip = np.concatenate([np.pad(frames[t], ((1, 1), (1, 1)), constant_values=1.0)
                                for t in range(0, T, step)], axis=0)
        rgb = (np.repeat(strip[:, :, None], 3, axis=2) * 255).astype(np.uint8)
        pred = np.argmax(outputs[0], -1)
        occ = np.asarray(batch["occluded"][0]).astype(bool)
        txt = " ".join(f"{p}{'*' if o else ''}" for p, o in zip(pred, occ))
        return {"image/video": np.kron(rgb, np.ones((4, 4, 1), np.uint8)),
                "text/video_predictions": f"label {int(batch['targets'][0, 0])}; per-frame "
                                          f"predictions (* = occluded): {txt}"}
