"""Spoken digits (FSDD): a recording's log-mel frames in, the digit 0–9 out (many-to-one).

Data (see seqjax.data.fsdd): 3,000 recordings, six speakers, prepared once as 40-band
log-mel frames (25 ms windows every 10 ms; 15–229 frames per recording) into one TFDS
split; ``task.split`` picks the train and test records from it:

* ``official``: the dataset's own split, repetition index 0–4 as test (300 recordings),
  5–49 as training (2,700); every speaker is in both;
* ``speaker_holdout``: ``task.test_speaker``'s 500 recordings as test, the other five
  speakers' 2,500 as training (speaker-independent).

Normalisation: each of the 40 bands is standardised, ``(x − mean) / std``, with the mean
and standard deviation over every frame of the **training** recordings of the chosen split
(float64, computed once per task); the test recordings use the same numbers.

Batches: ``inputs`` (B, ceil(seq_len / frame_stack), 40 · frame_stack) float32, padded with
zeros after each recording's last frame to a fixed ``task.seq_len`` frames (one compiled
program for every batch; a recording longer than that keeps its first ``seq_len`` frames:
none of FSDD's with the configs' 230), and ``lengths``, the valid steps of each recording,
which the recurrent core masks (padding changes nothing). ``task.frame_stack`` = k > 1 joins
k consecutive frames into one step (zero-filled at the end), so the model reads k times
fewer, wider steps. ``targets`` the digit, ``index`` the record id in the prepared split.

Training: the split's training recordings, shuffled by grain. Evaluation: the first
``min(task.eval_size, test recordings)`` of a fixed ``task.eval_seed`` permutation of the
test recordings, in batches of ``task.eval_batch_size``. Metrics ``accuracy`` and ``ce``;
baseline: the best constant prediction (10% on the official split). Each evaluation logs
the confusion matrix of its first batch (the whole test set with the configs' batch of 500)
as an image and as text (``image/confusion_matrix``, ``text/confusions``).
"""

from __future__ import annotations

import numpy as np

from seqjax.data import pipeline
from seqjax.tasks.base import InputSpec
from seqjax.tasks.realdata import ClassificationFromSplits, figure_rgb, no_input_noise, pyplot

N_MELS = 40  # seqjax.data.fsdd.N_MELS (that module imports TFDS; this one stays light)


