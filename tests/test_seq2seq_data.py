"""The local-file builders (mnist_scenes, flickr8k, por_eng) and the frame-labelling videos:
on tiny files the tests write, and on the project's shared files."""

import gzip
import importlib
import os

import ml_collections
import numpy as np
import pytest

from seqjax.data import flickr8k, mnist_scenes, por_eng
from seqjax.tasks import frames
from seqjax.tasks.caption import CaptionMnistTask
from tests.realdata_helpers import SHARED  # $SEQJAX_SHARED_DATA, default ../shared/data


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_digits(n):
    """Digit k is a filled 20x20 square of brightness 20 + 20k: its class is readable from pixels."""
    labels = np.arange(n) % 10
    images = np.zeros((n, 28, 28), np.uint8)
    for i, k in enumerate(labels):
        images[i, 4:24, 4:24] = 20 + 20 * k
    return images, labels


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    d = tmp_path_factory.mktemp("mnist")
    imgs, labels = fake_digits(60000)
    write_idx(str(d / "train-images-idx3-ubyte.gz"), imgs)
    write_idx(str(d / "train-labels-idx1-ubyte.gz"), labels)
    imgs, labels = fake_digits(100)
    write_idx(str(d / "t10k-images-idx3-ubyte.gz"), imgs)
    write_idx(str(d / "t10k-labels-idx1-ubyte.gz"), labels)
    return str(d)


