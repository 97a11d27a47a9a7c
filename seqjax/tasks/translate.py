"""Translation pt→en (many-to-many, encoder–decoder): task ``translate``.

Model: ``seqjax.seq2seq.Seq2Seq`` — an LSTM encoder (``model.bidirectional``) and an LSTM
decoder, with Luong general attention or none (``task.attention``); teacher forcing for
training. Word vocabularies (lower-cased, punctuation split off; seqjax.text) are built from
the training split of each language (``min_count``). Batches: ``src`` (B, src_max_len) int32,
``src_lengths`` (B,), ``dec_inputs``/``targets`` (B, tgt_max_len + 1).

Data (``task.source``):
* ``"por_eng"`` (default): the 13,222 Tatoeba pairs of ``../shared/data/por_eng`` with a seeded
  train/validation/test split (seqjax.data.por_eng; ``split_seed``, fractions); the split's pair
  indices are in ``split.json`` beside the prepared data, and the run's TensorBoard text
  ``text/split`` names the seed, fractions and sizes.
* ``"ted_hrlr"``: ``ted_hrlr_translate/pt_to_en`` from the TFDS catalog (needs internet the first
  time and the TF extra: ``pip install -e .[tf]``); train / validation / test as published.

``generation_eval`` decodes (greedy and beam) the first ``decode_eval_size`` validation pairs
at every evaluation and the whole test split at the last one: sacreBLEU (corpus BLEU-1…4,
13a tokenisation, lower-cased, since the vocabulary is) of the detokenised output against the
original English sentence; plus a table of example translations (``text/translations``).
"""

from __future__ import annotations

from seqjax import seq2seq, text
from seqjax.data import local
from seqjax.tasks.base import InputSpec, Task
from seqjax.tasks.seq2seq_common import Decoder, markdown_table, masked_ce

SOURCES = ("por_eng", "ted_hrlr")


def _str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def load_ted_hrlr(data_dir: str):
    """{split: [(pt, en)]} of ted_hrlr_translate/pt_to_en (downloads on first use; needs TF)."""
    try:
        import tensorflow  # noqa: F401  (TFDS needs it to prepare this catalog dataset)
    except ImportError as e:
        raise ImportError("task.source='ted_hrlr' reads ted_hrlr_translate/pt_to_en from the "
                          "TFDS catalog, which needs TensorFlow: pip install -e .[tf] "
                          "(and internet access the first time)") from e
    import tensorflow_datasets as tfds  # heavy (≈0.5 s): only this source needs it here
    builder = tfds.builder("ted_hrlr_translate/pt_to_en", data_dir=data_dir)
    builder.download_and_prepare()
    out = {}
    for split in ("train", "validation", "test"):
        ds = tfds.as_numpy(builder.as_dataset(split=split))
        out[split] = [(_str(e["pt"]), _str(e["en"])) for e in ds]
    return out


