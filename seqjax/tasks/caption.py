"""Image captioning (one-to-many): ``caption_mnist`` (mnist_scenes) and ``caption_flickr8k``.

Model: ``seqjax.seq2seq.CaptionModel`` — a VGG-style CNN whose features initialise the LSTM
decoder's carry; trained with teacher forcing (masked cross entropy over the caption's tokens
and EOS). Batches: ``image`` (B, S, S, C) float32 in [0, 1], ``dec_inputs`` / ``targets``
(B, max_len + 1) int32 (see seqjax.text). The vocabulary is built from the training captions.

``generation_eval`` decodes (greedy, and beam search with ``task.beam``) the first
``task.decode_eval_size`` validation images at every evaluation, and the whole test split at
the last one (metrics ``valid_*`` / ``test_*``): BLEU-1…4 (sacreBLEU, lower-cased, against
every reference of the image) and, for mnist_scenes, the exact-match rate (the generated
caption equals the one true caption). It returns a PNG grid of successes and failures
(``image/captions``) and a text table (``text/captions``), which the trainer puts into
TensorBoard; ``python -m experiments.export_examples <workdir>`` writes them to
``<workdir>/figures/``.
"""

from __future__ import annotations

import numpy as np

from seqjax import seq2seq, text
from seqjax.data import local
from seqjax.tasks.base import InputSpec, Task
from seqjax.tasks.seq2seq_common import (Decoder, caption_grid, markdown_table, masked_ce,
                                         sentence_bleu)

COMMON_DEFAULTS = {
    "cnn_channels": (16, 32, 64),  # VGG: (64, 128, 256, 512); one conv-conv-pool block each
    "cnn_convs_per_block": 2,
    "feature_dim": 256,            # the CNN's fc layer
    "max_len": 10,                 # caption tokens (EOS not counted); longer ones are cut
    "min_count": 1,                # vocabulary: words seen at least this often in training
    "max_vocab": 0,                # 0: no limit
    "beam": 3,
    "length_penalty": 0.0,         # beam: score / len^penalty picks the final beam
    "decode_eval_size": 256,       # validation images decoded at each non-final evaluation
    "grid_per_side": 6,            # successes / failures shown in the picture
    "final_decode_size": 0,        # test images decoded at the last evaluation (0: all)
}


class _CaptionTask(Task):
    """Shared by both datasets: subclasses define ``_load`` → (train, valid, test) sources and
    ``_references(example)`` / ``_image(example)``."""

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        self.counts = None  # flickr8k: what its raw files held (set by ``_load``)
        self.train_src, self.valid_src, self.test_src = self._load()
        caps = [c for ex in _iterate(self.train_src) for c in self._references(ex)]
        self.vocab = text.Vocab.build((text.tokenize(c) for c in caps),
                                      min_count=t.min_count, max_size=t.max_vocab)
        self._decoder = None
        self._valid_cache = None
        self._test_cache = None

    # ---- data
    def _load(self):
        raise NotImplementedError

    def _references(self, example) -> list[str]:
        raise NotImplementedError

    def _image(self, example) -> np.ndarray:
        """(S, S, C) float32 in [0, 1]."""
        img = np.asarray(example["image"], np.float32) / 255.0
        return img[..., None] if img.ndim == 2 else img

    def _encode_caption(self, caption: str) -> dict[str, np.ndarray]:
        ids = self.vocab.encode(text.tokenize(caption))
        arrays = text.decoder_arrays([ids], self.settings.max_len)
        return {k: v[0] for k, v in arrays.items()}

    def _train_example(self, example, k: int = 0):
        return {"image": self._image(example)} | self._encode_caption(self._references(example)[k])

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="tokens", dim=len(self.vocab), output_dim=len(self.vocab),
                         readout="all", seq_len=self.settings.max_len + 1)

    def _arrays(self, source, n: int | None = None):
        """(arrays for decoding/eval, references, images) of the first n examples."""
        n = len(source) if n is None else min(n, len(source))
        exs = [source[i] for i in range(n)]
        arrays = local.stack([self._train_example(e) for e in exs])
        refs = [self._references(e) for e in exs]
        return arrays, refs

    def train_iterator(self, seed: int):
        return local.BatchIterator(self._train_pairs(), self.config.train.batch_size, seed,
                                   lambda pair: self._train_example(*pair))

    def _train_pairs(self):
        return _Indexed(self.train_src, lambda ex, j: (ex, 0), 1)

    def eval_batches(self):
        n = min(self.settings.eval_size, len(self.valid_src))
        arrays, _ = self._arrays(self.valid_src, n)
        for start in range(0, n, 256):
            yield {k: v[start:start + 256] for k, v in arrays.items()}

    # ---- objective
    def loss(self, logits, batch):
        return masked_ce(logits, batch["targets"])

    def baseline(self):
        return {}

    # ---- model
    def build_model(self, model_config=None):
        """The captioning model for ``model_config`` (the trainer's, e.g. with ``impl``
        resolved; default: this run's ``config.model``)."""
        t = self.settings
        if model_config is None:
            model_config = self.config.model
        return seq2seq.CaptionModel(model_config=model_config, vocab=len(self.vocab),
                                    channels=tuple(t.cnn_channels),
                                    convs_per_block=t.cnn_convs_per_block,
                                    feature_dim=t.feature_dim)

    def probe_shape(self, batch):
        B, T = batch["dec_inputs"].shape
        return (B, T + 1, self.config.model.hidden)

    # ---- decoding metrics and pictures
    def _decoded(self, model, params, arrays, beam):
        t = self.settings
        if self._decoder is None:
            self._decoder = Decoder(model, max_len=t.max_len + 1, beam=t.beam,
                                    length_penalty=t.length_penalty)
        toks = self._decoder(params, {"image": arrays["image"]}, beam)
        return [text.detokenize(self.vocab.decode(row)) for row in toks]

    def _success_flags(self, hyps: list[str], refs: list[list[str]]) -> list[bool]:
        raise NotImplementedError

    def generation_eval(self, model, params, *, final: bool):
        t = self.settings
        if final:
            if self._test_cache is None:
                self._test_cache = self._arrays(self.test_src, t.final_decode_size or None)
            (arrays, refs), prefix = self._test_cache, "test_"
        else:
            if self._valid_cache is None:
                self._valid_cache = self._arrays(self.valid_src, t.decode_eval_size)
            (arrays, refs), prefix = self._valid_cache, "valid_"
        metrics = {}
        outputs = {}
        for beam in sorted({1, t.beam}):
            hyps = self._decoded(model, params, arrays, beam)
            outputs[beam] = hyps
            tag = "" if beam == 1 else "beam_"
            scores = text.bleu(hyps, refs)
            metrics |= {f"{prefix}{tag}{k}": v for k, v in scores.items()}
            metrics |= self._extra_metrics(hyps, refs, f"{prefix}{tag}")
        hyps = outputs[t.beam]
        good = self._success_flags(hyps, refs)
        split = "test" if final else "validation"
        grid = caption_grid(arrays["image"], hyps, [r[0] for r in refs], good,
                            f"{self.name}: {split}, beam {t.beam} "
                            f"({sum(good)}/{len(good)} {self._success_name})",
                            per_side=t.grid_per_side)
        rows = [(str(i), hyps[i], outputs[1][i], refs[i][0], "yes" if good[i] else "no")
                for i in range(min(len(hyps), 20))]
        table = markdown_table(rows, ("#", f"beam {t.beam}", "greedy", "reference",
                                      self._success_name))
        return metrics, {"image/captions": grid, "text/captions": table}

    _success_name = "success"

    def _extra_metrics(self, hyps, refs, prefix) -> dict:
        return {}


