"""What the local-file builders (mnist_scenes, flickr8k, por_eng) share.

* ``raw_dir_for(config, name)``: ``config.data.raw_dir`` when set, else the project's
  offline copy ``$SEQJAX_SHARED_DATA/<name>`` (default ``<repo>/../shared/data/<name>``, the
  variable the tests read too); a missing directory is an error that names it.
* ``data_dir_for(config)``: ``config.data.data_dir`` when set, else
  ``pipeline.default_data_dir()`` ($TFDS_DATA_DIR, a clone's ``data/tfds``, ~/tensorflow_datasets).
* ``prepare(builder_cls, builder_config, raw_dir, data_dir)``: build once (TFDS
  ``download_and_prepare`` with ``manual_dir=raw_dir``, array_record files), then return the
  builder; a second call reuses the prepared files. Through ``pipeline.prepare_once``: a
  preparation killed midway is cleaned up by the next.
* ``BatchIterator``: grain over a ``tfds.data_source`` split — a seeded shuffle, repeated
  epochs, a per-example ``transform`` and batching; batch n is ``dataset[n]`` (random access),
  so the iterator's whole state is n (``get_state``/``set_state``, JSON-able).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from seqjax.batching import IndexedIterator
from seqjax.data import pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def raw_dir_for(config, name: str) -> str:
    shared = os.environ.get("SEQJAX_SHARED_DATA") or os.path.join(REPO_ROOT, "..", "shared", "data")
    raw = config.data.raw_dir or os.path.join(shared, name)
    raw = os.path.abspath(raw)
    if not os.path.isdir(raw):
        raise FileNotFoundError(
            f"raw files of {name!r} not found: {raw} is not a directory; set "
            f"--config.data.raw_dir to the folder that holds them (see seqjax/data/{name}.py "
            f"for the files it needs and where to get them)")
    return raw


def data_dir_for(config) -> str:
    return pipeline.data_dir_of(config.data)


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: {path} is missing")
    return path


def prepare(builder_cls, builder_config, raw_dir: str, data_dir: str):
    """The prepared builder (array_record under ``data_dir``), built from ``raw_dir`` if needed."""
    import tensorflow_datasets as tfds  # heavy (≈0.5 s): imported when a dataset is prepared
    tfds.disable_progress_bar()
    return pipeline.prepare_once(
        lambda: builder_cls(config=builder_config, data_dir=data_dir, file_format="array_record"),
        tfds.download.DownloadConfig(manual_dir=raw_dir), source=f"raw files in {raw_dir}")


def stack(examples: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


class BatchIterator(IndexedIterator):
    """Batches of ``transform(example)`` from a random-access ``source`` (a TFDS data source).

    grain: ``MapDataset.source(source).shuffle(seed).repeat().map(transform).batch(size)``;
    batch n is fetched by index, so a resumed run continues with exactly the batch it would
    have drawn next.
    """

    def __init__(self, source, batch_size: int, seed: int, transform: Callable[[Any], dict]):
        import grain  # heavy (≈0.6 s): imported when a training iterator is made
        if len(source) == 0:
            raise ValueError("cannot draw training batches from an empty split")
        self._ds = (grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
                    .map(transform).batch(batch_size, batch_fn=stack))

    def batch(self, n: int):
        return self._ds[n]
