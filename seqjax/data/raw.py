"""Raw files of the real datasets: checksums, and errors that say what is wrong and what to do.

Every real-data builder (mnist, imdb_reviews, the three time series) reads its raw files
in their original layout from ``config.data.raw_dir`` (TFDS's ``manual_dir``). When
``raw_dir`` is empty the builder downloads the same files from their official URLs through
TFDS's download manager (machines with internet only); either way each file is checked
against the sha256 below before anything is read from it.

* ``RawFile``: a file's original name, size, sha256 and where to get it.
* ``manual_dir(dl_manager)``: the raw directory TFDS was given, or None (then: download).
* ``checked(dataset, path, raw)``: the path, after checking that the file is there and is
  the published one; otherwise ``FileNotFoundError`` / ``RawDataError`` naming the file,
  the expected size and sha256, and the URL to get it from.
* ``fetch(dataset, dl_manager, files)``: {name: checked path} from the raw dir or the URLs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Iterable


class RawDataError(ValueError):
    """A raw file is there but is not the published one (checksum, size or format)."""


@dataclasses.dataclass(frozen=True)
class RawFile:
    name: str      # the original file name (also its name inside raw_dir)
    size: int      # bytes
    sha256: str
    url: str       # the official download


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def describe(raw: RawFile) -> str:
    return f"{raw.name} ({raw.size:,} bytes, sha256 {raw.sha256})"


def missing_error(dataset: str, raw_dir: str, files: Iterable[RawFile],
                  layout: str = "") -> FileNotFoundError:
    files = list(files)
    wanted = "\n".join(f"  {describe(f)}\n    from {f.url}" for f in files)
    return FileNotFoundError(
        f"{dataset}: raw files missing from {raw_dir} (config.data.raw_dir). It needs"
        f"{' ' + layout if layout else ''}:\n{wanted}\n"
        f"Put the original files there under these names, or leave data.raw_dir empty on a "
        f"machine with internet and TFDS downloads them.")


def checked(dataset: str, path: str, raw: RawFile) -> str:
    """``path`` if it is the published ``raw`` file; a clear error otherwise."""
    if not os.path.isfile(path):
        raise missing_error(dataset, os.path.dirname(path) or ".", [raw])
    size = os.path.getsize(path)
    digest = sha256_of(path)
    if size != raw.size or digest != raw.sha256:
        raise RawDataError(
            f"{dataset}: raw file {path} is not the published {raw.name}: it has {size:,} "
            f"bytes and sha256 {digest}; expected {raw.size:,} bytes and sha256 {raw.sha256}. "
            f"It is corrupt, truncated or another version: get the original from {raw.url}.")
    return path


def manual_dir(dl_manager) -> str | None:
    """The raw directory TFDS was given (DownloadConfig(manual_dir=...)), else None.

    Without one TFDS falls back to ``<data_dir>/downloads/manual``; when that holds nothing
    the files are downloaded. (``pipeline.prepare`` refuses a given raw_dir that is missing
    or empty, so an empty manual dir here always means "none was given".)
    """
    try:
        return os.fspath(dl_manager.manual_dir)
    except AssertionError as e:
        if "not enabled" in str(e) or "does not exist or is empty" in str(e):
            return None
        raise

def download(dataset: str, dl_manager, raw: RawFile) -> str:
    """Download ``raw.url`` with TFDS's download manager (machines with internet only)."""
    try:
        return os.fspath(dl_manager.download(raw.url))
    except Exception as e:  # noqa: BLE001 — any network failure gets the same advice
        raise FileNotFoundError(
            f"{dataset}: could not download {raw.url} ({type(e).__name__}: {e}). Without "
            f"internet, put {describe(raw)} in a directory and pass it as "
            f"--config.data.raw_dir.") from e


def fetch(dataset: str, dl_manager, files: Iterable[RawFile]) -> dict[str, str]:
    """{name: path} of ``files``, each checked: from the raw dir if given, else downloaded."""
    files = list(files)
    raw_dir = manual_dir(dl_manager)
    if raw_dir is None:
        return {f.name: checked(dataset, download(dataset, dl_manager, f), f) for f in files}
    absent = [f for f in files if not os.path.isfile(os.path.join(raw_dir, f.name))]
    if absent:
        raise missing_error(dataset, raw_dir, absent)
    return {f.name: checked(dataset, os.path.join(raw_dir, f.name), f) for f in files}
