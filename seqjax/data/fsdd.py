"""Free Spoken Digit Dataset (FSDD, Jackson et al.): builder, listing check, log-mel features.

Raw layout (``config.data.raw_dir``): the folder that holds ``recordings/``, or ``recordings/``
itself, with the 3,000 original files ``{digit}_{speaker}_{index}.wav`` (digits 0–9, six
speakers, indices 0–49; mono 16-bit PCM at 8 kHz), names unchanged. The project's offline copy
is ``../shared/data/fsdd`` (commit 26eb9aaf of github.com/Jakobovski/free-spoken-digit-dataset).
Without ``raw_dir`` the builder downloads that commit's archive from GitHub (machines with
internet only) and checks it the same way.

Check: the dataset publishes one digest, the sha256 of the output of
``cd recordings && sha256sum *.wav`` (lines ``<sha256>  <name>``, names in C-locale order)::

    1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959

``fsdd_sha256.txt`` beside this module is that listing (its own sha256 is the digest above,
checked before use). The builder recomputes the listing of the ``*.wav`` files it is given and
compares it with the expected one file by file, so an error names each missing, extra,
changed or badly named file; a file that matches but is not a readable 8 kHz mono int16 WAV
of at least one window is named too. Tests pass their own listing with
``SpokenDigit.with_listing(text)``.

Features, computed once when the dataset is prepared (``log_mel``): the samples scaled to
[-1, 1) (int16 / 32768); frames of 25 ms (``WINDOW`` = 200 samples) every 10 ms (``HOP`` = 80),
no padding, so an utterance of L samples gives ``num_frames(L) = 1 + (L − 200) // 80`` frames
(the last partial frame dropped); each frame times a periodic Hann window, its power spectrum
``|rfft|²`` (101 bins, 0–4 kHz), times librosa's mel filterbank (40 bands, 0–4 kHz, Slaney
mel scale and area normalisation: ``librosa.filters.mel(sr=8000, n_fft=200, n_mels=40)``),
then ``log(mel + 1e-6)``. This equals ``log(librosa.feature.melspectrogram(y, sr=8000,
n_fft=200, hop_length=80, window="hann", center=False, n_mels=40) + 1e-6)`` (a slow test
checks it); the STFT is done with numpy here because librosa's own compiles numba code on
first use (≈ 25 s). Features are stored unnormalised; the task standardises each band with
the training split's statistics.

Prepared dataset ``spoken_digit`` 1.0.0 (array_record): one split ``full`` of 3,000 records,
record i = line i of the listing (C-locale file-name order). Features: ``features`` float32
(T, 40), ``length`` (T), ``label`` (the digit), ``speaker`` (ClassLabel, ``SPEAKERS``),
``index`` (the repetition 0–49) and ``file`` (the name). The task chooses its train/test
records from these fields (``split_ids``): ``official`` (the dataset's README: index 0–4 is
the test set, 300 files, 5–49 training, 2,700) or ``speaker_holdout`` (one speaker's 500
files are the test set, the other five speakers' 2,500 training).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import struct
import warnings

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import raw as raw_lib
from seqjax.data.raw import RawDataError

COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
HOMEPAGE = "https://github.com/Jakobovski/free-spoken-digit-dataset"
ARCHIVE_URL = f"{HOMEPAGE}/archive/{COMMIT}.tar.gz"
LISTING_DIGEST = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"
LISTING_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fsdd_sha256.txt")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPLITS = ("official", "speaker_holdout")
OFFICIAL_TEST_INDICES = range(5)  # index 0–4: the test set of the dataset's README
SAMPLE_RATE, WINDOW, HOP, N_MELS, LOG_FLOOR = 8000, 200, 80, 40, 1e-6
LAYOUT = "recordings/{digit}_{speaker}_{index}.wav (the 3,000 original files)"

_NAME_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


# ----------------------------------------------------------------------------- raw files


def parse_name(name: str) -> tuple[int, str, int]:
    """(digit, speaker, index) of ``{digit}_{speaker}_{index}.wav``; RawDataError otherwise."""
    m = _NAME_RE.match(name)
    if not m or m[2] not in SPEAKERS or int(m[3]) > 49 or m[3] != str(int(m[3])):
        raise RawDataError(
            f"spoken_digit: file name {name!r} is not {{digit}}_{{speaker}}_{{index}}.wav with a "
            f"digit 0–9, a speaker of {', '.join(SPEAKERS)} and an index 0–49")
    return int(m[1]), m[2], int(m[3])


def listing_of(folder: str) -> str:
    """What ``cd folder && sha256sum *.wav`` prints (C-locale order: by bytes of the name)."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".wav"))
    return "".join(f"{raw_lib.sha256_of(os.path.join(folder, n))}  {n}\n" for n in names)


