"""The real-data tasks (smnist, imdb, forecast) and their configs: batches, scaling,
splits, baselines, logged examples, resumable iterators, and every ``:smoke`` variant trained
end to end (MNIST and IMDB on tiny raw files in the official layouts, the series on the real
CSVs)."""

from __future__ import annotations

import importlib
import json
import math
import os

import numpy as np
import pytest

from seqjax import train
from seqjax.tasks.forecast import ForecastTask
from seqjax.tasks.imdb import ImdbTask
from seqjax.tasks.smnist import SequentialMnistTask
from tests.realdata_helpers import no_network, prepare_tiny, shared  # noqa: F401


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return prepare_tiny(str(tmp_path_factory.mktemp("tiny_tasks")))


def config(name, variant, data_dir=None, raw_dir=""):
    c = importlib.import_module(f"configs.{name}").get_config(variant)
    if data_dir is not None:
        c.data.data_dir = data_dir
    c.data.raw_dir = raw_dir
    return c


# ----------------------------------------------------------------------------- smnist


def test_smnist_inputs_rows_pixels_and_fixed_permutation(tiny):
    images = tiny["mnist_arrays"]["train_images"][:3]
    rows = SequentialMnistTask(config("smnist", "rows:smoke", tiny["data_dir"]))
    pixels = SequentialMnistTask(config("smnist", "pixels:smoke", tiny["data_dir"]))
    perm = SequentialMnistTask(config("smnist", "permuted:smoke", tiny["data_dir"]))
    x_rows, x_pix, x_perm = (t.images_to_inputs(images) for t in (rows, pixels, perm))
    assert x_rows.shape == (3, 28, 28) and x_pix.shape == x_perm.shape == (3, 784, 1)
    assert x_rows.dtype == np.float32 and x_rows.max() <= 1.0
    np.testing.assert_array_equal(x_pix[:, :, 0], x_rows.reshape(3, 784))
    np.testing.assert_array_equal(x_perm[:, :, 0], x_pix[:, perm.permutation, 0])
    assert sorted(perm.permutation) == list(range(784)) and \
        (perm.permutation != np.arange(784)).mean() > 0.99
    for t, x in ((rows, x_rows), (pixels, x_pix), (perm, x_perm)):
        np.testing.assert_array_equal(t.inputs_to_images(x), images / np.float32(255))
    c = config("smnist", "permuted:smoke", tiny["data_dir"])
    c.seed = 5  # the training seed does not move the permutation; permutation_seed does
    np.testing.assert_array_equal(SequentialMnistTask(c).permutation, perm.permutation)
    c.task.permutation_seed = 1
    assert (SequentialMnistTask(c).permutation != perm.permutation).any()
    assert rows.input_spec().seq_len == 28 and perm.input_spec().dim == 1


def test_smnist_config_errors_name_the_value():
    c = config("smnist", "pixels:smoke")
    c.task.seq_len = 28
    with pytest.raises(ValueError, match=r"task.seq_len=28 does not match task.input='pixels', "
                                         r"which reads 784 steps of 1 pixels; set task.seq_len=784"):
        SequentialMnistTask(c)
    c.task.input = "columns"
    with pytest.raises(ValueError, match=r"task.input='columns' is not allowed; choose one of: "
                                         r"rows, pixels, permuted"):
        SequentialMnistTask(c)
    with pytest.raises(ValueError, match=r"unknown variant 'rows:huge'; use <input>\[:<size>\]"):
        config("smnist", "rows:huge")
    c = config("smnist", "smoke")
    c.task.noise_std = 0.1
    with pytest.raises(ValueError, match=r"task.noise_std=0.1: input noise is for the synthetic"):
        SequentialMnistTask(c)


def test_smnist_batches_resume_mid_epoch_and_eval_set(tiny):
    task = SequentialMnistTask(config("smnist", "rows:smoke", tiny["data_dir"]))
    it = task.train_iterator(seed=3)
    assert it.batches_per_epoch == 4  # 64 tiny training digits, batch 16
    first = [next(it) for _ in range(6)]
    b = first[0]
    assert b["inputs"].shape == (16, 28, 28) and b["targets"].dtype == np.int32
    arrays = tiny["mnist_arrays"]
    np.testing.assert_allclose(b["inputs"][0] * 255, arrays["train_images"][b["index"][0]], atol=1e-4)
    np.testing.assert_array_equal(b["targets"], arrays["train_labels"][b["index"]])
    epoch = np.concatenate([x["index"] for x in first[:4]])
    assert sorted(epoch) == list(range(64))
    state = json.loads(json.dumps(it.get_state()))
    rest = [next(it)["index"] for _ in range(3)]
    again = task.train_iterator(seed=3)
    again.set_state(state)
    for want in rest:
        np.testing.assert_array_equal(next(again)["index"], want)
    evals = list(task.eval_batches())
    assert [len(e["targets"]) for e in evals] == [32, 32]
    assert len(set(np.concatenate([e["index"] for e in evals]))) == 64
    assert task.baseline()["accuracy"] == pytest.approx(7 / 64)  # labels i % 10 over 64 digits