def located_digits(canvas):
    """[(row, col, class)] of the fake squares on a canvas, in reading order."""
    found = []
    for r0 in range(0, 64, 32):
        for c0 in range(0, 64, 32):
            cell = canvas[r0:r0 + 32, c0:c0 + 32]
            if cell.max():
                found.append((r0, c0, (int(cell.max()) - 20) // 20))
    return found


def test_mnist_scenes_captions_describe_the_canvas(tiny_mnist, tmp_path):
    src = mnist_scenes.load(tiny_mnist, str(tmp_path), num_train=60, num_validation=5, num_test=5)
    assert {k: len(v) for k, v in src.items()} == {"train": 60, "validation": 5, "test": 5}
    layouts = set()
    for i in range(60):
        ex = src["train"][i]
        caption, canvas = ex["caption"].decode(), ex["image"]
        digits = [d for d in ex["digits"] if d >= 0]
        names = [mnist_scenes.NAMES[d] for d in digits]
        assert all(n in caption for n in names)
        if len(digits) == 3:
            layouts.add("three")
            assert caption == f"three digits: {names[0]}, {names[1]} and {names[2]}"
            assert [k for _, _, k in located_digits(canvas)] == digits  # reading order
        elif len(digits) == 2:
            assert caption.split()[0] == ("an" if names[0] == "eight" else "a")
            (r1, c1, k1), (r2, c2, k2) = located_digits(canvas)
            if " above " in caption:
                layouts.add("above")
                assert c1 == c2 and r1 < r2 and [k1, k2] == digits
            else:
                layouts.add("left")
                assert " left of " in caption and r1 == r2 and c1 < c2 and [k1, k2] == digits
        else:
            layouts.add("one")
            assert caption == (f"an {names[0]}" if names[0] == "eight" else f"a {names[0]}")
            assert canvas.max() == 20 + 20 * digits[0]
    assert layouts == {"one", "above", "left", "three"}
    # fixed seeds: the same config gives the same scenes
    again = mnist_scenes.load(tiny_mnist, str(tmp_path / "again"), num_train=60,
                              num_validation=5, num_test=5)
    assert sorted(again["train"][i]["caption"] for i in range(60)) == \
        sorted(src["train"][i]["caption"] for i in range(60))


def test_caption_task_builds_the_model_of_the_model_config_it_is_given(tiny_mnist, tmp_path):
    """One task object per run: the trainer hands it the model config it uses (``impl``
    resolved, say) and the task builds that model; the data is loaded once, by the task."""
    c = importlib.import_module("configs.caption_mnist").get_config("smoke")
    c.data.raw_dir, c.data.data_dir = tiny_mnist, str(tmp_path)
    task = CaptionMnistTask(c)
    assert task.settings.num_train == 64 and len(task.train_src) == 64
    m = ml_collections.ConfigDict(c.model.to_dict())
    m.impl, m.hidden = "scan", 24
    model = task.build_model(ml_collections.FrozenConfigDict(m))
    assert (model.model_config.impl, model.model_config.hidden) == ("scan", 24)
    assert model.vocab == len(task.vocab) and model.feature_dim == task.settings.feature_dim
    assert task.build_model().model_config.hidden == c.model.hidden  # default: config.model


def test_mnist_scenes_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\(\.gz\) not found in "):
        mnist_scenes.load_mnist(str(tmp_path), "train")


def test_mnist_scenes_on_the_shared_files():
    images, labels = mnist_scenes.load_mnist(os.path.join(SHARED, "mnist"), "test")
    assert images.shape == (10000, 28, 28) and labels[:5].tolist() == [7, 2, 1, 0, 4]
    rng = np.random.default_rng(0)
    canvas, caption, digits, layout = mnist_scenes.make_scene(rng, images, labels)
    assert canvas.shape == (64, 64) and canvas.max() > 200 and layout in (
        "one", "above", "left", "three")


# ----------------------------------------------------------------- flickr8k


def write_flickr(d, ids_present, ids_listed):
    from PIL import Image
    os.makedirs(d / "images")
    with open(d / flickr8k.TOKEN_FILE, "w") as f:
        for i in ids_listed:
            for k in range(5):
                f.write(f"{i}#{k}\tA caption {k} of {i} .\n")
    splits = {"train": ids_listed[:-2], "validation": ids_listed[-2:-1], "test": ids_listed[-1:]}
    for split, name in flickr8k.SPLIT_FILES.items():
        with open(d / name, "w", newline="") as f:
            f.write("\r\n".join(splits[split]))  # CRLF, no final newline: the original files
    for n, i in enumerate(ids_present):
        Image.fromarray(np.full((30, 40, 3), 10 * n, np.uint8)).save(d / "images" / i)


def test_flickr8k_builds_what_is_present_and_counts_the_rest(tmp_path):
    ids = [f"{n}_x.jpg" for n in range(6)]
    raw = tmp_path / "raw"
    write_flickr(raw, ids_present=[ids[0], ids[1], ids[4], ids[5]], ids_listed=ids)
    builder, src = flickr8k.load(str(raw), str(tmp_path / "tfds"), image_size=8)
    assert {k: len(v) for k, v in src.items()} == {"train": 2, "validation": 1, "test": 1}
    assert flickr8k.counts(builder)["train"] == {"listed": 4, "missing_image": 2,
                                                 "missing_captions": 0, "built": 2}
    ex = src["test"][0]
    assert ex["image"].shape == (8, 8, 3) and ex["image_id"].decode() == ids[5]
    assert [c.decode() for c in ex["captions"]] == [f"A caption {k} of {ids[5]} ." for k in range(5)]


def test_flickr8k_missing_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Flickr8k captions file .*Flickr8k.token.txt is missing"):
        flickr8k.scan(str(tmp_path))
    raw = tmp_path / "raw"
    write_flickr(raw, ids_present=[], ids_listed=["a.jpg", "b.jpg", "c.jpg"])
    with pytest.raises(FileNotFoundError, match=r"none of the images listed .* is in .*images"):
        flickr8k.scan(str(raw))


def test_flickr8k_on_the_shared_files(tmp_path):
    builder, src = flickr8k.load(os.path.join(SHARED, "flickr8k"), str(tmp_path), image_size=16)
    counts = flickr8k.counts(builder)
    assert {k: v["built"] for k, v in counts.items()} == {"train": 81, "validation": 13, "test": 6}
    assert {k: v["listed"] for k, v in counts.items()} == {"train": 6000, "validation": 1000,
                                                           "test": 1000}
    assert all(len([c for c in src["train"][i]["captions"] if c]) == 5 for i in range(5))


# ----------------------------------------------------------------- por_eng


def write_pairs(d, n, en_lines=None):
    os.makedirs(d, exist_ok=True)
    with open(d / por_eng.FILES["pt"], "w", encoding="utf-8") as f:
        f.write("\n".join(f"Frase número {i}." for i in range(n)) + "\n")
    with open(d / por_eng.FILES["en"], "w", encoding="utf-8") as f:
        f.write("\n".join(f"Sentence number {i}." for i in range(en_lines or n)) + "\n")


def test_por_eng_seeded_split_is_disjoint_complete_and_recorded(tmp_path):
    write_pairs(tmp_path / "raw", 40)
    builder, src = por_eng.load(str(tmp_path / "raw"), str(tmp_path / "tfds"), seed=3)
    assert {k: len(v) for k, v in src.items()} == {"train": 32, "validation": 4, "test": 4}
    split = por_eng.split_of(builder)
    idx = split["indices"]
    assert sorted(idx["train"] + idx["validation"] + idx["test"]) == list(range(40))
    assert idx == por_eng.make_split(40, 3, 0.1, 0.1)
    assert idx["test"] != por_eng.make_split(40, 4, 0.1, 0.1)["test"]
    ex = src["test"][0]
    i = int(ex["index"])
    assert i in idx["test"] and ex["en"].decode() == f"Sentence number {i}."
    assert ex["pt"].decode() == f"Frase número {i}."


def test_por_eng_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tatoeba-test-v2021-08-07.por is missing"):
        por_eng.read_pairs(str(tmp_path))
    write_pairs(tmp_path / "raw", 5, en_lines=4)
    with pytest.raises(ValueError, match=r"has 5 lines but .* has 4 .* must be line-aligned"):
        por_eng.read_pairs(str(tmp_path / "raw"))
    with pytest.raises(ValueError, match=r"split fractions must be in \(0, 1\)"):
        por_eng.make_split(10, 0, 0.5, 0.6)


def test_por_eng_on_the_shared_files():
    pairs = por_eng.read_pairs(os.path.join(SHARED, "por_eng"))
    assert len(pairs) == 13222
    assert ("As crianças crescem tão rápido.", "Kids grow up so fast.") in pairs
    split = por_eng.make_split(len(pairs), 0, 0.1, 0.1)
    assert {k: len(v) for k, v in split.items()} == {"test": 1322, "validation": 1322,
                                                     "train": 10578}


# ----------------------------------------------------------------- frame videos


def test_videos_hide_the_digit_exactly_on_occluded_frames():
    digit = np.zeros((1, 14, 14), np.float32)
    digit[0, 2:12, 3:11] = 1.0  # ink in columns 3..10
    T, ow = 20, 18
    x, y, occ = frames.make_videos(np.random.default_rng(0), digit, np.array([7]), 4, T, ow)
    W = frames.canvas_width(T)
    o0 = (W - ow) // 2
    assert x.shape == (4, T, 14, W) and np.all(y == 7)
    for b in range(4):
        for t in range(T):
            outside = np.concatenate([x[b, t, :, :o0], x[b, t, :, o0 + ow:]], axis=1)
            assert (outside.max() > frames.INK) == (not occ[b, t])
        assert occ[b].sum() == ow - 8 + 1  # ink 8 columns wide, one px per frame
        assert not occ[b, 0] and not occ[b, -1]
    assert np.all(x[:, :, :, o0:o0 + ow] == 0.5)
    with pytest.raises(ValueError, match=r"occluder_width must lie in \[0, 36\] for seq_len=20, "
                                         r"speed=1, got 40"):
        frames.make_videos(np.random.default_rng(0), digit, np.array([7]), 1, T, 40)
    # two pixels per frame: the hidden stretch halves
    x, _, occ = frames.make_videos(np.random.default_rng(1), digit, np.array([7]), 4, T, 26, 2)
    W = frames.canvas_width(T, 2)
    o0 = (W - 26) // 2
    assert x.shape == (4, T, 14, W) == (4, 20, 14, 14 + 2 * 19 + 3)
    for b in range(4):
        for t in range(T):
            outside = np.concatenate([x[b, t, :, :o0], x[b, t, :, o0 + 26:]], axis=1)
            assert (outside.max() > frames.INK) == (not occ[b, t])
        assert occ[b].sum() in (9, 10)  # (26 - 8) / 2 + 1 start positions, parity of the offset