def parse_listing(text: str) -> dict[str, str]:
    """{file name: sha256} of a ``sha256sum`` listing."""
    out = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise RawDataError(f"spoken_digit: {line!r} is not a sha256sum line")
        out[name] = digest
    return out


def published_listing() -> str:
    """The package's listing, after checking its sha256 against the published digest."""
    with open(LISTING_FILE, encoding="ascii") as f:
        text = f.read()
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    if digest != LISTING_DIGEST:
        raise RawDataError(f"spoken_digit: {LISTING_FILE} has sha256 {digest}, not the published "
                           f"listing digest {LISTING_DIGEST}; the installed seqjax is damaged")
    return text


def _names(names, limit: int = 8) -> str:
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_listing(folder: str, expected: str) -> list[str]:
    """The sorted file names of ``folder`` when the sha256 of its ``*.wav`` listing is that of
    ``expected``; otherwise FileNotFoundError (files missing) or RawDataError (extra, changed
    or badly named files), each naming the files."""
    actual = listing_of(folder)
    have, want = parse_listing(actual), parse_listing(expected)
    for name in have:
        parse_name(name)
    digest, expected_digest = (hashlib.sha256(t.encode("ascii")).hexdigest()
                               for t in (actual, expected))
    if digest == expected_digest:
        return sorted(have)
    missing = set(want) - set(have)
    if missing:
        raise FileNotFoundError(
            f"spoken_digit: {len(missing)} of the {len(want)} recordings are missing from "
            f"{folder}: {_names(missing)}. Expected {LAYOUT}; get them from {HOMEPAGE} "
            f"(commit {COMMIT}, folder recordings/)")
    extra = set(have) - set(want)
    changed = [n for n in sorted(want) if have[n] != want[n]]
    parts = [f"{len(changed)} differ from the published files: " + ", ".join(
        f"{n} (sha256 {have[n]}, expected {want[n]})" for n in changed[:8])] if changed else []
    parts += [f"{len(extra)} are not in the dataset: {_names(extra)}"] if extra else []
    parts = parts or ["the expected listing is not in C-locale order of the names"]
    raise RawDataError(f"spoken_digit: the listing of {folder} has sha256 {digest}, expected "
                       f"{expected_digest}: {'; '.join(parts)}. Get the originals from {HOMEPAGE}")


def find_recordings(raw_dir: str) -> str:
    """``raw_dir/recordings`` if it exists, else ``raw_dir`` itself when it holds WAV files."""
    sub = os.path.join(raw_dir, "recordings")
    if os.path.isdir(sub):
        return sub
    if glob.glob(os.path.join(glob.escape(raw_dir), "*.wav")):
        return raw_dir
    raise FileNotFoundError(f"spoken_digit: no recordings/ folder and no .wav files in {raw_dir} "
                            f"(config.data.raw_dir). Expected {LAYOUT}, from {HOMEPAGE}")


def download_recordings(dl_manager) -> str:
    """The ``recordings/`` folder of the downloaded archive (machines with internet only)."""
    try:
        root = os.fspath(dl_manager.download_and_extract(ARCHIVE_URL))
    except Exception as e:  # noqa: BLE001 — any network failure gets the same advice
        raise FileNotFoundError(
            f"spoken_digit: could not download {ARCHIVE_URL} ({type(e).__name__}: {e}). Without "
            f"internet, put {LAYOUT} in a folder and pass it as --config.data.raw_dir") from e
    found = sorted(glob.glob(os.path.join(glob.escape(root), "*", "recordings")))
    return found[0] if found else find_recordings(root)


# ----------------------------------------------------------------------------- features


def read_wav(path: str) -> np.ndarray:
    """The samples of an 8 kHz mono int16 WAV as float64 in [-1, 1); RawDataError naming
    the file when it is unreadable, truncated, of another format or shorter than a window."""
    from scipy.io import wavfile  # scipy comes with jax; imported where WAVs are read
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", wavfile.WavFileWarning)  # truncated data: an error
            rate, x = wavfile.read(path)
    except (ValueError, EOFError, OSError, struct.error, wavfile.WavFileWarning) as e:
        raise RawDataError(f"spoken_digit: {path} is not a readable WAV file "
                           f"({type(e).__name__}: {e})") from None
    if rate != SAMPLE_RATE or x.ndim != 1 or x.dtype != np.int16:
        raise RawDataError(f"spoken_digit: {path} is {rate} Hz, {x.dtype}, shape {x.shape}; "
                           f"expected {SAMPLE_RATE} Hz mono int16")
    if len(x) < WINDOW:
        raise RawDataError(f"spoken_digit: {path} has {len(x)} samples, fewer than one "
                           f"{WINDOW}-sample window")
    return x.astype(np.float64) / 32768.0


