"""Character-level language modelling with stateful truncated backpropagation through time.

Corpora (``task.corpus``):

* ``"tiny_shakespeare"``: seqjax.data.tiny_shakespeare, TFDS's character-position splits
  (train 1,003,854 characters, validation 55,770, test 55,770);
* ``"por_eng"``: the Portuguese side of the Tatoeba pairs (seqjax.data.por_eng, its seeded
  split), one sentence per line: the corpus of the long-range cloze probes.

The vocabulary is the training text's characters (seqjax.data.tiny_shakespeare.CharVocabulary).

Truncated BPTT (``train.tbptt`` = K characters): the training text is laid out as B =
``train.batch_size`` parallel streams, stream b being the b-th of B equal consecutive pieces.
Step n trains on window w = n mod W of every stream (inputs ``[wK, (w+1)K)``, targets shifted
by one character), starting from the carry the previous step ended with; the carry enters the
step as data, so gradients stop at the window boundary. Window 0 of every epoch (W windows)
starts from zeros (``batch["reset"]``). The carry lives in the train state, so a checkpoint
holds it and a resumed run continues bit for bit.

Evaluation reads ``task.eval_split`` as ``task.eval_streams`` consecutive pieces, each in one
pass from a zero carry (the carry is kept across the whole piece). Metrics: ``nats_per_char``
(the cross entropy, also the loss; success: < 1.55), ``bits_per_char`` and
``next_char_accuracy`` (not ``accuracy``: success would judge it as a classifier's); the
baseline is the training text's character frequencies (a unigram model). Every evaluation
draws ``task.sample_length`` characters after each of ``task.prompts`` (seqjax.lm.sample), each
prompt read after the first ``task.sample_context`` characters of the evaluation text (cut at a
paragraph break; 0: from a zero state):
TensorBoard text ``text/samples`` and ``<workdir>/figures/samples.md``.
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax import cells, lm, models
from seqjax.batching import IndexedIterator
from seqjax.tasks.base import Task

CORPORA = ("tiny_shakespeare", "por_eng")


class StreamIterator(IndexedIterator):
    """Batch n of truncated BPTT over ``ids``: window n mod W of ``streams`` parallel streams
    (this host's slice of them), with ``reset`` True on window 0 of each epoch."""

    def __init__(self, ids: np.ndarray, streams: int, window: int, host: int = 0, hosts: int = 1):
        length = (len(ids) - 1) // streams
        self.windows = length // window
        if self.windows < 1:
            raise ValueError(
                f"train.tbptt={window} is longer than each of the {streams} streams "
                f"({length} characters of a {len(ids):,}-character text); lower "
                f"train.tbptt or train.batch_size")
        per_host = streams // hosts
        rows = np.arange(host * per_host, (host + 1) * per_host)
        self.inputs, self.targets = pieces(ids, rows, length)
        self.window = window

    def batch(self, n: int):
        w = n % self.windows
        cut = slice(w * self.window, (w + 1) * self.window)
        return {"inputs": self.inputs[:, cut], "targets": self.targets[:, cut],
                "reset": np.full(len(self.inputs), w == 0)}


def stream_batch(ids: np.ndarray, streams: int) -> dict[str, np.ndarray]:
    """``ids`` as ``streams`` consecutive pieces read whole: one evaluation batch."""
    length = (len(ids) - 1) // streams
    if length < 1:
        raise ValueError(f"task.eval_streams={streams} is more than the {len(ids)}-character "
                         f"evaluation text allows")
    inputs, targets = pieces(ids, np.arange(streams), length)
    return {"inputs": inputs, "targets": targets}


def pieces(ids: np.ndarray, rows: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) (len(rows), length): piece r is ``ids[r·length : (r+1)·length]``,
    its targets the same characters shifted by one."""
    starts = rows[:, None] * length + np.arange(length)[None, :]
    return ids[starts], ids[starts + 1]


class CharLMTask(Task):
    name = "char_lm"
    config_defaults = {
        "corpus": "tiny_shakespeare",
        "eval_split": "validation",
        "eval_streams": 8,
        "prompts": ("ROMEO:", "First Citizen:\n"),
        "sample_length": 300,
        "sample_temperature": 0.8,
        "sample_top_k": 0,
        "sample_seed": 0,
        "sample_context": 1000,
    }
    success = {"nats_per_char": ("<", 1.55)}
    example_files = {"text/samples": "samples.md"}

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        if t.corpus not in CORPORA:
            raise ValueError(f"task.corpus={t.corpus!r} is not allowed; choose one of: "
                             f"{', '.join(CORPORA)}")
        if t.eval_split not in ("validation", "test"):
            raise ValueError(f"task.eval_split={t.eval_split!r} is not allowed; choose one of: "
                             f"validation, test")
        if config.train.tbptt < 1:
            raise ValueError(f"char_lm trains with truncated BPTT: set train.tbptt to the "
                             f"window length in characters (>= 1), got {config.train.tbptt!r}")
        self.texts = load_texts(config, t.corpus)
        from seqjax.data.tiny_shakespeare import CharVocabulary  # tensorflow_datasets
        self.vocab = CharVocabulary.build(self.texts["train"])
        self.ids = {k: self.vocab.encode(v) for k, v in self.texts.items()}
        self.cell = cells.get_cell(config.model.cell, **models.cell_options(config.model)[0])
        self._sample = jax.jit(lm.sample, static_argnums=(0, 3), static_argnames=("top_k",))

    # --- the model and its carried state
    def build_model(self, model_config):
        return lm.CharLanguageModel(vocab=len(self.vocab), model_config=model_config)

    def initial_carry(self, params):
        """The zero state of all B streams (the step sees the global batch, every host's
        slice of the streams): the train state's ``carry`` at step 0."""
        return lm.initial_carries(self.cell, params, self.config.train.batch_size)

    def probe_shape(self, batch):
        return None  # gradient flow across a window: experiments/char_lm_study.py

    # --- data
    def train_iterator(self, seed: int):
        del seed  # the streams are read in order; the seed only changes the initialisation
        return StreamIterator(self.ids["train"], self.config.train.batch_size,
                              self.config.train.tbptt, jax.process_index(), jax.process_count())

    def eval_batches(self):
        yield stream_batch(self.ids[self.settings.eval_split], self.settings.eval_streams)

    # --- objective
    def loss(self, outputs, batch):
        logits, targets = outputs["logits"], batch["targets"]
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
        acc = jnp.mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32))
        return ce, {"nats_per_char": ce, "bits_per_char": ce / math.log(2),
                    "next_char_accuracy": acc}

    def baseline(self):
        """The unigram model of the training text, scored on the evaluation text."""
        counts = np.bincount(self.ids["train"], minlength=len(self.vocab)).astype(np.float64)
        p = (counts + 1) / (counts.sum() + len(counts))  # add-one: unseen characters too
        target = self.ids[self.settings.eval_split]
        nats = float(-np.mean(np.log(p[target])))
        return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
                "next_char_accuracy": float(np.mean(target == np.argmax(counts)))}

    def generation_eval(self, model, params, *, final: bool):
        return {}, {"text/samples": self.samples(params)}

    def sample_context(self) -> str:
        """The text read before each prompt: the evaluation text's first
        ``task.sample_context`` characters, cut back to its last paragraph break."""
        text = self.texts[self.settings.eval_split][:self.settings.sample_context]
        cut = text.rfind("\n\n")
        return text[:cut + 2] if cut >= 0 else text

    def samples(self, params) -> str:
        """Markdown: ``task.sample_length`` characters after each prompt, each prompt read
        after ``sample_context()`` (a trained model's state is built over long contexts; from
        a zero state a few characters leave it where it has never been)."""
        t, parts, context = self.settings, [], self.sample_context()
        for i, prompt in enumerate(t.prompts):
            ids = self._sample(self.cell, params, self.vocab.encode(context + prompt),
                               t.sample_length,
                               temperature=t.sample_temperature, top_k=t.sample_top_k,
                               key=jax.random.fold_in(jax.random.key(t.sample_seed), i))
            parts.append(f"prompt {prompt!r} after {len(context):,} characters of the "
                         f"{t.eval_split} text, temperature {t.sample_temperature:g}, top-k "
                         f"{t.sample_top_k or 'all'}:\n\n```text\n{prompt}"
                         f"{self.vocab.decode(np.asarray(ids))}\n```")
        return "\n\n".join(parts)


def load_texts(config, corpus: str) -> dict[str, str]:
    """{"train", "validation", "test"}: the corpus's texts, prepared once (TFDS)."""
    from seqjax.data import local, pipeline  # tensorflow_datasets: real runs only
    if corpus == "tiny_shakespeare":
        from seqjax.data import tiny_shakespeare as ts
        data = types.SimpleNamespace(raw_dir=local.raw_dir_for(config, "tiny_shakespeare"),
                                     data_dir=config.data.data_dir)
        builder = pipeline.prepare(ts.TinyShakespeare, data)
        return {s: ts.corpus_text(builder, s) for s in ts.SPLITS}
    from seqjax.data import por_eng
    _, sources = por_eng.load(local.raw_dir_for(config, "por_eng"), local.data_dir_for(config))
    texts = {}
    for split, source in sources.items():
        rows = sorted((source[i] for i in range(len(source))), key=lambda e: int(e["index"]))
        texts[split] = "".join(_str(r["pt"]) + "\n" for r in rows)
    return texts


def _str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)
