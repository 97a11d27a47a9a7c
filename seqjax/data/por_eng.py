"""Portuguese–English sentence pairs (Tatoeba) as a TFDS builder with a seeded split.

Raw files (``raw_dir``): ``tatoeba-test-v2021-08-07.por`` and ``tatoeba-test-v2021-08-07.eng``,
two line-aligned UTF-8 files (13,222 pairs; the Tatoeba Translation Challenge test set,
Tiedemann 2020, from github.com/Helsinki-NLP/Tatoeba-Challenge, CC-BY 2.0 FR); the project's
offline copy is ``../shared/data/por_eng``.

The corpus has no official split, so the builder makes one: the pair indices are permuted by
``numpy.random.default_rng(seed)`` and the first ``test_fraction`` go to ``test``, the next
``validation_fraction`` to ``validation``, the rest to ``train``. The split (seed, fractions
and the sorted pair indices of each split, indices = line numbers from 0) is written to
``split.json`` beside the prepared files (``split_of(builder)``), and the translation task
copies it into every run's TensorBoard text and summary so a run names the pairs it was
tested on.

With internet and the optional TF extra (``pip install -e .[tf]``), the translation task can
read ``ted_hrlr_translate/pt_to_en`` (Qi et al. 2018; 51,785 / 1,193 / 1,803 TED talk pairs)
from the TFDS catalog instead: ``--config.task.source=ted_hrlr`` (see seqjax/tasks/translate.py).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data.local import prepare

FILES = {"pt": "tatoeba-test-v2021-08-07.por", "en": "tatoeba-test-v2021-08-07.eng"}
WHERE = ("github.com/Helsinki-NLP/Tatoeba-Challenge (release v2021-08-07, eng-por test set); "
         "offline copy: ../shared/data/por_eng")


def read_pairs(raw_dir: str) -> list[tuple[str, str]]:
    """[(portuguese, english)], line i of each file; the files must have equal line counts."""
    lines = {}
    for lang, name in FILES.items():
        path = os.path.join(raw_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"por_eng file {path} is missing; get it from {WHERE}")
        with open(path, encoding="utf-8") as f:
            lines[lang] = f.read().splitlines()
    if len(lines["pt"]) != len(lines["en"]):
        raise ValueError(f"{FILES['pt']} has {len(lines['pt'])} lines but {FILES['en']} has "
                         f"{len(lines['en'])} in {raw_dir}; the files must be line-aligned")
    empty = [i for i, (p, e) in enumerate(zip(lines["pt"], lines["en"])) if not p.strip() or not e.strip()]
    if empty:
        raise ValueError(f"por_eng: empty sentence on line(s) {empty[:5]} (0-based) in {raw_dir}")
    return list(zip(lines["pt"], lines["en"]))


def make_split(n: int, seed: int, validation_fraction: float, test_fraction: float) -> dict:
    """{split: sorted pair indices}: a seeded permutation cut into test, validation, train."""
    if not (0 < test_fraction < 1 and 0 < validation_fraction < 1
            and test_fraction + validation_fraction < 1):
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got validation="
                         f"{validation_fraction!r}, test={test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = int(round(n * test_fraction)), int(round(n * validation_fraction))
    parts = {"test": perm[:n_test], "validation": perm[n_test:n_test + n_valid],
             "train": perm[n_test + n_valid:]}
    return {k: sorted(int(i) for i in v) for k, v in parts.items()}


@dataclasses.dataclass
class PorEngConfig(tfds.core.BuilderConfig):
    seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1


class PorEng(tfds.core.GeneratorBasedBuilder):
    """Tatoeba pt–en pairs with a seeded train/validation/test split."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {FILES['pt']} and {FILES['en']} in manual_dir (config.data.raw_dir): {WHERE}")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "pt": tfds.features.Text(), "en": tfds.features.Text(),
            "index": tfds.features.Tensor(shape=(), dtype=np.int32),
        }))

    def _split_generators(self, dl_manager):
        c = self.builder_config
        pairs = read_pairs(str(dl_manager.manual_dir))
        self._split = make_split(len(pairs), c.seed, c.validation_fraction, c.test_fraction)
        return {k: self._generate_examples(pairs, idx) for k, idx in self._split.items()}

    def _generate_examples(self, pairs, indices):
        for i in indices:
            yield i, {"pt": pairs[i][0], "en": pairs[i][1], "index": i}

    def download_and_prepare(self, *args, **kwargs):
        super().download_and_prepare(*args, **kwargs)
        split = getattr(self, "_split", None)
        if split is not None:
            c = self.builder_config
            with open(os.path.join(str(self.data_dir), "split.json"), "w") as f:
                json.dump({"seed": c.seed, "validation_fraction": c.validation_fraction,
                           "test_fraction": c.test_fraction, "indices": split}, f)


def split_of(builder) -> dict:
    with open(os.path.join(str(builder.data_dir), "split.json")) as f:
        return json.load(f)


def load(raw_dir: str, data_dir: str, *, seed: int = 0, validation_fraction: float = 0.1,
         test_fraction: float = 0.1):
    """(builder, {split: data source}), prepared under ``data_dir`` on first use."""
    name = f"seed{seed}_v{validation_fraction:g}_t{test_fraction:g}"
    config = PorEngConfig(name=name, seed=seed, validation_fraction=validation_fraction,
                          test_fraction=test_fraction)
    builder = prepare(PorEng, config, raw_dir, data_dir)
    return builder, builder.as_data_source()
