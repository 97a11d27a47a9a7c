"""IMDB sentiment: a review's words in, positive or negative out (many-to-one).

Text (see seqjax.data.imdb): tokenised (lower case, ``<br />`` removed, words with inner
apostrophes), a vocabulary of ``task.vocab_size`` ids built from the 25,000 training reviews
only (0 = padding, 1 = out of vocabulary), reviews cut to ``task.seq_len`` tokens
(``task.truncate``: "pre" keeps the last tokens as Keras's ``pad_sequences`` does, "post"
the first) and padded after the words; ``lengths`` holds each review's token count, so the
recurrent core stops at its last word (and, bidirectional, starts the backward pass there).

Training: the 25,000 training reviews, shuffled by grain. Evaluation: ``task.eval_size``
test reviews (25,000 = all), a fixed ``task.eval_seed`` permutation, in batches of
``task.eval_batch_size``. Metrics ``accuracy`` and ``ce``; baseline: the constant
prediction (50%). Each evaluation logs misclassified reviews of the first batch as text
(``text/misclassified_reviews``).
"""

from __future__ import annotations

import numpy as np

from seqjax.data import pipeline
from seqjax.tasks.base import InputSpec
from seqjax.tasks.realdata import ClassificationFromSplits, no_input_noise

SHOWN_REVIEWS, SHOWN_CHARS = 6, 700


class ImdbTask(ClassificationFromSplits):
    name = "imdb"
    num_classes = 2
    config_defaults = {"vocab_size": 5000, "truncate": "pre", "eval_batch_size": 500,
                       "eval_seed": 1234}

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        if t.truncate not in ("pre", "post"):
            raise ValueError(f"task.truncate={t.truncate!r} is not allowed; choose one of: pre, post")
        if not isinstance(t.vocab_size, int) or t.vocab_size < 3:
            raise ValueError(f"task.vocab_size must be an integer >= 3 (padding, out of "
                             f"vocabulary and one word), got {t.vocab_size!r}")
        no_input_noise(t, self.name)
        self._builder = self._vocab = self._eval = None

    @property
    def builder(self):
        if self._builder is None:
            from seqjax.data import imdb  # imports tensorflow_datasets (≈0.5 s): real runs only
            self._builder = pipeline.prepare(imdb.ImdbReviews, self.config.data)
        return self._builder

    @property
    def vocab(self):
        """The vocabulary of the training split (built once per task, ≈ 3 s)."""
        if self._vocab is None:
            from seqjax.data import imdb  # imports tensorflow_datasets: real runs only
            source = pipeline.split_source(self.builder, "train")
            texts = (r["text"] for start in range(0, len(source), 1000)
                     for r in pipeline.read_records(source, range(start, min(start + 1000,
                                                                             len(source)))))
            self._vocab = imdb.Vocabulary.build(texts, self.settings.vocab_size)
        return self._vocab

    def _loader(self, split: str):
        from seqjax.data import imdb  # imports tensorflow_datasets: real runs only
        source = pipeline.split_source(self.builder, split)
        vocab, t = self.vocab, self.settings

        def load_batch(indices):
            records = pipeline.read_records(source, indices)
            tokens, lengths = imdb.pad_batch([vocab.encode(r["text"]) for r in records],
                                             t.seq_len, t.truncate)
            return {"inputs": tokens, "lengths": lengths,
                    "targets": np.asarray([r["label"] for r in records], np.int32),
                    "index": np.asarray(indices, np.int32)}
        return source, load_batch

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="tokens", dim=self.settings.vocab_size, output_dim=2,
                         readout="last", seq_len=self.settings.seq_len)

    def examples(self, logits, batch):
        pred = np.argmax(logits, -1)
        p_pos = 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
        wrong = np.flatnonzero(pred != batch["targets"])
        source = pipeline.split_source(self.builder, "test")
        shown = pipeline.read_records(source, batch["index"][wrong[:SHOWN_REVIEWS]])
        names = ("negative", "positive")
        parts = [f"{len(wrong)} of {len(pred)} reviews misclassified in the first evaluation "
                 f"batch" + (f"; the first {len(shown)}:" if len(shown) else ".")]
        for i, rec in zip(wrong, shown):
            text = rec["text"].decode("utf-8") if isinstance(rec["text"], bytes) else rec["text"]
            text = text.replace("<br /><br />", " ").replace("<br />", " ")
            cut = text[:SHOWN_CHARS] + (" …" if len(text) > SHOWN_CHARS else "")
            parts.append(
                f"**test review #{int(batch['index'][i])}** ({int(rec['rating'])}/10 stars, "
                f"{int(batch['lengths'][i])} tokens read): label {names[batch['targets'][i]]}, "
                f"predicted {names[pred[i]]} (p(positive) = {p_pos[i]:.2f})\n\n> {cut}")
        return {"text/misclassified_reviews": "\n\n".join(parts)}
