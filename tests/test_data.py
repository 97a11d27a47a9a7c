"""The real-data layer: builders on tiny raw files in the official layouts and on the
real files in ../shared/data, clear errors for missing/corrupt files, the text pipeline,
and the grain iterator (deterministic per seed, sharded, resumable mid-epoch).

The two heaviest preparations (all of MNIST, all of IMDB: ≈ 20 s each) are marked ``slow``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqjax.data import imdb as imdb_data
from seqjax.data import mnist as mnist_data
from seqjax.data import pipeline, raw, timeseries
from seqjax.data.raw import RawDataError
from tests.realdata_helpers import (REPO, counts_of, data_config, idx_bytes, no_network,  # noqa: F401
                                    prepare_tiny, raw_file_for, shared, tiny_checksums,
                                    tiny_reviews, write_gz, write_imdb_archive, write_imdb_tree,
                                    write_tiny_mnist)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return prepare_tiny(str(tmp_path_factory.mktemp("tiny")))


def records(builder, split):
    source = builder.as_data_source(split=split)
    return pipeline.read_records(source, range(len(source)))


# ----------------------------------------------------------------------------- MNIST


def test_read_idx_roundtrip_and_bad_files(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_gz(tmp_path / "a.gz", idx_bytes(a))
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    np.testing.assert_array_equal(mnist_data.read_idx(str(tmp_path / "a.gz")), a)
    np.testing.assert_array_equal(mnist_data.read_idx(str(tmp_path / "a.idx")), a)
    (tmp_path / "short.idx").write_bytes(idx_bytes(a)[:-5])
    with pytest.raises(RawDataError, match=r"short.idx: the IDX header announces shape \(2, 28, 28\)"):
        mnist_data.read_idx(str(tmp_path / "short.idx"))
    (tmp_path / "text.idx").write_bytes(b"hello world")
    with pytest.raises(RawDataError, match=r"text.idx is not an IDX file"):
        mnist_data.read_idx(str(tmp_path / "text.idx"))
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(RawDataError, match=r"bad.gz is not a readable gzip IDX file"):
        mnist_data.read_idx(str(tmp_path / "bad.gz"))


def test_mnist_builder_keeps_every_example_in_file_order(tiny):
    builder = pipeline.prepare(mnist_data.Mnist, data_config("", tiny["data_dir"]))  # prepared
    assert builder.info.splits["train"].num_examples == 64
    assert builder.info.splits["test"].num_examples == 64
    for split in ("train", "test"):
        recs = records(builder, split)
        images = np.stack([r["image"] for r in recs])
        np.testing.assert_array_equal(images, tiny["mnist_arrays"][f"{split}_images"])
        np.testing.assert_array_equal([r["label"] for r in recs],
                                      tiny["mnist_arrays"][f"{split}_labels"])
        assert images.dtype == np.uint8


def test_mnist_missing_file_names_it_with_checksum_and_url(tmp_path):
    write_tiny_mnist(str(tmp_path / "raw"))
    os.remove(tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as e:
        pipeline.prepare(mnist_data.Mnist, data_config(str(tmp_path / "raw"), str(tmp_path / "d")))
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz (4,542 bytes, sha256 f7ae60f92e00ec6d" in msg
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz" in msg
    assert "train-images" not in msg  # only what is missing
    assert str(tmp_path / "raw") in msg


def test_mnist_corrupt_file_gives_expected_checksum(tmp_path):
    _, table = write_tiny_mnist(str(tmp_path / "raw"))  # tiny files: not the published ones
    with pytest.raises(RawDataError) as e:
        pipeline.prepare(mnist_data.Mnist, data_config(str(tmp_path / "raw"), str(tmp_path / "d")))
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz is not the published" in msg
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in msg
    assert "9,912,422 bytes" in msg and table["train_images"].sha256 in msg
    assert "get the original from https://storage.googleapis.com/cvdf-datasets/mnist/" in msg
    assert not os.path.exists(tmp_path / "d" / "mnist" / "1.0.0" / "dataset_info.json")


def test_raw_dir_that_is_not_a_directory_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mnist: data.raw_dir='.*nowhere' is not a directory"):
        pipeline.prepare(mnist_data.Mnist, data_config(str(tmp_path / "nowhere"), str(tmp_path)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"mnist: data.raw_dir='.*empty' is empty"):
        pipeline.prepare(mnist_data.Mnist, data_config(str(tmp_path / "empty"), str(tmp_path)))


def test_real_mnist_files_match_published_checksums_and_known_digits():
    raw_dir = shared("mnist")
    for f in mnist_data.RAW_FILES.values():
        raw.checked("mnist", os.path.join(raw_dir, f.name), f)
    p = lambda key: os.path.join(raw_dir, mnist_data.RAW_FILES[key].name)
    train_y = mnist_data.read_idx(p("train_labels"))
    test_x, test_y = mnist_data.read_split(p("test_images"), p("test_labels"))
    assert train_y.shape == (60000,) and test_x.shape == (10000, 28, 28)
    assert list(train_y[:8]) == [5, 0, 4, 1, 9, 2, 1, 3] and list(test_y[:4]) == [7, 2, 1, 0]
    assert list(np.bincount(train_y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(test_y)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
def test_real_mnist_prepares_60000_and_10000(tmp_path):
    builder = pipeline.prepare(mnist_data.Mnist, data_config(shared("mnist"), str(tmp_path)))
    assert builder.info.splits["train"].num_examples == 60000
    assert builder.info.splits["test"].num_examples == 10000
    train = builder.as_data_source(split="train")
    test = builder.as_data_source(split="test")
    assert (len(train), len(test)) == (60000, 10000)
    raw_dir = shared("mnist")
    first = mnist_data.read_idx(os.path.join(raw_dir, "train-images-idx3-ubyte.gz"))[0]
    np.testing.assert_array_equal(train[0]["image"], first)
    assert train[0]["label"] == 5 and test[0]["label"] == 7 and train[59999]["label"] == 8
    labels = [r["label"] for r in pipeline.read_records(test, range(10000))]
    assert list(np.bincount(labels)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ----------------------------------------------------------------------------- IMDB


def _expected_records(reviews, split):
    out = []
    for label_i, label in enumerate(("neg", "pos")):
        for i, rating, text in sorted(reviews[(split, label)]):
            out.append((label_i, rating, text))
    return out


@pytest.mark.parametrize("layout", ["parent_of_aclImdb", "aclImdb_itself", "repack_tar_xz",
                                    "original_tar_gz"])
def test_imdb_builder_reads_every_layout(tmp_path, layout):
    reviews = tiny_reviews({"train": 5, "test": 3}, seed=1)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    patches = {}
    if layout in ("parent_of_aclImdb", "aclImdb_itself"):
        write_imdb_tree(str(raw_dir), reviews)
        if layout == "aclImdb_itself":
            raw_dir = raw_dir / "aclImdb"
    else:
        name, mode = ((imdb_data.REPACK.name, "w:xz") if layout == "repack_tar_xz"
                      else (imdb_data.ORIGINAL.name, "w:gz"))
        path = write_imdb_archive(str(raw_dir / name), reviews, mode)
        patches = {"REPACK" if layout == "repack_tar_xz" else "ORIGINAL": raw_file_for(path)}
    with tiny_checksums(imdb_counts=counts_of(reviews), imdb_archives=patches):
        builder = pipeline.prepare(imdb_data.ImdbReviews,
                                   data_config(str(raw_dir), str(tmp_path / "d")))
    for split in ("train", "test"):
        got = [(r["label"], int(r["rating"]), r["text"].decode()) for r in records(builder, split)]
        assert got == _expected_records(reviews, split)  # negatives first, by file id
    assert builder.info.features["label"].names == ["neg", "pos"]


def test_imdb_missing_folder_and_incomplete_tree(tmp_path):
    reviews = tiny_reviews({"train": 3, "test": 2})
    write_imdb_tree(str(tmp_path / "raw"), reviews)
    shutil.rmtree(tmp_path / "raw" / "aclImdb" / "test" / "neg")
    with pytest.raises(RawDataError, match=r"folder .*aclImdb/test/neg is missing; expected the "
                                           r"extracted tree aclImdb/\{train,test\}/\{pos,neg\}"):
        pipeline.prepare(imdb_data.ImdbReviews, data_config(str(tmp_path / "raw"), str(tmp_path)))
    write_imdb_tree(str(tmp_path / "raw"), reviews)  # complete again, but only 3 + 2 per folder
    with pytest.raises(RawDataError) as e:
        pipeline.prepare(imdb_data.ImdbReviews, data_config(str(tmp_path / "raw"), str(tmp_path)))
    assert "does not hold the full dataset: train/neg: 3 (expected 12500)" in str(e.value)
    assert "test/pos: 2 (expected 12500)" in str(e.value)


def test_imdb_corrupt_or_missing_archive(tmp_path):
    reviews = tiny_reviews({"train": 2, "test": 2})
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / "notes.txt").write_text("no reviews here")
    with pytest.raises(FileNotFoundError) as e:
        pipeline.prepare(imdb_data.ImdbReviews, data_config(str(raw_dir), str(tmp_path / "d")))
    msg = str(e.value)
    assert "aclImdb_v1_text_labelled.tar.xz (19,039,508 bytes, sha256 fa21a475" in msg
    assert "aclImdb_v1.tar.gz (84,125,825 bytes, sha256 c40f74a1" in msg
    assert "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz" in msg
    assert "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt" in msg
    write_imdb_archive(str(raw_dir / imdb_data.REPACK.name), reviews, "w:xz")
    with pytest.raises(RawDataError, match=r"aclImdb_v1_text_labelled.tar.xz is not the published "
                                           r".* expected 19,039,508 bytes and sha256 fa21a475"):
        pipeline.prepare(imdb_data.ImdbReviews, data_config(str(raw_dir), str(tmp_path / "d")))


def test_tokenize_vocabulary_and_padding():
    assert imdb_data.tokenize("Don't miss it!<br /><br />The director's BEST film, 10/10.") == \
        ["don't", "miss", "it", "the", "director's", "best", "film", "10", "10"]
    assert imdb_data.tokenize(b"caf\xc3\xa9 -- 'quoted' well_done") == \
        ["café", "quoted", "well", "done"]
    vocab = imdb_data.Vocabulary.build(["b a c a", "a b d"], size=4)   # pad, oov + 2 words
    assert vocab.words == ["<pad>", "<oov>", "a", "b"]                 # by count, then a-z
    assert vocab.encode("a c b z") == [2, 1, 3, 1]
    assert vocab.decode([2, 3, 0, 0]) == "a b"
    tokens, lengths = imdb_data.pad_batch([[5, 6, 7, 8], [9], []], 3, "pre")
    np.testing.assert_array_equal(tokens, [[6, 7, 8], [9, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 1])
    tokens, _ = imdb_data.pad_batch([[5, 6, 7, 8]], 3, "post")
    np.testing.assert_array_equal(tokens, [[5, 6, 7]])
    assert tokens.dtype == np.int32
    with pytest.raises(ValueError, match=r"task.truncate='middle' is not allowed; choose one of: pre, post"):
        imdb_data.pad_batch([[1]], 3, "middle")
    with pytest.raises(ValueError, match=r"vocabulary size must be an integer >= 3"):
        imdb_data.Vocabulary.build(["a"], size=2)


@pytest.mark.slow
def test_real_imdb_prepares_25000_and_25000(tmp_path):
    builder = pipeline.prepare(imdb_data.ImdbReviews, data_config(shared("imdb"), str(tmp_path)))
    assert builder.info.splits["train"].num_examples == 25000
    assert builder.info.splits["test"].num_examples == 25000
    train = builder.as_data_source(split="train")
    first_pos = train[12500]  # train/pos/0_9.txt
    assert first_pos["text"].decode().startswith("Bromwell High is a cartoon comedy.")
    assert (first_pos["label"], first_pos["rating"]) == (1, 9)
    labels = [r["label"] for r in pipeline.read_records(train, range(0, 25000, 100))]
    assert labels == [0] * 125 + [1] * 125


# ----------------------------------------------------------------------------- series


KNOWN_ROWS = {  # name: (rows, first (date, value), last (date, value), sum)
    "airline_passengers": (144, ("1949-01", 112.0), ("1960-12", 432.0), 40363.0),
    "daily_min_temperatures": (3650, ("1981-01-01", 20.7), ("1990-12-31", 13.0), None),
    "monthly_sunspots": (2820, ("1749-01", 58.0), ("1983-12", 33.4), None),
}


@pytest.mark.parametrize("name", sorted(KNOWN_ROWS))
def test_real_series_prepare_with_known_rows(tmp_path, name):
    builder = pipeline.prepare(timeseries.SERIES[name], data_config(shared(name), str(tmp_path)))
    dates, values = timeseries.load_series(builder)
    rows, first, last, total = KNOWN_ROWS[name]
    assert len(values) == len(dates) == rows
    assert (dates[0], values[0]) == first and (dates[-1], values[-1]) == last
    assert values.dtype == np.float64
    if total is not None:
        assert values.sum() == total  # exact: the values are stored as float64 bytes
    assert np.all(np.diff([int(d[:4]) for d in dates]) >= 0)  # chronological


def test_corrupt_csv_and_bad_rows(tmp_path):
    src = os.path.join(shared("airline_passengers"), "airline-passengers.csv")
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    text = open(src).read().replace('"1949-03",132', '"1949-03",13x')
    (raw_dir / "airline-passengers.csv").write_text(text)
    with pytest.raises(RawDataError) as e:
        pipeline.prepare(timeseries.AirlinePassengers, data_config(str(raw_dir), str(tmp_path)))
    assert "airline-passengers.csv is not the published" in str(e.value)
    assert "8cb51be753a718d9be5d76d7e238cc224792754676adc21faa59e954b0201621" in str(e.value)
    with pytest.raises(RawDataError, match=r"airline-passengers.csv line 4: expected 'date,number', "
                                           r"got '1949-03,13x'"):
        timeseries.read_series_csv(str(raw_dir / "airline-passengers.csv"),
                                   ("Month", "Passengers"), "airline_passengers")


def test_without_raw_dir_tfds_downloads_the_official_file(tmp_path, monkeypatch):
    """The internet path, with TFDS's downloader replaced by a local copy (no network here)."""
    import tensorflow_datasets as tfds
    requested = []

    def fake_download(self, url):
        requested.append(url)
        dst = tmp_path / "downloaded.csv"
        shutil.copy(os.path.join(shared("airline_passengers"), "airline-passengers.csv"), dst)
        return dst

    monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
    builder = pipeline.prepare(timeseries.AirlinePassengers, data_config("", str(tmp_path / "d")))
    assert requested == ["https://raw.githubusercontent.com/jbrownlee/Datasets/master/"
                         "airline-passengers.csv"]
    assert len(timeseries.load_series(builder)[1]) == 144

    def offline(self, url):
        raise ConnectionError("no route to host")
    monkeypatch.setattr(tfds.download.DownloadManager, "download", offline)
    with pytest.raises(FileNotFoundError, match=r"could not download .*airline-passengers.csv "
                                                r"\(ConnectionError: no route to host\)\. Without "
                                                r"internet, put airline-passengers.csv"):
        pipeline.prepare(timeseries.AirlinePassengers, data_config("", str(tmp_path / "e")))


