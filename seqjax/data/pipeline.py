"""Prepared TFDS datasets → grain batches, for the real-data tasks (smnist, imdb, forecast).

* ``prepare(builder_cls, data_config)``: the builder, its array_record files prepared in
  ``data.data_dir`` (default ``default_data_dir()``) from ``data.raw_dir`` (TFDS manual_dir)
  the first time, reused afterwards (raw files are then not needed). An empty
  ``raw_dir`` lets TFDS download the official files (machines with internet).
  No TensorFlow: TFDS writes and reads array_record with its numpy code paths.
  A preparation killed midway leaves TFDS's ``incomplete.*`` folder beside the version
  folder; the next preparation removes it (``prepare_once``, under a lock on the dataset's
  folder, so a preparation still running in another process is left alone).
* ``GrainIterator``: training batches. grain's ``MapDataset`` over record indices:
  this host's shard (``jax.process_index()`` of ``jax.process_count()``), a seeded shuffle,
  batches of ``batch_size // process_count`` (the last partial batch of an epoch dropped),
  repeated with a new shuffle every epoch, then ``load_batch(indices)`` reads the records
  with one ``data_source.__getitems__`` call per batch and makes the arrays. Iterated
  with grain's prefetch threads. ``get_state()`` is grain's iterator state made
  JSON-able (the trainer saves it in each checkpoint), so a resumed run draws exactly
  the batches the uninterrupted run would have drawn, mid-epoch included.
* ``eval_indices``: the fixed evaluation subset and order; ``batched`` cuts it into batches.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import time
from typing import Any, Callable

import jax
import numpy as np

from seqjax.batching import Batch, DataIterator

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_data_dir(package_root: str = REPO_ROOT) -> str:
    """Where prepared datasets go when ``data.data_dir`` is empty: ``$TFDS_DATA_DIR`` when set
    (TFDS's own variable); else ``<clone>/data/tfds`` when seqjax runs from a clone (the folder
    above ``seqjax/`` holds ``pyproject.toml``); else TFDS's default, ``~/tensorflow_datasets``.
    Never a folder inside site-packages, where an installed seqjax lives."""
    env = os.environ.get("TFDS_DATA_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    parts = set(os.path.normpath(package_root).split(os.sep))
    installed = bool(parts & {"site-packages", "dist-packages"})
    if os.path.isfile(os.path.join(package_root, "pyproject.toml")) and not installed:
        return os.path.join(package_root, "data", "tfds")
    return os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def data_dir_of(data_config) -> str:
    return os.path.abspath(data_config.data_dir or default_data_dir())


def prepare(builder_cls, data_config):
    """The builder of ``builder_cls`` with its data prepared under ``data.data_dir``."""
    import tensorflow_datasets as tfds  # heavy (≈0.5 s): imported when a dataset is prepared
    data_dir = data_dir_of(data_config)
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return builder
    raw = data_config.raw_dir
    if raw and (not os.path.isdir(raw) or not os.listdir(raw)):
        raise FileNotFoundError(
            f"{builder.name}: data.raw_dir={raw!r} is "
            f"{'empty' if os.path.isdir(raw) else 'not a directory'}. It should hold the raw "
            f"files of {builder.name} (see {builder_cls.__module__}); or leave it empty on a "
            f"machine with internet to download them.")
    source = f"raw files in {os.path.abspath(raw)}" if raw else "downloaded files"
    tfds.disable_progress_bar()
    return prepare_once(
        lambda: builder_cls(data_dir=data_dir, file_format="array_record"),
        tfds.download.DownloadConfig(manual_dir=os.path.abspath(raw) if raw else None,
                                     try_download_gcs=False),  # never someone else's copy
        source=source)


def incomplete_dirs(builder) -> list[str]:
    """What TFDS is writing, or a killed preparation left, for ``builder``'s version: TFDS
    prepares into ``<data_dir>/<name>[/<config>]/incomplete.<random>_<version>/`` and renames
    that to ``<version>/`` when done."""
    parent = os.path.dirname(os.path.normpath(str(builder.data_dir)))
    return sorted(glob.glob(os.path.join(glob.escape(parent), "incomplete.*")))


@contextlib.contextmanager
def _preparing(builder):
    """Hold a lock on the dataset's folder for the block; yields whether it is held (False on
    a file system without POSIX locks: then no other process's files are touched)."""
    parent = os.path.dirname(os.path.normpath(str(builder.data_dir)))
    os.makedirs(parent, exist_ok=True)
    fd = os.open(os.path.join(parent, ".prepare.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)  # waits for a preparation in another process
            held = True
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            held = False
        yield held
    finally:
        os.close(fd)  # releases the lock


def prepare_once(make_builder, download_config, source: str = ""):
    """``make_builder()``'s builder with its data prepared: once, under a lock on the dataset's
    folder (two runs starting together prepare it once), after removing the ``incomplete.*``
    folders a preparation killed midway left (as the run removes its own stale temp files).
    A preparation says what it prepares from ``source`` into which folder, and how long it
    took (minutes for the larger datasets, with TFDS's progress bars off)."""
    builder = make_builder()
    if builder.is_prepared():
        return builder
    with _preparing(builder) as held:
        builder = make_builder()  # another process may have prepared it while this one waited
        if builder.is_prepared():
            return builder
        for path in incomplete_dirs(builder) if held else ():
            print(f"{builder.name}: removing {path}, left by a preparation that was stopped "
                  f"midway", flush=True)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        print(f"{builder.name}: preparing {builder.info.full_name}"
              f"{' from ' + source if source else ''} into {builder.data_dir} (once)", flush=True)
        start = time.perf_counter()
        builder.download_and_prepare(download_config=download_config)
        print(f"{builder.name}: prepared {builder.info.full_name} in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return builder


def split_source(builder, split: str):
    """``tfds.data_source`` of one prepared split (random access, numpy examples)."""
    return builder.as_data_source(split=split)


def read_records(source, indices) -> list[dict]:
    """Examples ``indices`` of a TFDS data source, in that order, in one batched read."""
    return source.__getitems__([int(i) for i in indices])


def per_host_batch(batch_size: int) -> int:
    hosts = jax.process_count()
    if batch_size % hosts:
        raise ValueError(f"train.batch_size={batch_size} is not divisible by the {hosts} hosts")
    return batch_size // hosts


def _json_state(state: Any) -> Any:
    """grain's iterator state as JSON: dicts as they are, bytes (DataLoader) wrapped."""
    if isinstance(state, bytes):
        return {"grain_bytes_b64": base64.b64encode(state).decode("ascii")}
    return json.loads(json.dumps(state))


def _grain_state(state: Any) -> Any:
    if isinstance(state, dict) and set(state) == {"grain_bytes_b64"}:
        return base64.b64decode(state["grain_bytes_b64"])
    return state


class GrainIterator(DataIterator):
    """Endless training batches over ``num_records`` records (see the module docstring).

    ``load_batch(indices_int64[b]) -> Batch`` turns record indices into arrays.
    ``shard``: (index, count), default (jax.process_index(), jax.process_count()).
    """

    def __init__(self, num_records: int, batch_size: int, seed: int,
                 load_batch: Callable[[np.ndarray], Batch], *, shard: tuple[int, int] | None = None,
                 prefetch_threads: int = 1, prefetch_buffer: int = 4):
        import grain  # heavy (≈0.6 s): imported when a training iterator is made
        index, count = shard if shard is not None else (jax.process_index(), jax.process_count())
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} is not in [0, {count})")
        shard_size = len(range(index, num_records, count))
        if batch_size <= 0 or shard_size < batch_size:
            raise ValueError(f"batch size {batch_size} needs at least that many records per host; "
                             f"this host's shard holds {shard_size} of {num_records}")
        self.batches_per_epoch = shard_size // batch_size
        ds = (grain.MapDataset.range(num_records)
              .slice(slice(index, None, count))
              .shuffle(seed=seed)
              .batch(batch_size, drop_remainder=True)
              .repeat(None)
              .map(load_batch))
        self._iter_ds = ds.to_iter_dataset(grain.ReadOptions(
            num_threads=prefetch_threads, prefetch_buffer_size=prefetch_buffer))
        self._it = iter(self._iter_ds)

    def __next__(self) -> Batch:
        return next(self._it)

    def get_state(self) -> Any:
        return _json_state(self._it.get_state())

    def set_state(self, state: Any) -> None:
        self._it = iter(self._iter_ds)  # a fresh iterator: drop what was prefetched
        self._it.set_state(_grain_state(state))


def eval_indices(num_records: int, eval_size: int, seed: int, split: str = "test") -> np.ndarray:
    """The fixed evaluation examples: the first ``eval_size`` of a ``seed`` permutation.

    A permutation (not the first records) so that a subset is a fair sample and every
    batch mixes the classes (IMDB's records are stored negatives first).
    """
    if not isinstance(eval_size, int) or not 0 < eval_size <= num_records:
        raise ValueError(f"task.eval_size={eval_size!r} must lie in [1, {num_records}] (the "
                         f"{num_records} examples of the {split} split)")
    return np.random.default_rng(seed).permutation(num_records)[:eval_size]


def batched(indices: np.ndarray, batch_size: int, load_batch) -> list[Batch]:
    return [load_batch(indices[i:i + batch_size]) for i in range(0, len(indices), batch_size)]
