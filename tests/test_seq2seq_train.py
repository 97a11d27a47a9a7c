"""The ``:smoke`` configs of the captioning, translation and frame tasks train end to end
through the one trainer."""

import importlib

import numpy as np
import pytest

from seqjax import train
from seqjax.writer import read_metrics


def smoke(name, tmp_path):
    c = importlib.import_module(f"configs.{name}").get_config("smoke")
    c.data.data_dir = str(tmp_path / "tfds")
    c.mesh.data = 1  # one device: the sharded path is the trainer's, tested there
    return c


def tb_tags(workdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(workdir, size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.slow  # end to end (41 s); the caption model is checked in tests/test_seq2seq.py
def test_caption_mnist_smoke_trains_decodes_and_logs_the_picture(tmp_path):
    workdir = str(tmp_path / "run")
    summary = train.train_and_evaluate(smoke("caption_mnist", tmp_path), workdir)
    final = summary["final_eval"]
    for key in ("test_exact_match", "test_bleu4", "test_beam_bleu4", "test_beam_exact_match",
                "token_accuracy"):
        assert 0.0 <= final[key] <= (1.0 if "exact" in key or "acc" in key else 100.0), key
    rows = read_metrics(workdir)
    assert "eval/valid_bleu4" in rows[0] and "grad/hidden_norms" in rows[0]
    assert len(rows[0]["grad/hidden_norms"]) == 10 + 1 + 1  # decoder h_0..h_T, T = max_len + 1
    acc = tb_tags(workdir)
    assert "image/captions" in acc.Tags()["images"]
    img = acc.Images("image/captions")[-1]
    assert img.width > 300 and img.height > 200
    table = acc.Tensors("text/captions/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| # | beam 2 | greedy | reference | exact |")


@pytest.mark.slow
def test_translate_smoke_trains_and_logs_translations_and_split(tmp_path):
    s = train.train_and_evaluate(smoke("translate_pt_en", tmp_path), str(tmp_path / "run"))
    assert np.isfinite(s["final_eval"]["loss"]) and 0 <= s["final_eval"]["test_bleu4"] <= 100
    acc = tb_tags(str(tmp_path / "run"))
    table = acc.Tensors("text/translations/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.splitlines()[0] == "| source (pt) | reference (en) | beam 2 | greedy |"
    split = acc.Tensors("text/split/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "test 1322, validation 1322, train 10578" in split and "seed 0" in split


@pytest.mark.slow  # three cells end to end (25 s)
def test_frames_smoke_reports_visible_and_occluded_accuracy_per_cell(tmp_path):
    out = train.train_and_evaluate(smoke("frames", tmp_path), str(tmp_path / "run"))
    assert set(out["members"]) == {"cell=rnn", "cell=lstm"}
    for s in out["members"].values():
        e = s["final_eval"]
        assert 0 <= e["accuracy_visible"] <= 1 and 0 <= e["accuracy_occluded"] <= 1
        assert s["baseline"]["accuracy_occluded"] == pytest.approx(0.1)


@pytest.mark.slow
def test_caption_flickr8k_smoke_on_the_shared_100_images(tmp_path):
    summary = train.train_and_evaluate(smoke("caption_flickr8k", tmp_path), str(tmp_path / "run"))
    final = summary["final_eval"]
    assert 0 <= final["test_bleu4"] <= 100 and 0 <= final["test_bleu1"] <= 100
    assert "image/captions" in tb_tags(str(tmp_path / "run")).Tags()["images"]