def test_builders_work_with_tensorflow_unimportable(tmp_path):
    """Prepare and read with TensorFlow hidden as if not installed (find_spec gives None,
    import fails), so this holds on machines where it is installed too."""
    code = (
        "import sys, importlib.abc\n"
        "class NoTF(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ModuleNotFoundError('tensorflow is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTF())\n"
        "import importlib.util\n"
        "_find_spec = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: (\n"
        "    None if name.split('.')[0] == 'tensorflow' else _find_spec(name, *a))\n"
        "import ml_collections\n"
        "from seqjax.data import pipeline, timeseries\n"
        f"c = ml_collections.ConfigDict({{'raw_dir': {shared('monthly_sunspots')!r}, "
        f"'data_dir': {str(tmp_path)!r}}})\n"
        "b = pipeline.prepare(timeseries.MonthlySunspots, c)\n"
        "print('ROWS', len(timeseries.load_series(b)[1]), 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ROWS 2820 False" in out.stdout


# ----------------------------------------------------------------------------- grain


def _ids(batch):
    return [int(i) for i in batch["index"]]


def _iterator(n=23, batch=4, seed=0, shard=(0, 1)):
    return pipeline.GrainIterator(n, batch, seed, lambda idx: {"index": np.asarray(idx)},
                                  shard=shard)


def test_grain_iterator_epochs_seeds_and_shards():
    it = _iterator()
    assert it.batches_per_epoch == 5  # 23 // 4: the last 3 of each epoch are dropped
    epochs = [[i for _ in range(5) for i in _ids(next(it))] for _ in range(3)]
    for ep in epochs:
        assert len(set(ep)) == 20 and set(ep) <= set(range(23))
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    again = _iterator()
    assert [_ids(next(again)) for _ in range(15)] == \
        [epochs[e][4 * b:4 * b + 4] for e in range(3) for b in range(5)]  # same seed, same batches
    assert _ids(next(_iterator(seed=1))) != epochs[0][:4]
    s0, s1 = _iterator(n=24, batch=12, shard=(0, 2)), _iterator(n=24, batch=12, shard=(1, 2))
    h0, h1 = set(_ids(next(s0))), set(_ids(next(s1)))
    assert h0 == set(range(0, 24, 2)) and h1 == set(range(1, 24, 2))  # disjoint host shards
    with pytest.raises(ValueError, match=r"batch size 13 needs at least that many records per host"):
        _iterator(n=24, batch=13, shard=(0, 2))


def test_grain_iterator_resumes_mid_epoch_from_json_state():
    it = _iterator(seed=7)
    for _ in range(7):  # epoch 2, batch 3
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # what the checkpoint holds
    expected = [_ids(next(it)) for _ in range(8)]
    resumed = _iterator(seed=7)
    next(resumed)  # a fresh iterator that has moved on: set_state must rewind it
    resumed.set_state(state)
    assert [_ids(next(resumed)) for _ in range(8)] == expected


def test_grain_state_bytes_are_made_json():
    state = pipeline._json_state(b'{"a": 1}\x00\xff')
    assert json.loads(json.dumps(state)) == state
    assert pipeline._grain_state(state) == b'{"a": 1}\x00\xff'
    assert pipeline._json_state({"next_index": 3}) == {"next_index": 3}


def test_eval_indices_fixed_subset_and_clear_error():
    a = pipeline.eval_indices(100, 10, seed=3)
    np.testing.assert_array_equal(a, pipeline.eval_indices(100, 10, seed=3))
    assert len(set(a)) == 10 and set(a) <= set(range(100))
    assert sorted(pipeline.eval_indices(100, 100, seed=3)) == list(range(100))
    with pytest.raises(ValueError, match=r"task.eval_size=101 must lie in \[1, 100\] \(the 100 "
                                         r"examples of the test split\)"):
        pipeline.eval_indices(100, 101, seed=3)


def test_preparation_killed_midway_is_cleaned_up_by_the_next(tmp_path):
    """A preparation killed midway leaves TFDS's incomplete.<random>_<version>/ beside the
    version folder; the next preparation removes it and prepares the data."""
    data_dir = str(tmp_path / "d")
    builder = timeseries.AirlinePassengers(data_dir=data_dir, file_format="array_record")
    version_dir = os.path.normpath(str(builder.data_dir))
    stale = os.path.join(os.path.dirname(version_dir),
                         f"incomplete.K1LLED_{os.path.basename(version_dir)}")
    os.makedirs(os.path.join(stale, "half"))
    open(os.path.join(stale, "half", "airline_passengers-train.array_record-00000-of-00001"),
         "wb").close()
    assert pipeline.incomplete_dirs(builder) == [stale]
    raw_dir = shared("airline_passengers")
    builder = pipeline.prepare(timeseries.AirlinePassengers, data_config(raw_dir, data_dir))
    assert not os.path.exists(stale) and pipeline.incomplete_dirs(builder) == []
    assert builder.is_prepared() and len(timeseries.load_series(builder)[1]) == 144
