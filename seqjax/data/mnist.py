"""MNIST from the four original IDX files (LeCun, Cortes & Burges).

Raw layout (``config.data.raw_dir``): the four files exactly as published, names unchanged::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

Each is checked against its published size and sha256 (the values TFDS and torchvision
list) before it is read. Without ``raw_dir`` they are downloaded from TFDS's mirror
(``https://storage.googleapis.com/cvdf-datasets/mnist/``).

Prepared dataset ``mnist`` 1.0.0 (array_record): splits ``train`` (60,000) and ``test``
(10,000), in the original file order (record i is example i of the IDX files). Features:
``image`` uint8 (28, 28) and ``label`` (ClassLabel, 10 classes). (TFDS's catalog ``mnist``
stores a PNG-encoded (28, 28, 1) Image; a raw uint8 tensor is faster to decode without
TensorFlow.)

``read_idx(path)`` reads any IDX file (gzip or not) into a numpy array; other datasets
built from MNIST digits can use it.
"""

from __future__ import annotations

import gzip

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import raw as raw_lib
from seqjax.data.raw import RawDataError, RawFile

URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
RAW_FILES = {
    "train_images": RawFile("train-images-idx3-ubyte.gz", 9912422,
                            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                            URL + "train-images-idx3-ubyte.gz"),
    "train_labels": RawFile("train-labels-idx1-ubyte.gz", 28881,
                            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                            URL + "train-labels-idx1-ubyte.gz"),
    "test_images": RawFile("t10k-images-idx3-ubyte.gz", 1648877,
                           "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                           URL + "t10k-images-idx3-ubyte.gz"),
    "test_labels": RawFile("t10k-labels-idx1-ubyte.gz", 4542,
                           "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                           URL + "t10k-labels-idx1-ubyte.gz"),
}
NUM_EXAMPLES = {"train": 60000, "test": 10000}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
    """The array in an IDX file (``.gz`` or plain): header ``0 0 <dtype> <ndim>``, then
    ``ndim`` big-endian uint32 sizes, then the data. Raises ``RawDataError`` naming the file
    when the header or the length is wrong."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise RawDataError(f"{path} is not a readable {'gzip ' if opener is gzip.open else ''}"
                           f"IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise RawDataError(f"{path} is not an IDX file: its header is {data[:4]!r}, expected "
                           f"0x00 0x00 <dtype code> <ndim> (e.g. 0x00000803 for images)")
    ndim, dtype = data[3], np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4)) if len(data) >= offset else ()
    expected = offset + int(np.prod(shape)) * dtype.itemsize if shape else None
    if expected is None or len(data) != expected:
        raise RawDataError(f"{path}: the IDX header announces shape {shape} ({expected} bytes "
                           f"in all) but the file holds {len(data)} bytes")
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def read_split(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of one split, checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise RawDataError(f"{images_path}: expected uint8 images of shape (N, 28, 28), got "
                           f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or labels.size and labels.max() > 9:
        raise RawDataError(f"{labels_path}: expected {len(images)} labels in 0..9 (one per "
                           f"image of {images_path}), got {labels.dtype} {labels.shape}")
    return images, labels


class Mnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """MNIST from the original IDX files (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "seqjax: from the four original IDX .gz files, in file order."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the four original MNIST IDX files (" + ", ".join(f.name for f in RAW_FILES.values())
        + ") in the manual directory (config.data.raw_dir). Official mirror: " + URL)
    RAW_FILES = RAW_FILES

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="MNIST handwritten digits, 28x28 uint8, from the original IDX files.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
            homepage="http://yann.lecun.com/exdb/mnist/",
            disable_shuffling=True,  # keep file order; grain shuffles
        )

    def _split_generators(self, dl_manager):
        paths = raw_lib.fetch("mnist", dl_manager, self.RAW_FILES.values())
        path = lambda key: paths[self.RAW_FILES[key].name]
        return {split: self._generate_examples(path(f"{split}_images"), path(f"{split}_labels"))
                for split in ("train", "test")}

    def _generate_examples(self, images_path, labels_path):
        images, labels = read_split(images_path, labels_path)
        for i in range(len(images)):
            yield i, {"image": images[i], "label": int(labels[i])}