def test_smnist_examples_show_the_misclassified_digits(tiny):
    task = SequentialMnistTask(config("smnist", "permuted:smoke", tiny["data_dir"]))
    batch = next(task.eval_batches())
    logits = np.full((len(batch["targets"]), 10), -5.0, np.float32)
    logits[np.arange(len(logits)), batch["targets"]] = 5.0
    wrong = [1, 4, 9]
    for i in wrong:
        logits[i] = np.roll(logits[i], 1)
    ex = task.examples(logits, batch)
    img = ex["image/misclassified_digits"]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 150
    assert ex["text/misclassified_digits"].startswith("3 of 32 digits misclassified")
    i = wrong[0]
    assert (f"test digit #{batch['index'][i]}: label {batch['targets'][i]}, predicted "
            f"{(batch['targets'][i] + 1) % 10}") in ex["text/misclassified_digits"]


# ----------------------------------------------------------------------------- imdb


def test_imdb_batches_lengths_padding_and_train_only_vocabulary(tiny):
    c = config("imdb", "smoke", tiny["data_dir"])
    task = ImdbTask(c)
    words = set(task.vocab.words)
    assert "train" in words and "test" not in words   # only in test reviews: out of vocabulary
    assert {"great", "awful", "it's"} <= words
    b = next(task.train_iterator(seed=0))
    assert b["inputs"].shape == (16, c.task.seq_len) and b["inputs"].dtype == np.int32
    from seqjax.data import imdb as imdb_data
    source = task.builder.as_data_source(split="train")
    for row, idx, n in zip(b["inputs"], b["index"], b["lengths"]):
        ids = task.vocab.encode(source[int(idx)]["text"])
        assert n == min(len(ids), c.task.seq_len) and (row[n:] == imdb_data.PAD).all()
        np.testing.assert_array_equal(row[:n], ids[-n:])          # "pre": the last tokens kept
        assert b["targets"][list(b["index"]).index(idx)] == source[int(idx)]["label"]
    evals = list(task.eval_batches())
    labels = np.concatenate([e["targets"] for e in evals])
    assert len(labels) == 64 and 0 < labels[:32].mean() < 1      # batches mix the classes
    assert task.baseline() == {"accuracy": 0.5, "ce": pytest.approx(math.log(2))}


def test_imdb_examples_quote_the_misclassified_reviews(tiny):
    task = ImdbTask(config("imdb", "smoke", tiny["data_dir"]))
    batch = next(task.eval_batches())
    logits = np.stack([1.0 - batch["targets"], batch["targets"] * 1.0], -1).astype(np.float32)
    logits[2] = logits[2, ::-1]
    text = task.examples(logits, batch)["text/misclassified_reviews"]
    assert text.startswith("1 of 32 reviews misclassified")
    source = task.builder.as_data_source(split="test")
    review = source[int(batch["index"][2])]["text"].decode()
    assert review.split("<br />")[0][:40] in text
    truth = ("negative", "positive")[batch["targets"][2]]
    assert f"label {truth}, predicted {('negative', 'positive')[1 - batch['targets'][2]]}" in text


def test_imdb_config_errors():
    c = config("imdb", "smoke")
    c.task.truncate = "middle"
    with pytest.raises(ValueError, match=r"task.truncate='middle' is not allowed; choose one of: pre, post"):
        ImdbTask(c)
    c = config("imdb", "smoke")
    c.task.vocab_size = 2
    with pytest.raises(ValueError, match=r"task.vocab_size must be an integer >= 3"):
        ImdbTask(c)


# ----------------------------------------------------------------------------- forecast


@pytest.fixture(scope="module")
def airline(tmp_path_factory):
    c = config("airline", "cpu", str(tmp_path_factory.mktemp("series")),
               shared("airline_passengers"))
    task = ForecastTask(c)
    task.series()
    return task


