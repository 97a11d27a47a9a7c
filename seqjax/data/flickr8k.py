"""Flickr8k (Hodosh, Young & Hockenmaier 2013) as a TFDS builder over the original layout.

Raw files (``raw_dir``, the unpacked ``Flickr8k_text.zip`` + ``Flickr8k_Dataset.zip`` of UIUC,
distributed for research after a request form):

* ``Flickr8k.token.txt``: ``<image>.jpg#<0-4>\\t<caption>``, five captions per image;
* ``Flickr_8k.trainImages.txt``, ``Flickr_8k.devImages.txt``, ``Flickr_8k.testImages.txt``:
  the official 6000/1000/1000 split, one image file name per line;
* ``images/`` (or ``Flicker8k_Dataset/``, the zip's folder name): the JPEGs.

An image listed in a split but absent from the image folder is skipped, and counted: the
builder prints, per split, how many images it built and how many it skipped, and writes
those counts to ``skipped.json`` beside the prepared files (``counts(builder)`` reads them).
The project's offline copy ``../shared/data/flickr8k`` holds every caption and split but only
100 images (81 train, 13 dev, 6 test), enough for tests and a smoke run.

Each example: ``image`` (S, S, 3) uint8, the JPEG resized to S×S (bilinear, aspect ratio not
kept) at prepare time (S = the builder config's ``image_size``); ``captions`` (5,) strings;
``image_id``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data.local import prepare

SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "validation": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}
TOKEN_FILE = "Flickr8k.token.txt"
IMAGE_DIRS = ("images", "Flicker8k_Dataset", "Flickr8k_Dataset")
CAPTIONS_PER_IMAGE = 5
WHERE = ("Flickr8k_text.zip / Flickr8k_Dataset.zip from UIUC (research use, request form: "
         "https://forms.illinois.edu/sec/1713398); offline copy: ../shared/data/flickr8k")


def read_captions(path: str) -> dict[str, list[str]]:
    """{image file name: its captions in file order} from ``Flickr8k.token.txt``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flickr8k captions file {path} is missing; get {WHERE}")
    caps: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if "\t" not in line or "#" not in line.split("\t", 1)[0]:
                raise ValueError(f"{path}:{n}: expected '<image>.jpg#<k>\\t<caption>', got {line[:80]!r}")
            key, caption = line.split("\t", 1)
            caps.setdefault(key.rsplit("#", 1)[0], []).append(caption.strip())
    return caps


def read_split(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Flickr8k split file {path} is missing; get {WHERE}")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def image_dir(raw_dir: str) -> str:
    for name in IMAGE_DIRS:
        path = os.path.join(raw_dir, name)
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"no image folder in {raw_dir} (looked for {', '.join(IMAGE_DIRS)}); "
                            f"get {WHERE}")


def load_image(path: str, size: int) -> np.ndarray:
    from PIL import Image  # Pillow: only preparing flickr8k decodes JPEGs
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), np.uint8)
    except OSError as e:
        raise ValueError(f"{path} is not a readable image ({e})") from e


def scan(raw_dir: str) -> dict[str, dict]:
    """Per split: {"present": [ids with an image and captions], "missing_image": n,
    "missing_captions": n, "listed": n}."""
    caps = read_captions(os.path.join(raw_dir, TOKEN_FILE))
    images = image_dir(raw_dir)
    out = {}
    for split, fname in SPLIT_FILES.items():
        ids = read_split(os.path.join(raw_dir, fname))
        no_caps = [i for i in ids if i not in caps]
        no_image = [i for i in ids if i in caps and not os.path.isfile(os.path.join(images, i))]
        present = [i for i in ids if i in caps and i not in no_image]
        out[split] = {"present": present, "listed": len(ids), "missing_image": len(no_image),
                      "missing_captions": len(no_caps)}
    if not any(v["present"] for v in out.values()):
        raise FileNotFoundError(f"none of the images listed in the Flickr8k split files is in "
                                f"{images}; get {WHERE}")
    return out


def _examples(raw_dir: str, ids: list[str], size: int):
    caps = read_captions(os.path.join(raw_dir, TOKEN_FILE))
    images = image_dir(raw_dir)
    for image_id in ids:
        c = (caps[image_id] + [""] * CAPTIONS_PER_IMAGE)[:CAPTIONS_PER_IMAGE]
        yield image_id, {"image": load_image(os.path.join(images, image_id), size),
                         "captions": np.asarray(c, dtype=np.object_), "image_id": image_id}


@dataclasses.dataclass
class Flickr8kConfig(tfds.core.BuilderConfig):
    image_size: int = 64


class Flickr8k(tfds.core.GeneratorBasedBuilder):
    """Flickr8k images (resized) with their five captions and the official splits."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put Flickr8k.token.txt, the three Flickr_8k.*Images.txt split files and the image "
        f"folder (images/ or Flicker8k_Dataset/) in manual_dir (config.data.raw_dir): {WHERE}")

    def _info(self):
        s = self.builder_config.image_size
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(s, s, 3), dtype=np.uint8),
            "captions": tfds.features.Tensor(shape=(CAPTIONS_PER_IMAGE,), dtype=np.str_),
            "image_id": tfds.features.Text(),
        }))

    def _split_generators(self, dl_manager):
        raw = str(dl_manager.manual_dir)
        found = scan(raw)
        counts = {k: {kk: vv for kk, vv in v.items() if kk != "present"} | {"built": len(v["present"])}
                  for k, v in found.items()}
        for split, c in counts.items():
            print(f"flickr8k {split}: built {c['built']} of {c['listed']} listed images; skipped "
                  f"{c['missing_image']} missing from {image_dir(raw)} and "
                  f"{c['missing_captions']} without captions")
        self._counts = counts
        size = self.builder_config.image_size
        return {split: _examples(raw, v["present"], size) for split, v in found.items()
                if v["present"]}

    def _generate_examples(self):  # the split generators above yield the examples
        raise NotImplementedError

    def download_and_prepare(self, *args, **kwargs):
        super().download_and_prepare(*args, **kwargs)
        counts = getattr(self, "_counts", None)
        if counts is not None:
            with open(os.path.join(str(self.data_dir), "skipped.json"), "w") as f:
                json.dump(counts, f, indent=2)


def counts(builder) -> dict:
    """{split: {"listed", "built", "missing_image", "missing_captions"}} of a prepared builder."""
    with open(os.path.join(str(builder.data_dir), "skipped.json")) as f:
        return json.load(f)


def load(raw_dir: str, data_dir: str, *, image_size: int = 64):
    """(builder, {split: data source}) prepared under ``data_dir`` on first use. Splits with no
    image present are absent from the dict."""
    found = scan(raw_dir)  # the name records how many images were present: a fuller raw_dir
    built = sum(len(v["present"]) for v in found.values())  # prepares anew
    config = Flickr8kConfig(name=f"{image_size}px_{built}images", image_size=image_size)
    builder = prepare(Flickr8k, config, raw_dir, data_dir)
    return builder, builder.as_data_source()