class _Indexed:
    """A random-access view: item i is ``make(source[i // per], i % per)``."""

    def __init__(self, source, make, per: int):
        self.source, self.make, self.per = source, make, per

    def __len__(self):
        return len(self.source) * self.per

    def __getitem__(self, i):
        return self.make(self.source[int(i) // self.per], int(i) % self.per)


def _iterate(source):
    return (source[i] for i in range(len(source)))


def _str(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class CaptionMnistTask(_CaptionTask):
    """mnist_scenes: success = exact match of the one true caption."""

    name = "caption_mnist"
    config_defaults = COMMON_DEFAULTS | {"num_train": 20000, "num_validation": 1000,
                                         "num_test": 1000, "data_seed": 0}
    _success_name = "exact"

    def _load(self):
        from seqjax.data import mnist_scenes  # imports tensorflow_datasets (≈0.5 s)
        t = self.settings
        src = mnist_scenes.load(local.raw_dir_for(self.config, "mnist"),
                                local.data_dir_for(self.config), num_train=t.num_train,
                                num_validation=t.num_validation, num_test=t.num_test,
                                seed=t.data_seed)
        return src["train"], src["validation"], src["test"]

    def _references(self, example):
        return [_str(example["caption"])]

    def _success_flags(self, hyps, refs):
        return [h == r[0] for h, r in zip(hyps, refs)]

    def _extra_metrics(self, hyps, refs, prefix):
        exact = np.mean([h == r[0] for h, r in zip(hyps, refs)])
        return {f"{prefix}exact_match": float(exact)}


class CaptionFlickr8kTask(_CaptionTask):
    """Flickr8k: five references per image; training sees every (image, caption) pair.
    Success in the picture: sentence BLEU above the median of the decoded set."""

    name = "caption_flickr8k"
    config_defaults = COMMON_DEFAULTS | {"image_size": 64, "max_len": 16, "min_count": 2,
                                         "cnn_channels": (16, 32, 64, 128)}
    _success_name = "sentence BLEU > median"

    def _load(self):
        from seqjax.data import flickr8k  # imports tensorflow_datasets (≈0.5 s)
        builder, src = flickr8k.load(local.raw_dir_for(self.config, "flickr8k"),
                                     local.data_dir_for(self.config),
                                     image_size=self.settings.image_size)
        self.counts = flickr8k.counts(builder)
        missing = [s for s in ("train", "validation", "test") if s not in src]
        if missing:
            raise ValueError(f"flickr8k: no image of split(s) {missing} is present in "
                             f"{local.raw_dir_for(self.config, 'flickr8k')} "
                             f"({self.counts}); captioning needs images in every split")
        return src["train"], src["validation"], src["test"]

    def _references(self, example):
        return [_str(c) for c in example["captions"] if _str(c)]

    def _train_pairs(self):
        return _Indexed(self.train_src, lambda ex, k: (ex, k), 5)

    def _train_example(self, example, k: int = 0):
        refs = self._references(example)
        return {"image": self._image(example)} | self._encode_caption(refs[k % len(refs)])

    def _success_flags(self, hyps, refs):
        scores = [sentence_bleu(h, r) for h, r in zip(hyps, refs)]
        median = float(np.median(scores))
        return [s > median for s in scores]  # all equal (e.g. all 0): all are failures