def test_forecast_split_scaling_and_windows(airline):
    s, task = airline.series(), airline
    assert s["n_train"] == 96 and len(s["values"]) == 144
    log_train = np.log(s["values"][:96])
    assert s["center"] == pytest.approx(log_train.mean())
    assert s["scale"] == pytest.approx(log_train.std())
    it = task.train_iterator(seed=0)
    ts = np.concatenate([next(it)["t"] for _ in range(it.batches_per_epoch)])
    assert ts.min() >= 12 and ts.max() <= 95                 # training targets: training part only
    assert len(set(ts)) == len(ts) == 16 * ((96 - 12) // 16)
    b = next(task.eval_batches())
    np.testing.assert_array_equal(b["t"], np.arange(96, 144))  # every test month, in order
    t = b["t"][5]
    lv = np.log(s["values"])
    np.testing.assert_allclose(b["inputs"][5, :, 0], (lv[t - 12:t] - lv[t - 1]) / s["scale"],
                               rtol=1e-5)
    np.testing.assert_allclose(b["targets"][5], (lv[t] - lv[t - 1]) / s["scale"], rtol=1e-5)


def test_forecast_tutorial_variant_and_minmax_scaling(airline):
    c = config("airline", "tutorial", airline.config.data.data_dir)
    task = ForecastTask(c)
    s, v = task.series(), task.series()["values"]
    assert c.task.scaling == "minmax_all" and c.task.seq_len == 1 and c.task.predict == "value"
    assert (s["center"], s["scale"]) == (104.0, 518.0)     # whole series: the tutorial's leak
    b = next(task.eval_batches())
    np.testing.assert_allclose(b["targets"], (v[96:] - 104.0) / 518.0, rtol=1e-5)
    c.task.scaling = "minmax"                               # the same, training part only
    s = ForecastTask(c).series()
    assert (s["center"], s["scale"]) == (v[:96].min(), v[:96].max() - v[:96].min())


def test_forecast_metrics_in_passengers_and_baselines(airline):
    import jax.numpy as jnp
    b = next(airline.eval_batches())
    base = airline.baseline()
    assert base["rmse"] == pytest.approx(41.8537, abs=1e-3)       # value 12 months earlier
    assert base["persistence_rmse"] == pytest.approx(48.0412, abs=1e-3)
    _, m = airline.loss(jnp.asarray(b["targets"])[:, None], b)    # the perfect forecast
    assert float(m["rmse"]) < 1e-3
    _, m = airline.loss(jnp.zeros((len(b["t"]), 1)), b)          # "no change" = persistence
    assert float(m["rmse"]) == pytest.approx(base["persistence_rmse"], rel=1e-5)
    fig = airline.examples(np.zeros((len(b["t"]), 1), np.float32), b)["image/forecast"]
    assert fig.dtype == np.uint8 and fig.shape[2] == 3 and fig.shape[1] > 600


def test_forecast_config_errors(tmp_path):
    c = config("sunspots", "smoke", str(tmp_path), shared("monthly_sunspots"))
    c.task.log = True
    with pytest.raises(ValueError, match=r"task.log=True needs a positive series; monthly_sunspots "
                                         r"has values down to 0.0"):
        ForecastTask(c).series()
    c.task.scaling = "test"
    with pytest.raises(ValueError, match=r"task.scaling='test' is not allowed; choose one of: "
                                         r"standard, minmax, minmax_all"):
        ForecastTask(c)
    c.task.scaling = "standard"
    c.task.dataset = "airline"
    with pytest.raises(ValueError, match=r"task.dataset='airline' is not allowed; choose one of: "
                                         r"airline_passengers, daily_min_temperatures"):
        ForecastTask(c)
    c = config("airline", "smoke", str(tmp_path), shared("airline_passengers"))
    c.task.seq_len = 96
    with pytest.raises(ValueError, match=r"task.seq_len=96 \(the window\) must be shorter than the "
                                         r"training part \(96 of 144 values\)"):
        ForecastTask(c).series()


# ----------------------------------------------------------------------------- smoke runs

SMOKE = {  # config variant: (raw data, example tag)
    ("smnist", "rows:smoke"): ("tiny", "image/misclassified_digits"),
    ("smnist", "permuted:smoke"): ("tiny", "text/misclassified_digits"),
    ("imdb", "smoke"): ("tiny", "text/misclassified_reviews"),
    ("airline", "smoke"): ("airline_passengers", "image/forecast"),
    ("temperatures", "smoke"): ("daily_min_temperatures", "image/forecast"),
    ("sunspots", "smoke"): ("monthly_sunspots", "image/forecast"),
}
# Each smoke run costs 15–30 s on 2 shared cores (compiles, mostly); two run by default, the
# other four with -m slow.
DEFAULT_SMOKE = {("smnist", "rows:smoke"), ("airline", "smoke")}


@pytest.mark.parametrize("name,variant", [
    pytest.param(*key, marks=() if key in DEFAULT_SMOKE else pytest.mark.slow)
    for key in sorted(SMOKE)])
def test_smoke_variant_trains_and_logs_examples(tiny, tmp_path, name, variant):
    data, tag = SMOKE[(name, variant)]
    if data == "tiny":
        c = config(name, variant, tiny["data_dir"])
    else:
        c = config(name, variant, str(tmp_path / "tfds"), shared(data))
    c.train.diagnostics_every = 0 if name != "smnist" or "rows" not in variant else 4
    summary = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["steps"] == 4
    metric = "accuracy" if name in ("smnist", "imdb") else "rmse"
    assert np.isfinite(summary["final_eval"][metric]) and metric in summary["baseline"]
    from experiments.export_examples import export
    written = export(str(tmp_path / "run"))
    ext = ".png" if tag.startswith("image/") else ".md"
    assert os.path.join(str(tmp_path / "run"), "figures", tag.split("/")[1] + ext) in written