def stack_frames(feats_TxD: np.ndarray, k: int) -> np.ndarray:
    """(ceil(T / k), k·D): k consecutive frames side by side, zero-filled at the end."""
    T, D = feats_TxD.shape
    steps = -(-T // k)
    out = np.zeros((steps * k, D), feats_TxD.dtype)
    out[:T] = feats_TxD
    return out.reshape(steps, k * D)


def pad_utterances(feats: list[np.ndarray], seq_len: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (B, ceil(seq_len / k), k·D) float32, lengths (B,) int32): each utterance cut to
    its first ``seq_len`` frames, stacked by ``k`` and padded after its last step with zeros."""
    steps, D = -(-seq_len // k), feats[0].shape[1]
    inputs = np.zeros((len(feats), steps, k * D), np.float32)
    lengths = np.zeros(len(feats), np.int32)
    for b, f in enumerate(feats):
        s = stack_frames(f[:seq_len], k)
        inputs[b, :len(s)] = s
        lengths[b] = len(s)
    return inputs, lengths


def band_statistics(feats: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per band over every frame of ``feats`` (float64)."""
    frames = np.concatenate(feats).astype(np.float64)
    return frames.mean(0), frames.std(0)


class SpokenDigitsTask(ClassificationFromSplits):
    name = "spoken_digits"
    num_classes = 10
    config_defaults = {"split": "official", "test_speaker": "theo", "frame_stack": 1,
                       "eval_batch_size": 500, "eval_seed": 1234}

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        if t.split not in ("official", "speaker_holdout"):
            raise ValueError(f"task.split={t.split!r} is not allowed; choose one of: official, "
                             f"speaker_holdout")
        if not isinstance(t.frame_stack, int) or t.frame_stack < 1:
            raise ValueError(f"task.frame_stack must be a positive integer, got {t.frame_stack!r}")
        no_input_noise(t, self.name)
        self._builder = self._ids = self._eval = None

    @property
    def builder(self):
        if self._builder is None:
            from seqjax.data import fsdd  # imports tensorflow_datasets (≈0.5 s): real runs only
            self._builder = pipeline.prepare(fsdd.SpokenDigit, self.config.data)
        return self._builder

    @property
    def source(self):
        return pipeline.split_source(self.builder, "full")

    def split_ids(self) -> dict[str, np.ndarray]:
        """{"train", "test"}: record ids of the chosen split; also sets the band statistics
        (``self.mean``, ``self.std``) from the training records and ``self.files`` (the file
        name of each record). One read of every record."""
        if self._ids is None:
            from seqjax.data import fsdd
            t, source = self.settings, self.source
            records = pipeline.read_records(source, range(len(source)))
            speakers = [fsdd.SPEAKERS[r["speaker"]] for r in records]
            self.files = [r["file"].decode() for r in records]
            self._ids = fsdd.split_ids(speakers, [r["index"] for r in records], t.split,
                                       t.test_speaker)
            if not len(self._ids["train"]) or not len(self._ids["test"]):
                raise ValueError(f"task.split={t.split!r}: the prepared dataset has "
                                 f"{len(self._ids['train'])} training and "
                                 f"{len(self._ids['test'])} test recordings")
            self.mean, self.std = band_statistics(
                [records[i]["features"] for i in self._ids["train"]])
        return self._ids

    def _loader(self, split: str):
        ids, source, t = self.split_ids()[split], self.source, self.settings
        mean, std = self.mean, self.std

        def load_batch(indices):
            records = pipeline.read_records(source, ids[np.asarray(indices)])
            feats = [((r["features"] - mean) / std).astype(np.float32) for r in records]
            inputs, lengths = pad_utterances(feats, t.seq_len, t.frame_stack)
            return {"inputs": inputs, "lengths": lengths,
                    "targets": np.asarray([r["label"] for r in records], np.int32),
                    "index": ids[np.asarray(indices)].astype(np.int32)}
        return ids, load_batch  # the "source" train_iterator needs is only its length

    def recording_batch(self, name: str):
        """A batch of the one recording ``name`` (its file name), made as its split's are."""
        ids, record = self.split_ids(), self.files.index(name)
        split = "test" if record in ids["test"] else "train"
        return self._loader(split)[1](np.flatnonzero(ids[split] == record))

    def eval_batches(self):
        if self._eval is None:
            t = self.settings
            _, load_batch = self._loader("test")
            n = len(self.split_ids()["test"])
            idx = pipeline.eval_indices(n, min(t.eval_size, n), t.eval_seed)
            self._eval = pipeline.batched(idx, t.eval_batch_size, load_batch)
        return iter(self._eval)

    def input_spec(self) -> InputSpec:
        k = self.settings.frame_stack
        return InputSpec(kind="features", dim=N_MELS * k, output_dim=10, readout="last",
                         seq_len=-(-self.settings.seq_len // k))

    def examples(self, logits, batch):
        pred, labels = np.argmax(logits, -1), np.asarray(batch["targets"])
        cm = confusion_matrix(labels, pred, self.num_classes)
        where = f"{self.settings.split} split" + (
            f", test speaker {self.settings.test_speaker}"
            if self.settings.split == "speaker_holdout" else "")
        return {"image/confusion_matrix": confusion_figure(cm, where),
                "text/confusions": confusion_text(cm, where)}


def confusion_matrix(labels, pred, num_classes: int = 10) -> np.ndarray:
    """(num_classes, num_classes) counts: row = true digit, column = predicted digit."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(pred)), 1)
    return cm


def confusion_text(cm: np.ndarray, where: str) -> str:
    n, right = int(cm.sum()), int(np.trace(cm))
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm))
           if i != j and cm[i, j]]
    lines = [f"{right} of {n} recordings right ({100 * right / max(n, 1):.1f}%; {where})."]
    lines += [f"- {c} × {i} heard as {j}" for c, i, j in sorted(off, reverse=True)[:10]]
    return "\n".join(lines)


def confusion_figure(cm: np.ndarray, title: str) -> np.ndarray:
    """The confusion matrix as an (H, W, 3) uint8 image, counts written in the cells."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(cm)):
        for j in range(len(cm)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(cm)))
    ax.set_yticks(range(len(cm)))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("spoken digit")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}: {100 * acc:.1f}% of {cm.sum()}", fontsize=10)
    fig.tight_layout()
    return figure_rgb(fig)
