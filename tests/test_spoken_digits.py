"""Spoken digits (FSDD): the builder on tiny WAVs written in the original layout (missing,
changed, extra, badly named and unreadable files named in the errors), the package's listing
against the published digest and the real recordings, the log-mel features against a plain
numpy DFT, the two splits, the task's batches (normalisation, frame stacking, lengths), that
padding changes nothing, and the ``:smoke`` config trained end to end on a tiny tree."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from seqjax.data import fsdd, pipeline
from seqjax.data.raw import RawDataError
from seqjax.tasks.spoken_digits import (SpokenDigitsTask, confusion_matrix, pad_utterances,
                                        stack_frames)
from tests.realdata_helpers import data_config, no_network, shared  # noqa: F401

TINY_SPEAKERS, TINY_INDICES = ("george", "theo"), (0, 5)  # index 0: test, 5: train (official)


def tiny_samples(digit: int, speaker: str, index: int) -> np.ndarray:
    """A tone whose pitch says the digit, 11–38 frames long, as int16."""
    n = fsdd.WINDOW + fsdd.HOP * (10 + 3 * digit - index % 3 + TINY_SPEAKERS.index(speaker))
    t = np.arange(n) / fsdd.SAMPLE_RATE
    rng = np.random.default_rng(100 * digit + index)
    y = 0.3 * np.sin(2 * np.pi * (300 + 250 * digit) * t) + 0.01 * rng.standard_normal(n)
    return (y * 32767).astype(np.int16)


def write_tiny_tree(root) -> str:
    """``root/recordings/{digit}_{speaker}_{index}.wav``: 10 digits × 2 speakers × 2 indices."""
    from scipy.io import wavfile
    folder = os.path.join(root, "recordings")
    os.makedirs(folder, exist_ok=True)
    for d in range(10):
        for s in TINY_SPEAKERS:
            for i in TINY_INDICES:
                wavfile.write(os.path.join(folder, f"{d}_{s}_{i}.wav"), fsdd.SAMPLE_RATE,
                              tiny_samples(d, s, i))
    return str(root)


def prepare_tiny(raw_dir: str, data_dir: str, listing: str | None = None):
    listing = fsdd.listing_of(fsdd.find_recordings(raw_dir)) if listing is None else listing
    return pipeline.prepare(fsdd.SpokenDigit.with_listing(listing),
                            data_config(raw_dir, data_dir))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd_tiny")
    raw_dir = write_tiny_tree(root / "raw")
    data_dir = str(root / "tfds")
    builder = prepare_tiny(raw_dir, data_dir)
    return {"raw_dir": raw_dir, "data_dir": data_dir, "builder": builder}


def config(variant="smoke", data_dir="", **task):
    c = importlib.import_module("configs.spoken_digits").get_config(variant)
    c.data.data_dir, c.data.raw_dir = data_dir, ""
    for k, v in task.items():
        c.task[k] = v
    return c


# ----------------------------------------------------------------------------- builder


def test_builder_prepares_every_tiny_recording_in_listing_order(tiny):
    source = pipeline.split_source(tiny["builder"], "full")
    records = pipeline.read_records(source, range(len(source)))
    names = sorted(os.listdir(os.path.join(tiny["raw_dir"], "recordings")))
    assert len(records) == 40 and [r["file"].decode() for r in records] == names
    fb = fsdd.mel_filterbank()
    for r in records[::7]:
        digit, speaker, index = fsdd.parse_name(r["file"].decode())
        assert (r["label"], fsdd.SPEAKERS[r["speaker"]], r["index"]) == (digit, speaker, index)
        y = tiny_samples(digit, speaker, index) / 32768.0
        assert r["features"].shape == (fsdd.num_frames(len(y)), 40) == (r["length"], 40)
        np.testing.assert_allclose(r["features"], fsdd.log_mel(y, fb), rtol=1e-6)


def test_missing_changed_extra_and_misnamed_files_are_named(tmp_path):
    raw_dir = write_tiny_tree(tmp_path / "raw")
    folder = os.path.join(raw_dir, "recordings")
    listing = fsdd.listing_of(folder)
    prep = lambda: prepare_tiny(folder, str(tmp_path / "d"), listing)  # recordings/ itself
    os.rename(os.path.join(folder, "3_theo_5.wav"), str(tmp_path / "aside.wav"))
    with pytest.raises(FileNotFoundError, match=r"1 of the 40 recordings are missing from .*"
                                                r"recordings: 3_theo_5.wav\. Expected recordings/"):
        prep()
    data = open(str(tmp_path / "aside.wav"), "rb").read()
    with open(os.path.join(folder, "3_theo_5.wav"), "wb") as f:
        f.write(data[:-2] + bytes([data[-2] ^ 1, data[-1]]))   # one bit of one sample flipped
    with pytest.raises(RawDataError, match=r"1 differ from the published files: 3_theo_5.wav "
                                           r"\(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\)"):
        prep()
    with open(os.path.join(folder, "3_theo_5.wav"), "wb") as f:
        f.write(data)
    os.link(os.path.join(folder, "3_theo_5.wav"), os.path.join(folder, "3_theo_49.wav"))
    with pytest.raises(RawDataError, match=r"1 are not in the dataset: 3_theo_49.wav"):
        prep()
    os.rename(os.path.join(folder, "3_theo_49.wav"), os.path.join(folder, "3_bob_1.wav"))
    with pytest.raises(RawDataError, match=r"file name '3_bob_1.wav' is not "
                                           r"\{digit\}_\{speaker\}_\{index\}.wav"):
        prep()
    os.remove(os.path.join(folder, "3_bob_1.wav"))
    assert prep().info.splits["full"].num_examples == 40


@pytest.mark.parametrize("cut", [-100, 30, 0])
def test_unreadable_or_truncated_wav_is_named_even_when_its_digest_is_listed(tmp_path, cut):
    raw_dir = write_tiny_tree(tmp_path / "raw")
    path = os.path.join(raw_dir, "recordings", "7_george_0.wav")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:cut] if cut else b"not a wav file at all" * 8)
    with pytest.raises(RawDataError, match=r"7_george_0.wav is not a readable WAV file"):
        prepare_tiny(raw_dir, str(tmp_path / "d"))   # the listing of the damaged tree


def test_wrong_format_and_names(tmp_path):
    from scipy.io import wavfile
    wavfile.write(str(tmp_path / "a.wav"), 16000, np.zeros(400, np.int16))
    wavfile.write(str(tmp_path / "b.wav"), 8000, np.zeros((400, 2), np.int16))
    wavfile.write(str(tmp_path / "c.wav"), 8000, np.zeros(199, np.int16))
    with pytest.raises(RawDataError, match=r"a.wav is 16000 Hz, int16, shape \(400,\); expected "
                                           r"8000 Hz mono int16"):
        fsdd.read_wav(str(tmp_path / "a.wav"))
    with pytest.raises(RawDataError, match=r"b.wav is 8000 Hz, int16, shape \(400, 2\)"):
        fsdd.read_wav(str(tmp_path / "b.wav"))
    with pytest.raises(RawDataError, match=r"c.wav has 199 samples, fewer than one 200-sample"):
        fsdd.read_wav(str(tmp_path / "c.wav"))
    for bad in ("10_george_1.wav", "1_george_50.wav", "1_george_01.wav", "1_George_1.wav"):
        with pytest.raises(RawDataError, match="is not {digit}_{speaker}_{index}.wav"):
            fsdd.parse_name(bad)
    assert fsdd.parse_name("9_yweweler_49.wav") == (9, "yweweler", 49)
    with pytest.raises(FileNotFoundError, match=r"no recordings/ folder and no .wav files"):
        fsdd.find_recordings(str(tmp_path / "nothing"))


def test_download_path_finds_recordings_in_the_archive_and_explains_a_failure(tmp_path):
    class Manager:
        def __init__(self, result):
            self.result, self.urls = result, []

        def download_and_extract(self, url):
            self.urls.append(url)
            if isinstance(self.result, Exception):
                raise self.result
            return self.result
    extracted = tmp_path / "extracted"
    os.makedirs(extracted / f"free-spoken-digit-dataset-{fsdd.COMMIT}" / "recordings")
    manager = Manager(str(extracted))
    assert fsdd.download_recordings(manager).endswith(f"{fsdd.COMMIT}/recordings")
    assert manager.urls == [f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
                            f"{fsdd.COMMIT}.tar.gz"]
    with pytest.raises(FileNotFoundError, match=r"could not download .*\.tar\.gz \(ConnectionError"
                                                r": offline\)\. Without internet, put recordings/"):
        fsdd.download_recordings(Manager(ConnectionError("offline")))


# ----------------------------------------------------------------------------- real listing


def test_package_listing_is_the_published_one_and_matches_the_real_recordings():
    text = fsdd.published_listing()              # checks its sha256 against the published one
    names = list(fsdd.parse_listing(text))
    assert len(names) == 3000 and names == sorted(names)
    folder = os.path.join(shared("fsdd"), "recordings")
    assert fsdd.check_listing(folder, text) == names   # the real files (≈ 0.2 s of sha256)
    parsed = [fsdd.parse_name(n) for n in names]
    speakers, indices = [p[1] for p in parsed], [p[2] for p in parsed]
    assert sorted(set(speakers)) == list(fsdd.SPEAKERS)
    official = fsdd.split_ids(speakers, indices, "official", "theo")
    assert (len(official["train"]), len(official["test"])) == (2700, 300)
    assert {indices[i] for i in official["test"]} == set(range(5))
    for speaker in fsdd.SPEAKERS:
        held = fsdd.split_ids(speakers, indices, "speaker_holdout", speaker)
        assert (len(held["train"]), len(held["test"])) == (2500, 500)
        assert {speakers[i] for i in held["test"]} == {speaker}
    with pytest.raises(ValueError, match=r"task.test_speaker='bob' is not a speaker"):
        fsdd.split_ids(speakers, indices, "speaker_holdout", "bob")
    with pytest.raises(ValueError, match=r"task.split='random' is not allowed"):
        fsdd.split_ids(speakers, indices, "random", "theo")


# ----------------------------------------------------------------------------- features


def test_log_mel_frames_against_a_plain_dft():
    y = np.random.default_rng(0).standard_normal(1234) * 0.1
    feats = fsdd.log_mel(y)
    assert feats.dtype == np.float32 and feats.shape == (1 + (1234 - 200) // 80, 40) == (13, 40)
    assert [fsdd.num_frames(n) for n in (200, 279, 280, 18262)] == [1, 1, 2, 226]
    n = np.arange(200)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 200)            # periodic Hann
    dft = np.exp(-2j * np.pi * np.outer(np.arange(101), n) / 200)
    fb = fsdd.mel_filterbank()
    assert fb.shape == (40, 101)
    for t in (0, 7, 12):
        power = np.abs(dft @ (y[80 * t:80 * t + 200] * hann)) ** 2
        np.testing.assert_allclose(feats[t], np.log(fb @ power + 1e-6), rtol=2e-6, atol=2e-6)


@pytest.mark.slow  # librosa's own STFT compiles numba code on first use (≈ 25 s)
def test_log_mel_equals_librosa_melspectrogram():
    import librosa
    y = np.random.default_rng(1).standard_normal(3000) * 0.1
    ref = librosa.feature.melspectrogram(y=y, sr=8000, n_fft=200, hop_length=80, win_length=200,
                                         window="hann", center=False, power=2.0, n_mels=40)
    np.testing.assert_allclose(fsdd.log_mel(y), np.log(ref.T + 1e-6), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- task


def test_batches_normalised_with_training_statistics_stacked_and_padded(tiny):
    task = SpokenDigitsTask(config(data_dir=tiny["data_dir"]))
    ids = task.split_ids()
    assert (len(ids["train"]), len(ids["test"])) == (20, 20)
    source = task.source
    train = pipeline.read_records(source, ids["train"])
    frames = np.concatenate([r["features"] for r in train]).astype(np.float64)
    np.testing.assert_allclose(task.mean, frames.mean(0))
    np.testing.assert_allclose(task.std, frames.std(0))
    b = next(task.train_iterator(seed=0))
    assert b["inputs"].shape == (8, 20, 80) and b["inputs"].dtype == np.float32
    for row, n, i in zip(b["inputs"], b["lengths"], b["index"]):
        rec = source[int(i)]
        assert n == -(-int(rec["length"]) // 2) and not row[n:].any()
        want = stack_frames(((rec["features"] - task.mean) / task.std).astype(np.float32), 2)
        np.testing.assert_allclose(row[:n], want, rtol=1e-6)
        assert rec["index"] == 5 and b["targets"][list(b["index"]).index(i)] == rec["label"]
    (ev,) = list(task.eval_batches())
    assert len(ev["targets"]) == 20 and sorted(ev["index"]) == sorted(ids["test"])
    assert task.baseline()["accuracy"] == pytest.approx(0.1)
    held = SpokenDigitsTask(config(data_dir=tiny["data_dir"], split="speaker_holdout"))
    assert {fsdd.SPEAKERS[source[int(i)]["speaker"]] for i in held.split_ids()["test"]} == {"theo"}
    assert not np.allclose(held.mean, task.mean)        # its own training records' statistics


def test_pad_utterances_cuts_to_seq_len_and_stacks():
    f = [np.arange(10 * 3, dtype=np.float32).reshape(10, 3), np.ones((3, 3), np.float32)]
    x, n = pad_utterances(f, seq_len=7, k=2)
    assert x.shape == (2, 4, 6) and list(n) == [4, 2]
    np.testing.assert_array_equal(x[0].reshape(8, 3)[:7], f[0][:7])   # the first 7 frames
    assert not x[0].reshape(8, 3)[7].any() and not x[1, 2:].any()
    np.testing.assert_array_equal(x[1, 1], [1, 1, 1, 0, 0, 0])          # zero-filled last step


def test_padding_changes_nothing(tiny):
    """Logits of a padded batch with lengths = logits of each recording alone, unpadded, and
    do not move when the padding holds noise instead of zeros."""
    import jax
    import ml_collections

    from seqjax import models
    c = config(data_dir=tiny["data_dir"])   # the LSTM, on the unroll the trainer uses
    task = SpokenDigitsTask(c)
    b = next(task.eval_batches())
    model = models.build_model(ml_collections.FrozenConfigDict(c.model), task.input_spec())
    params = model.init(jax.random.key(0), b)["params"]
    apply = lambda x, n=None: np.asarray(model.apply({"params": params}, {
        "inputs": x} | ({} if n is None else {"lengths": n})))
    logits = apply(b["inputs"], b["lengths"])
    noisy = b["inputs"] + (np.arange(b["inputs"].shape[1])[None, :, None]
                           >= b["lengths"][:, None, None]) * np.float32(3.0)
    np.testing.assert_allclose(apply(noisy, b["lengths"]), logits, rtol=1e-5, atol=1e-6)
    for i in np.argsort(b["lengths"])[[0, 10]]:          # the shortest and a middle one
        assert b["lengths"][i] < b["inputs"].shape[1]
        alone = apply(b["inputs"][i:i + 1, :b["lengths"][i]])
        np.testing.assert_allclose(alone[0], logits[i], rtol=1e-5, atol=1e-6)


def test_confusion_matrix_examples():
    labels, pred = np.array([0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 2, 2, 0])
    cm = confusion_matrix(labels, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [1, 0, 2]])
    task = SpokenDigitsTask(config())
    logits = np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 3]]
    ex = task.examples(logits, {"targets": np.array([0, 1, 2, 3, 4])})
    assert ex["text/confusions"].startswith("4 of 5 recordings right (80.0%; official split).")
    assert "- 1 × 4 heard as 3" in ex["text/confusions"]
    img = ex["image/confusion_matrix"]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 300


def test_config_errors_name_the_value():
    for field, value, message in (
            ("split", "random", r"task.split='random' is not allowed; choose one of: official, "
                                r"speaker_holdout"),
            ("frame_stack", 0, r"task.frame_stack must be a positive integer, got 0"),
            ("noise_std", 0.1, r"task.noise_std=0.1: input noise is for the synthetic")):
        with pytest.raises(ValueError, match=message):
            SpokenDigitsTask(config(**{field: value}))
    with pytest.raises(ValueError, match=r"unknown variant 'huge'; choose one of: smoke, cpu"):
        config("huge")
    for variant in ("cpu", "gpu", "tpu"):
        c = config(variant)
        assert c.task.seq_len == 230 and c.task.split == "official"
        assert SpokenDigitsTask(c).input_spec().seq_len == -(-230 // c.task.frame_stack)


@pytest.mark.slow  # end to end (13 s)
def test_smoke_config_trains_end_to_end_and_logs_the_confusion_matrix(tiny, tmp_path):
    from experiments.export_examples import export
    from seqjax import train
    c = config(data_dir=tiny["data_dir"])
    c.train.diagnostics_every = 0           # the gradient diagnostics have their own tests
    summary = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert summary["steps"] == 4 and np.isfinite(summary["final_eval"]["accuracy"])
    assert summary["baseline"]["accuracy"] == pytest.approx(0.1)
    written = export(str(tmp_path / "run"))
    assert os.path.join(str(tmp_path / "run"), "figures", "confusion_matrix.png") in written
