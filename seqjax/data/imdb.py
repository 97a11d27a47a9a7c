"""IMDB Large Movie Review Dataset v1.0 (Maas et al., ACL 2011): builder, tokeniser, vocabulary.

Raw layout (``config.data.raw_dir``), any one of, looked for in this order:

1. the extracted tree ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` (``raw_dir`` may be
   the folder that holds ``aclImdb/`` or ``aclImdb/`` itself); each of the four folders must
   hold its 12,500 reviews;
2. ``aclImdb_v1_text_labelled.tar.xz``: the project's offline repack of that tree
   (19,039,508 bytes, sha256 fa21a475…; see ../shared/data/imdb/SOURCE.md);
3. ``aclImdb_v1.tar.gz``: the original archive (84,125,825 bytes, sha256 c40f74a1…).

Archives are checked against their sha256 and read without being extracted. Without
``raw_dir`` the original archive is downloaded from Stanford. The unlabelled reviews
(``train/unsup``) are not used.

Prepared dataset ``imdb_reviews`` 1.0.0 (array_record): splits ``train`` and ``test``, 25,000
reviews each, stored negatives first, then positives, each by file id (record order is
fixed; grain shuffles). Features: ``text`` (the review as in the file, ``<br />`` tags
included), ``label`` (ClassLabel neg/pos), ``rating`` (the star rating from the file name:
1–4 neg, 7–10 pos).

Tokenisation (``tokenize``): lower case; ``<br />`` becomes a space; a token is a run of
letters/digits, with inner apostrophes kept (``don't``, ``director's``); all other
characters separate tokens. Vocabulary (``Vocabulary.build``, training split only): id 0 =
padding, id 1 = out of vocabulary, ids 2..V−1 = the V−2 most frequent training tokens
(ties broken alphabetically).
"""

from __future__ import annotations

import collections
import os
import re
import tarfile
from typing import Iterable

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import raw as raw_lib
from seqjax.data.raw import RawDataError, RawFile

HOMEPAGE = "https://ai.stanford.edu/~amaas/data/sentiment/"
ORIGINAL = RawFile("aclImdb_v1.tar.gz", 84125825,
                   "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
                   HOMEPAGE + "aclImdb_v1.tar.gz")
REPACK = RawFile("aclImdb_v1_text_labelled.tar.xz", 19039508,
                 "fa21a475f3b5e5b086a54b2d8b34049e3ce1fb4c2a4e08cfd5367893009a2424",
                 "the project's offline copy ../shared/data/imdb (a repack of the texts of "
                 + HOMEPAGE + "aclImdb_v1.tar.gz)")
SPLITS, LABELS = ("train", "test"), ("neg", "pos")
EXPECTED_COUNTS = {(s, lab): 12500 for s in SPLITS for lab in LABELS}
LAYOUT = ("the extracted tree aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt (12,500 reviews "
          "per folder), or one of these archives of it")

_MEMBER_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_FILE_RE = re.compile(r"^(\d+)_(\d+)\.txt$")

Review = tuple[int, int, int, str]  # (label 0/1, file id, rating, text)


# ----------------------------------------------------------------------------- raw files


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RawDataError(f"imdb_reviews: {where} is not valid UTF-8 ({e})") from None


def find_tree(raw_dir: str) -> str | None:
    """The ``aclImdb`` folder under ``raw_dir`` (or ``raw_dir`` itself), if there is one."""
    for cand in (os.path.join(raw_dir, "aclImdb"), raw_dir):
        if os.path.isdir(os.path.join(cand, "train")) or os.path.isdir(os.path.join(cand, "test")):
            return cand
    return None


def read_tree(tree: str) -> dict[str, list[Review]]:
    reviews = {s: [] for s in SPLITS}
    for split in SPLITS:
        for label, name in enumerate(LABELS):
            folder = os.path.join(tree, split, name)
            if not os.path.isdir(folder):
                raise RawDataError(
                    f"imdb_reviews: folder {folder} is missing; expected {LAYOUT.split(', or')[0]}")
            for fname in os.listdir(folder):
                m = _FILE_RE.match(fname)
                if m:
                    path = os.path.join(folder, fname)
                    with open(path, "rb") as f:
                        text = _decode(f.read(), path)
                    reviews[split].append((label, int(m[1]), int(m[2]), text))
    return reviews


def read_archive(path: str) -> dict[str, list[Review]]:
    """The labelled reviews in a tar archive of the aclImdb tree (any compression)."""
    reviews = {s: [] for s in SPLITS}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                m = _MEMBER_RE.search(member.name)
                if m and member.isfile():
                    text = _decode(tar.extractfile(member).read(), f"{path}:{member.name}")
                    reviews[m[1]].append((LABELS.index(m[2]), int(m[3]), int(m[4]), text))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise RawDataError(f"imdb_reviews: {path} is not a readable tar archive ({e})") from None
    return reviews


