"""Tiny raw files in the official layouts (MNIST IDX .gz, the aclImdb tree and its archives),
the location of the project's real raw files, and a guard that fails any network access.

Used by tests/test_data.py and tests/test_real_tasks.py.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import socket
import struct
import tarfile

import numpy as np
import pytest

from seqjax.data import imdb as imdb_data
from seqjax.data import mnist as mnist_data
from seqjax.data.raw import RawFile, sha256_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real raw files: $SEQJAX_SHARED_DATA, default ../shared/data next to the repository.
SHARED = os.path.abspath(os.environ.get("SEQJAX_SHARED_DATA",
                                        os.path.join(REPO, "..", "shared", "data")))


def shared(name: str) -> str:
    path = os.path.join(SHARED, name)
    assert os.path.isdir(path), (f"the real raw files of {name} are not in {path}; set "
                                 f"SEQJAX_SHARED_DATA to the folder holding {name}/")
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test (nothing may download here)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I",
                                                                          *array.shape)
    return header + array.tobytes()


def write_gz(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(gzip.compress(data, mtime=0))


def raw_file_for(path: str, url: str = "https://example.invalid/") -> RawFile:
    return RawFile(os.path.basename(path), os.path.getsize(path), sha256_of(path), url)


def write_tiny_mnist(raw_dir: str, n_train: int = 64, n_test: int = 64, seed: int = 0):
    """The four IDX .gz files with random digits; returns (arrays, RawFile table for them)."""
    os.makedirs(raw_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
    table = {}
    for key, raw in mnist_data.RAW_FILES.items():
        path = os.path.join(raw_dir, raw.name)
        write_gz(path, idx_bytes(arrays[key]))
        table[key] = raw_file_for(path, raw.url)
    return arrays, table


POS_WORDS = ["great", "wonderful", "loved", "best"]
NEG_WORDS = ["awful", "boring", "worst", "hated"]
FILLER = ["the", "movie", "film", "plot", "actor", "story", "was", "it", "and", "a"]


def tiny_reviews(per_folder: dict[str, int], seed: int = 0) -> dict[tuple[str, str], list]:
    """{(split, label): [(id, rating, text)]}: reviews with a sentiment word or two."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in per_folder.items():
        for label in ("neg", "pos"):
            words = POS_WORDS if label == "pos" else NEG_WORDS
            items = []
            for i in range(n):
                body = list(rng.choice(FILLER, rng.integers(5, 30))) + list(rng.choice(words, 2))
                rng.shuffle(body)
                rating = int(rng.integers(7, 11) if label == "pos" else rng.integers(1, 5))
                text = " ".join(body).capitalize() + ".<br /><br />It's a " + split + " review."
                items.append((i, rating, text))
            out[(split, label)] = items
    return out


def write_imdb_tree(root: str, reviews) -> str:
    """``root/aclImdb/{split}/{label}/{id}_{rating}.txt``; returns root."""
    for (split, label), items in reviews.items():
        folder = os.path.join(root, "aclImdb", split, label)
        os.makedirs(folder, exist_ok=True)
        for i, rating, text in items:
            with open(os.path.join(folder, f"{i}_{rating}.txt"), "w", encoding="utf-8") as f:
                f.write(text)
    with open(os.path.join(root, "aclImdb", "README"), "w") as f:
        f.write("tiny test copy\n")
    return root


def write_imdb_archive(path: str, reviews, mode: str) -> str:
    """A tar (``mode`` "w:xz" or "w:gz") of the aclImdb tree, as the real archives are."""
    with tarfile.open(path, mode) as tar:
        for (split, label), items in sorted(reviews.items()):
            for i, rating, text in items:
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_{rating}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def counts_of(reviews) -> dict:
    return {key: len(items) for key, items in reviews.items()}


@contextlib.contextmanager
def tiny_checksums(mnist_table=None, imdb_counts=None, imdb_archives=None):
    """Let the builders accept the tiny files (their checksums / review counts)."""
    with pytest.MonkeyPatch.context() as mp:
        if mnist_table is not None:
            mp.setattr(mnist_data.Mnist, "RAW_FILES", mnist_table)
        if imdb_counts is not None:
            mp.setattr(imdb_data, "EXPECTED_COUNTS", imdb_counts)
        for name, raw in (imdb_archives or {}).items():
            mp.setattr(imdb_data, name, raw)
        yield mp


def data_config(raw_dir: str, data_dir: str):
    import ml_collections
    return ml_collections.ConfigDict({"raw_dir": raw_dir, "data_dir": data_dir})


def prepare_tiny(tmp_root: str) -> dict:
    """Tiny MNIST (64/64) and IMDB (40+40 train, 32+32 test) prepared into one data_dir."""
    from seqjax.data import pipeline
    data_dir = os.path.join(tmp_root, "tfds")
    mnist_raw = os.path.join(tmp_root, "raw_mnist")
    arrays, table = write_tiny_mnist(mnist_raw)
    reviews = tiny_reviews({"train": 40, "test": 32})
    imdb_raw = write_imdb_tree(os.path.join(tmp_root, "raw_imdb"), reviews)
    with tiny_checksums(mnist_table=table, imdb_counts=counts_of(reviews)):
        pipeline.prepare(mnist_data.Mnist, data_config(mnist_raw, data_dir))
        pipeline.prepare(imdb_data.ImdbReviews, data_config(imdb_raw, data_dir))
    return {"data_dir": data_dir, "mnist_raw": mnist_raw, "mnist_arrays": arrays,
            "mnist_table": table, "imdb_raw": imdb_raw, "reviews": reviews}
