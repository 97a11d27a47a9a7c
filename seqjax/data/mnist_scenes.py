"""mnist_scenes: a captioning dataset made from MNIST — 64×64 canvases with 1–3 digits.

Raw files (``raw_dir``): the four original MNIST IDX files ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``
(gzipped or not), from http://yann.lecun.com/exdb/mnist/ or the TFDS mirror
https://storage.googleapis.com/cvdf-datasets/mnist/; the project's offline copy is
``../shared/data/mnist``.

A scene is drawn on a 64×64 canvas split into a 2×2 grid of 32×32 cells; each digit sits in a
cell, shifted by 0–4 px (the pixel-wise max where strokes meet). The caption follows from the
layout (one caption per image, so exact match is well defined):

* 1 digit, anywhere on the canvas:            "a seven" ("an eight")
* 2 digits in one column (top one first):     "a seven above a two"
* 2 digits in one row (left one first):       "a seven left of a two"
* 3 digits in 3 of the 4 cells (reading order, row by row): "three digits: four, one and nine"

Digits come from MNIST train[:55000] for the ``train`` split, train[55000:] for
``validation`` and the MNIST test set for ``test``, so no digit image crosses splits. Every
scene is a function of (``seed``, split, index): the builder config fixes the seed and sizes.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data.local import prepare
from seqjax.data.mnist import read_split

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CANVAS, CELL, DIGIT, JITTER = 64, 32, 28, 4
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLIT_SOURCES = {"train": ("train", 0, 55000), "validation": ("train", 55000, 60000),
                 "test": ("test", 0, 10000)}


# --------------------------------------------------------------------------- MNIST files


def find_mnist_file(raw_dir: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        path = os.path.join(raw_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"MNIST file {stem}(.gz) not found in {raw_dir}; get it from "
        f"http://yann.lecun.com/exdb/mnist/ (or the offline copy ../shared/data/mnist)")


def load_mnist(raw_dir: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) of MNIST ``part`` ("train" or "test")."""
    img_stem, lbl_stem = MNIST_FILES[part]
    return read_split(find_mnist_file(raw_dir, img_stem), find_mnist_file(raw_dir, lbl_stem))


# --------------------------------------------------------------------------- scenes


def _a(name: str) -> str:
    return f"an {name}" if name == "eight" else f"a {name}"  # "a one", "an eight"


def caption_for(layout: str, digits: list[int]) -> str:
    n = [NAMES[d] for d in digits]
    if layout == "one":
        return _a(n[0])
    if layout == "above":
        return f"{_a(n[0])} above {_a(n[1])}"
    if layout == "left":
        return f"{_a(n[0])} left of {_a(n[1])}"
    return f"three digits: {n[0]}, {n[1]} and {n[2]}"


def make_scene(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray):
    """(canvas (64, 64) uint8, caption, digits (3,) int32 padded with -1, layout name)."""
    layout = rng.choice(["one", "above", "left", "three"])
    if layout == "one":
        corners = [tuple(rng.integers(0, CANVAS - DIGIT + 1, size=2))]
    else:
        if layout == "above":
            col = rng.integers(2)
            cells = [(0, col), (1, col)]
        elif layout == "left":
            row = rng.integers(2)
            cells = [(row, 0), (row, 1)]
        else:
            skip = rng.integers(4)
            cells = [(r, c) for r in range(2) for c in range(2) if 2 * r + c != skip]
        corners = [(r * CELL + rng.integers(0, JITTER + 1), c * CELL + rng.integers(0, JITTER + 1))
                   for r, c in cells]
    picks = rng.integers(0, len(images), size=len(corners))
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    for (y, x), i in zip(corners, picks):
        np.maximum(canvas[y:y + DIGIT, x:x + DIGIT], images[i], out=canvas[y:y + DIGIT, x:x + DIGIT])
    digits = [int(labels[i]) for i in picks]
    padded = np.full((3,), -1, np.int32)
    padded[:len(digits)] = digits
    return canvas, caption_for(str(layout), digits), padded, str(layout)


def generate_split(raw_dir: str, split: str, num: int, seed: int):
    """Yield (index, example dict) for ``num`` scenes of ``split``; deterministic in seed."""
    part, lo, hi = SPLIT_SOURCES[split]
    images, labels = load_mnist(raw_dir, part)
    images, labels = images[lo:hi], labels[lo:hi]
    rng = np.random.default_rng([seed, list(SPLIT_SOURCES).index(split)])
    for i in range(num):
        canvas, caption, digits, _ = make_scene(rng, images, labels)
        yield i, {"image": canvas, "caption": caption, "digits": digits}


# --------------------------------------------------------------------------- TFDS builder


@dataclasses.dataclass
class MnistScenesConfig(tfds.core.BuilderConfig):
    num_train: int = 20000
    num_validation: int = 1000
    num_test: int = 1000
    seed: int = 0


class MnistScenes(tfds.core.GeneratorBasedBuilder):
    """mnist_scenes: 64×64 canvases of 1–3 MNIST digits with grammar captions."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": '"a one" (1.0.0 wrote "an one")', "1.0.0": "first version"}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the four MNIST IDX files (train/t10k images and labels, .gz or not) in "
        "manual_dir (config.data.raw_dir), e.g. ../shared/data/mnist.")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(CANVAS, CANVAS), dtype=np.uint8),
            "caption": tfds.features.Text(),
            "digits": tfds.features.Tensor(shape=(3,), dtype=np.int32),
        }))

    def _split_generators(self, dl_manager):
        raw, c = str(dl_manager.manual_dir), self.builder_config
        return {"train": generate_split(raw, "train", c.num_train, c.seed),
                "validation": generate_split(raw, "validation", c.num_validation, c.seed),
                "test": generate_split(raw, "test", c.num_test, c.seed)}

    def _generate_examples(self):  # the split generators above yield the examples
        raise NotImplementedError


def load(raw_dir: str, data_dir: str, *, num_train: int, num_validation: int, num_test: int,
         seed: int = 0):
    """{split: data source} of mnist_scenes, prepared under ``data_dir`` on first use."""
    name = f"n{num_train}_{num_validation}_{num_test}_seed{seed}"
    config = MnistScenesConfig(name=name, num_train=num_train, num_validation=num_validation,
                        num_test=num_test, seed=seed)
    return prepare(MnistScenes, config, raw_dir, data_dir).as_data_source()