def check_counts(reviews: dict[str, list[Review]], where: str) -> None:
    counts = collections.Counter((s, LABELS[r[0]]) for s in SPLITS for r in reviews[s])
    wrong = [f"{s}/{lab}: {counts[(s, lab)]} (expected {n})"
             for (s, lab), n in EXPECTED_COUNTS.items() if counts[(s, lab)] != n]
    if wrong:
        raise RawDataError(f"imdb_reviews: {where} does not hold the full dataset: "
                           f"{'; '.join(wrong)}. Expected {LAYOUT}: {raw_lib.describe(REPACK)} "
                           f"or {raw_lib.describe(ORIGINAL)} from {ORIGINAL.url}")


def load_reviews(dl_manager) -> dict[str, list[Review]]:
    """Every labelled review from the raw dir (tree or archive) or the downloaded archive."""
    raw_dir = raw_lib.manual_dir(dl_manager)
    if raw_dir is None:
        path = raw_lib.checked("imdb_reviews", raw_lib.download("imdb_reviews", dl_manager,
                                                                 ORIGINAL), ORIGINAL)
        reviews, where = read_archive(path), path
    elif (tree := find_tree(raw_dir)) is not None:
        reviews, where = read_tree(tree), tree
    else:
        for archive in (REPACK, ORIGINAL):
            path = os.path.join(raw_dir, archive.name)
            if os.path.isfile(path):
                reviews, where = read_archive(raw_lib.checked("imdb_reviews", path, archive)), path
                break
        else:
            raise raw_lib.missing_error("imdb_reviews", raw_dir, [REPACK, ORIGINAL], LAYOUT)
    check_counts(reviews, where)
    return {s: sorted(r) for s, r in reviews.items()}  # by (label, id): a fixed order


class ImdbReviews(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """IMDB reviews from the aclImdb tree or archive (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "seqjax: labelled train/test reviews from the aclImdb layout."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put {LAYOUT} ({REPACK.name}, {ORIGINAL.name}) in the " \
                                   f"manual directory (config.data.raw_dir). Source: {HOMEPAGE}"

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="IMDB movie reviews, binary sentiment (Maas et al. 2011).",
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(LABELS)),
                "rating": tfds.features.Scalar(dtype=np.int32),
            }),
            supervised_keys=("text", "label"),
            homepage=HOMEPAGE,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        reviews = load_reviews(dl_manager)
        return {split: self._generate_examples(reviews[split]) for split in SPLITS}

    def _generate_examples(self, reviews):
        for i, (label, _, rating, text) in enumerate(reviews):
            yield i, {"text": text, "label": label, "rating": rating}


# ----------------------------------------------------------------------------- text

PAD, OOV = 0, 1
_BR_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str | bytes) -> list[str]:
    """Lower-cased word tokens of a review (see the module docstring)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _TOKEN_RE.findall(_BR_RE.sub(" ", text).lower())


class Vocabulary:
    """Word → id with PAD=0, OOV=1; ``words[i]`` is the word of id i (i ≥ 2)."""

    def __init__(self, words: list[str]):
        self.words = ["<pad>", "<oov>"] + list(words)
        self.index = {w: i for i, w in enumerate(self.words) if i >= 2}

    def __len__(self):
        return len(self.words)

    @classmethod
    def build(cls, texts: Iterable[str | bytes], size: int) -> "Vocabulary":
        """The ``size − 2`` most frequent tokens of ``texts`` (training texts only)."""
        if not isinstance(size, int) or size < 3:
            raise ValueError(f"vocabulary size must be an integer >= 3 (pad, oov and one word), "
                             f"got {size!r}")
        counts = collections.Counter()
        for text in texts:
            counts.update(tokenize(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls([w for w, _ in ranked[:size - 2]])

    def encode(self, text: str | bytes) -> list[int]:
        return [self.index.get(w, OOV) for w in tokenize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != PAD)


def pad_batch(id_lists: list[list[int]], seq_len: int, truncate: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int32 (B, seq_len), lengths int32 (B,)): padded after the words with PAD.

    Longer reviews are cut to ``seq_len`` tokens: ``truncate="pre"`` drops the beginning
    (keeps the last ``seq_len`` tokens, like Keras's ``pad_sequences`` default), ``"post"``
    drops the end. An empty review becomes one OOV token (length ≥ 1).
    """
    if truncate not in ("pre", "post"):
        raise ValueError(f"task.truncate={truncate!r} is not allowed; choose one of: pre, post")
    tokens = np.zeros((len(id_lists), seq_len), np.int32)
    lengths = np.zeros(len(id_lists), np.int32)
    for b, ids in enumerate(id_lists):
        ids = ids or [OOV]
        ids = ids[-seq_len:] if truncate == "pre" else ids[:seq_len]
        tokens[b, :len(ids)] = ids
        lengths[b] = len(ids)
    return tokens, lengths