class TranslateTask(Task):
    name = "translate"
    config_defaults = {
        "source": "por_eng",
        "split_seed": 0,             # por_eng: the seeded split
        "validation_fraction": 0.1,
        "test_fraction": 0.1,
        "attention": "luong",        # "luong" (global, general score) or "none"
        "src_max_len": 20,           # tokens; longer sentences are cut (training and test)
        "tgt_max_len": 20,
        "min_count": 2,
        "max_vocab": 0,
        "beam": 4,
        "length_penalty": 0.6,
        "decode_eval_size": 256,
        "table_rows": 16,
        "final_decode_size": 0,       # test examples decoded at the last evaluation (0: all)
    }

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        if t.source not in SOURCES:
            raise ValueError(f"task.source={t.source!r} is not allowed; choose one of: "
                             f"{', '.join(SOURCES)}")
        if t.attention not in seq2seq.ATTENTIONS:
            raise ValueError(f"task.attention={t.attention!r} is not allowed; choose one of: "
                             f"{', '.join(seq2seq.ATTENTIONS)}")
        self.split_info = None  # por_eng: the seeded split (set by ``_load``)
        self.pairs = self._load()
        train = self.pairs["train"]
        self.src_vocab = text.Vocab.build((text.tokenize(p) for p, _ in train),
                                          min_count=t.min_count, max_size=t.max_vocab)
        self.tgt_vocab = text.Vocab.build((text.tokenize(e) for _, e in train),
                                          min_count=t.min_count, max_size=t.max_vocab)
        self.arrays = {k: self._encode(v) for k, v in self.pairs.items()}
        self._decoder = None

    def _load(self):
        t = self.settings
        if t.source == "ted_hrlr":
            return load_ted_hrlr(local.data_dir_for(self.config))
        from seqjax.data import por_eng  # imports tensorflow_datasets (≈0.5 s)
        builder, src = por_eng.load(local.raw_dir_for(self.config, "por_eng"),
                                    local.data_dir_for(self.config), seed=t.split_seed,
                                    validation_fraction=t.validation_fraction,
                                    test_fraction=t.test_fraction)
        self.split_info = por_eng.split_of(builder)
        out = {}
        for split, s in src.items():
            exs = sorted((s[i] for i in range(len(s))), key=lambda e: int(e["index"]))
            out[split] = [(_str(e["pt"]), _str(e["en"])) for e in exs]
        return out

    def _encode(self, pairs):
        t = self.settings
        src_ids = [self.src_vocab.encode(text.tokenize(p)) for p, _ in pairs]
        tgt_ids = [self.tgt_vocab.encode(text.tokenize(e)) for _, e in pairs]
        src, lengths = text.encoder_arrays(src_ids, t.src_max_len)
        return {"src": src, "src_lengths": lengths} | text.decoder_arrays(tgt_ids, t.tgt_max_len)

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="tokens", dim=len(self.src_vocab), output_dim=len(self.tgt_vocab),
                         readout="all", seq_len=self.settings.tgt_max_len + 1)

    def train_iterator(self, seed: int):
        arrays = self.arrays["train"]
        source = _Rows(arrays)
        return local.BatchIterator(source, self.config.train.batch_size, seed, lambda r: r)

    def eval_batches(self):
        arrays = self.arrays["validation"]
        n = min(self.settings.eval_size, len(arrays["src"]))
        for start in range(0, n, 512):
            yield {k: v[start:min(start + 512, n)] for k, v in arrays.items()}

    def loss(self, logits, batch):
        return masked_ce(logits, batch["targets"])

    def build_model(self, model_config=None):
        """The encoder–decoder for ``model_config`` (the trainer's, e.g. with ``impl``
        resolved; default: this run's ``config.model``)."""
        if model_config is None:
            model_config = self.config.model
        return seq2seq.Seq2Seq(model_config=model_config, src_vocab=len(self.src_vocab),
                               tgt_vocab=len(self.tgt_vocab), attention=self.settings.attention)

    def probe_shape(self, batch):
        B, T = batch["dec_inputs"].shape
        return (B, T + 1, self.config.model.hidden)

    def generation_eval(self, model, params, *, final: bool):
        t = self.settings
        split = "test" if final else "validation"
        arrays = self.arrays[split]
        n = len(arrays["src"])
        n = min(t.final_decode_size or n, n) if final else min(t.decode_eval_size, n)
        arrays = {k: v[:n] for k, v in arrays.items()}
        pairs = self.pairs[split][:n]
        if self._decoder is None:
            self._decoder = Decoder(model, max_len=t.tgt_max_len + 1, beam=t.beam,
                                    length_penalty=t.length_penalty)
        prefix = "test_" if final else "valid_"
        enc = {"src": arrays["src"], "src_lengths": arrays["src_lengths"]}
        metrics, hyps = {}, {}
        for beam in sorted({1, t.beam}):
            toks = self._decoder(params, enc, beam)
            hyps[beam] = [text.detokenize(self.tgt_vocab.decode(r)) for r in toks]
            tag = "" if beam == 1 else "beam_"
            scores = text.bleu(hyps[beam], [[e] for _, e in pairs])
            metrics |= {f"{prefix}{tag}{k}": v for k, v in scores.items()}
        rows = [(pairs[i][0], pairs[i][1], hyps[t.beam][i], hyps[1][i])
                for i in range(min(t.table_rows, n))]
        examples = {"text/translations": markdown_table(
            rows, ("source (pt)", "reference (en)", f"beam {t.beam}", "greedy"))}
        if self.split_info:
            s = self.split_info
            examples["text/split"] = (
                f"por_eng split: seed {s['seed']}, validation {s['validation_fraction']:g}, "
                f"test {s['test_fraction']:g}; sizes " + ", ".join(
                    f"{k} {len(v)}" for k, v in s["indices"].items())
                + f"; first test pair indices {s['indices']['test'][:10]}")
        return metrics, examples


class _Rows:
    """Row i of a dict of equal-length arrays, as a dict (random access for grain)."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[int(i)] for k, v in self.arrays.items()}