def num_frames(num_samples: int) -> int:
    """Frames of ``WINDOW`` samples every ``HOP`` samples, without padding."""
    return 1 + (num_samples - WINDOW) // HOP


def mel_filterbank() -> np.ndarray:
    """(N_MELS, WINDOW // 2 + 1): librosa's Slaney mel filterbank, 0–4 kHz."""
    import librosa  # heavy (≈ 1.5 s, numba): imported when features are computed
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=WINDOW, n_mels=N_MELS, dtype=np.float64)


def log_mel(y: np.ndarray, filterbank: np.ndarray | None = None) -> np.ndarray:
    """(num_frames(len(y)), N_MELS) float32 log-mel energies of samples ``y`` (see the module
    docstring)."""
    from scipy.signal import get_window
    fb = mel_filterbank() if filterbank is None else filterbank
    frames_TxW = np.lib.stride_tricks.sliding_window_view(y, WINDOW)[::HOP]
    power_TxF = np.abs(np.fft.rfft(frames_TxW * get_window("hann", WINDOW), axis=-1)) ** 2
    return np.log(power_TxF @ fb.T + LOG_FLOOR).astype(np.float32)


# ----------------------------------------------------------------------------- splits


def split_ids(speakers, indices, split: str, test_speaker: str) -> dict[str, np.ndarray]:
    """{"train", "test"}: record ids (ascending) of the split ``split`` (see the module
    docstring), from each record's ``speaker`` name and repetition ``index``."""
    speakers, indices = np.asarray(speakers), np.asarray(indices)
    if split == "official":
        test = np.isin(indices, list(OFFICIAL_TEST_INDICES))
    elif split == "speaker_holdout":
        if test_speaker not in SPEAKERS:
            raise ValueError(f"task.test_speaker={test_speaker!r} is not a speaker; choose one "
                             f"of: {', '.join(SPEAKERS)}")
        test = speakers == test_speaker
    else:
        raise ValueError(f"task.split={split!r} is not allowed; choose one of: {', '.join(SPLITS)}")
    return {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}


# ----------------------------------------------------------------------------- builder


class SpokenDigit(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """FSDD recordings as log-mel frames (see the module docstring)."""

    name = "spoken_digit"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "seqjax: 40-band log-mel frames (25 ms / 10 ms) of the 3,000 "
                              "recordings at commit " + COMMIT[:8] + ", one split 'full'."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (f"Put {LAYOUT} in the manual directory "
                                    f"(config.data.raw_dir). Source: {HOMEPAGE}")
    EXPECTED_LISTING: str | None = None  # None: the published listing (fsdd_sha256.txt)

    @classmethod
    def with_listing(cls, listing: str) -> type:
        """This builder expecting ``listing`` (``sha256sum *.wav`` output) instead of the
        published one: for tests on a few tiny WAVs in the original layout."""
        return type(cls.__name__, (cls,), {"name": cls.name, "EXPECTED_LISTING": listing,
                                           "__module__": cls.__module__},
                    skip_registration=True)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Free Spoken Digit Dataset: 40-band log-mel frames, 25 ms every 10 ms.",
            features=tfds.features.FeaturesDict({
                "features": tfds.features.Tensor(shape=(None, N_MELS), dtype=np.float32),
                "length": tfds.features.Scalar(dtype=np.int32),
                "label": tfds.features.ClassLabel(num_classes=10),
                "speaker": tfds.features.ClassLabel(names=list(SPEAKERS)),
                "index": tfds.features.Scalar(dtype=np.int32),
                "file": tfds.features.Text(),
            }),
            supervised_keys=("features", "label"),
            homepage=HOMEPAGE,
            disable_shuffling=True,  # listing order; grain shuffles
        )

    def _split_generators(self, dl_manager):
        raw_dir = raw_lib.manual_dir(dl_manager)
        folder = download_recordings(dl_manager) if raw_dir is None else find_recordings(raw_dir)
        expected = self.EXPECTED_LISTING or published_listing()
        names = check_listing(folder, expected)
        return {"full": self._generate_examples(folder, names)}

    def _generate_examples(self, folder, names):
        fb = mel_filterbank()
        for i, name in enumerate(names):
            digit, speaker, index = parse_name(name)
            feats = log_mel(read_wav(os.path.join(folder, name)), fb)
            yield i, {"features": feats, "length": len(feats), "label": digit,
                      "speaker": speaker, "index": index, "file": name}
