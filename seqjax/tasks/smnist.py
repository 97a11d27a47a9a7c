"""Sequential MNIST: a 28×28 digit read as a sequence, classified from the last state.

``task.input`` chooses how the image becomes a sequence (pixels scaled to [0, 1]):

* ``rows``: T = 28 steps, each one row of 28 pixels (D = 28);
* ``pixels``: T = 784 steps, one pixel each (D = 1), rows top to bottom, left to right
  (Le, Jaitly & Hinton 2015);
* ``permuted``: as ``pixels`` after one fixed permutation of the 784 positions, drawn from
  ``task.permutation_seed`` (numpy ``default_rng(seed).permutation(784)``), the same for
  training and test and independent of the training seed.

``task.seq_len`` must equal that T (28 or 784). Training: the 60,000 training digits,
shuffled by grain. Evaluation: ``task.eval_size`` test digits (10,000 = the whole test set),
a fixed ``task.eval_seed`` permutation of them, in batches of ``task.eval_batch_size``.
Metrics ``accuracy`` and ``ce``; baseline: the best constant prediction on the evaluation
digits. Each evaluation logs up to 16 misclassified digits of the first batch as an image
(``image/misclassified_digits``, shown un-permuted) and their list as text.
"""

from __future__ import annotations

import numpy as np

from seqjax.data import pipeline
from seqjax.tasks.base import InputSpec
from seqjax.tasks.realdata import ClassificationFromSplits, figure_rgb, no_input_noise, pyplot

INPUTS = {"rows": (28, 28), "pixels": (784, 1), "permuted": (784, 1)}  # name: (T, D)


class SequentialMnistTask(ClassificationFromSplits):
    name = "smnist"
    num_classes = 10
    config_defaults = {"input": "rows", "permutation_seed": 0, "eval_batch_size": 1000,
                       "eval_seed": 1234}

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        if t.input not in INPUTS:
            raise ValueError(f"task.input={t.input!r} is not allowed; choose one of: "
                             f"{', '.join(INPUTS)}")
        self.T, self.D = INPUTS[t.input]
        if t.seq_len != self.T:
            raise ValueError(f"task.seq_len={t.seq_len!r} does not match task.input={t.input!r}, "
                             f"which reads {self.T} steps of {self.D} pixels; set "
                             f"task.seq_len={self.T}")
        no_input_noise(t, self.name)
        self.permutation = (np.random.default_rng(t.permutation_seed).permutation(784)
                            if t.input == "permuted" else None)
        self._builder = None
        self._eval = None

    # ---- data

    @property
    def builder(self):
        if self._builder is None:
            from seqjax.data import mnist  # imports tensorflow_datasets (≈0.5 s): real runs only
            self._builder = pipeline.prepare(mnist.Mnist, self.config.data)
        return self._builder

    def images_to_inputs(self, images_Bx28x28: np.ndarray) -> np.ndarray:
        x = images_Bx28x28.astype(np.float32) / 255.0
        if self.settings.input == "rows":
            return x
        x = x.reshape(len(x), 784)
        if self.permutation is not None:
            x = x[:, self.permutation]
        return x[:, :, None]

    def inputs_to_images(self, inputs: np.ndarray) -> np.ndarray:
        """The inverse of ``images_to_inputs`` (for showing digits): (B, 28, 28) in [0, 1]."""
        x = np.asarray(inputs).reshape(len(inputs), 784)
        if self.permutation is not None:
            flat = np.empty_like(x)
            flat[:, self.permutation] = x
            x = flat
        return x.reshape(-1, 28, 28)

    def _loader(self, split: str):
        source = pipeline.split_source(self.builder, split)

        def load_batch(indices):
            records = pipeline.read_records(source, indices)
            images = np.stack([r["image"] for r in records])
            return {"inputs": self.images_to_inputs(images),
                    "targets": np.asarray([r["label"] for r in records], np.int32),
                    "index": np.asarray(indices, np.int32)}
        return source, load_batch

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="features", dim=self.D, output_dim=10, readout="last",
                         seq_len=self.T)

    def examples(self, logits, batch):
        pred = np.argmax(logits, -1)
        prob = np.exp(logits - logits.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        wrong = np.flatnonzero(pred != batch["targets"])
        lines = [f"{len(wrong)} of {len(pred)} digits misclassified in the first evaluation batch"
                 + (" (first 16 below):" if len(wrong) else ".")]
        lines += [f"- test digit #{int(batch['index'][i])}: label {int(batch['targets'][i])}, "
                  f"predicted {int(pred[i])} (p = {prob[i, pred[i]]:.2f})" for i in wrong[:16]]
        out = {"text/misclassified_digits": "\n".join(lines)}
        if len(wrong):
            out["image/misclassified_digits"] = self._digit_grid(
                self.inputs_to_images(batch["inputs"][wrong[:16]]),
                [f"{int(batch['targets'][i])} → {int(pred[i])} ({prob[i, pred[i]]:.2f})"
                 for i in wrong[:16]])
        return out

    @staticmethod
    def _digit_grid(images, titles) -> np.ndarray:
        plt = pyplot()
        cols = 4
        rows = -(-len(images) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.0 * rows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, img, title in zip(axes.ravel(), images, titles):
            ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
        fig.suptitle("misclassified: label → predicted (probability)", fontsize=10)
        fig.tight_layout()
        return figure_rgb(fig)
