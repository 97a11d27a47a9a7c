"""tiny Shakespeare (char-rnn's corpus) as a TFDS builder, split by character position.

Raw file (``raw_dir``): ``input.txt``, 1,115,394 bytes of ASCII, sha256 86c4e6aa…, byte-identical
to ``data/tinyshakespeare/input.txt`` of github.com/karpathy/char-rnn; the project's offline copy
is ``../shared/data/tiny_shakespeare``. Without ``raw_dir`` the file is downloaded from that
repository.

Splits, as TFDS's catalog builder ``tiny_shakespeare`` makes them: ``train`` is the first 90%
of the characters (``int(0.9·N)`` = 1,003,854), the rest is halved into ``validation``
(55,770) and ``test`` (55,770). Each split is ONE record: ``{"text": the split's text}``, the
layout of TFDS's own builder, since a language model reads a split as one stream.

``corpus_text(builder, split)`` reads a split back as a str. ``CharVocabulary``: id 0 is a
character the training text never shows, ids 1.. the training text's characters in code
point order.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import raw as raw_lib
from seqjax.data.raw import RawDataError, RawFile

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
INPUT = RawFile("input.txt", 1115394,
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", URL)
SPLITS = ("train", "validation", "test")


def split_bounds(n: int) -> dict[str, tuple[int, int]]:
    """{split: (start, stop)} character positions: 90% train, the rest halved."""
    train_end = int(0.9 * n)
    valid_end = train_end + (n - train_end) // 2
    return {"train": (0, train_end), "validation": (train_end, valid_end),
            "test": (valid_end, n)}


def read_text(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RawDataError(f"tiny_shakespeare: {path} is not valid UTF-8 ({e})") from None


class TinyShakespeare(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """tiny Shakespeare from ``input.txt`` (see the module docstring). ``RAW`` is the file
    it checks against (a test builds a subclass over a tiny file)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "seqjax: TFDS's character-position splits, one record each."}
    RAW = INPUT
    MANUAL_DOWNLOAD_INSTRUCTIONS = (f"Put {raw_lib.describe(INPUT)} in the manual directory "
                                    f"(config.data.raw_dir). Source: {URL}")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="tiny Shakespeare, 1.1 M characters (char-rnn).",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="https://github.com/karpathy/char-rnn",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        path = raw_lib.fetch("tiny_shakespeare", dl_manager, [self.RAW])[self.RAW.name]
        text = read_text(path)
        return {split: self._generate_examples(text[a:b])
                for split, (a, b) in split_bounds(len(text)).items()}

    def _generate_examples(self, text):
        yield 0, {"text": text}


def corpus_text(builder, split: str) -> str:
    """The text of one prepared split."""
    text = builder.as_data_source(split=split)[0]["text"]
    return text.decode("utf-8") if isinstance(text, bytes) else text


class CharVocabulary:
    """Character ↔ id. ``chars[i]`` is the character of id i ≥ 1; id 0 stands for any
    character the training text never shows (decoded as ``UNKNOWN``)."""

    UNKNOWN = "\ufffd"

    def __init__(self, chars: Iterable[str]):
        self.chars = [self.UNKNOWN] + list(chars)
        self.index = {c: i for i, c in enumerate(self.chars) if i >= 1}

    @classmethod
    def build(cls, text: str) -> "CharVocabulary":
        if not text:
            raise ValueError("cannot build a character vocabulary from an empty text")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray([self.index.get(c, 0) for c in text], np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)
