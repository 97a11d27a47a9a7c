"""Character-level language models: the tiny Shakespeare builder, the truncated-BPTT streams,
the carried state, sampling and log-probabilities against Python loops, and exact resume."""

import dataclasses
import hashlib
import importlib
import os
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqjax import cells, lm, train
from seqjax.data import pipeline, raw
from seqjax.data import tiny_shakespeare as ts
from seqjax.tasks.char_lm import StreamIterator, stream_batch
from seqjax.writer import read_metrics, write_step_section
from tests.realdata_helpers import SHARED  # $SEQJAX_SHARED_DATA, default ../shared/data

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20


def _tiny_builder(text: str):
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()

    class Tiny(ts.TinyShakespeare, skip_registration=True):
        RAW = dataclasses.replace(ts.INPUT, size=len(data), sha256=sha)
    Tiny.__name__ = "TinyShakespeare"  # the dataset's folder name
    return Tiny


def _prepare(builder_cls, raw_dir, data_dir):
    return pipeline.prepare(builder_cls, types.SimpleNamespace(raw_dir=str(raw_dir),
                                                               data_dir=str(data_dir)))


def test_split_positions_are_tfds_tiny_shakespeare():
    assert ts.split_bounds(1115394) == {"train": (0, 1003854), "validation": (1003854, 1059624),
                                        "test": (1059624, 1115394)}


def test_builder_prepares_the_three_splits_from_the_original_layout(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "input.txt").write_text(TEXT)
    builder = _prepare(_tiny_builder(TEXT), tmp_path / "raw", tmp_path / "data")
    parts = {s: ts.corpus_text(builder, s) for s in ts.SPLITS}
    assert "".join(parts[s] for s in ts.SPLITS) == TEXT
    assert {s: len(p) for s, p in parts.items()} == {
        s: b - a for s, (a, b) in ts.split_bounds(len(TEXT)).items()}


def test_builder_names_a_missing_or_corrupt_file(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "README").write_text("not the corpus")
    with pytest.raises(FileNotFoundError, match=r"input.txt \(1,115,394 bytes, sha256 86c4e6aa"):
        _prepare(ts.TinyShakespeare, tmp_path / "raw", tmp_path / "data")
    (tmp_path / "raw" / "input.txt").write_text(TEXT[:-1] + "?")  # one character changed
    with pytest.raises(raw.RawDataError, match=r"input.txt is not the published input.txt"):
        _prepare(_tiny_builder(TEXT), tmp_path / "raw", tmp_path / "data2")


def test_character_vocabulary():
    vocab = ts.CharVocabulary.build("abca\n")
    assert vocab.chars[1:] == ["\n", "a", "b", "c"]
    ids = vocab.encode("cab\nz")
    assert list(ids) == [4, 2, 3, 1, 0] and vocab.decode(ids) == "cab\n" + vocab.UNKNOWN
    with pytest.raises(ValueError, match="empty text"):
        ts.CharVocabulary.build("")


def test_streams_are_consecutive_windows_with_a_reset_each_epoch():
    ids = np.arange(103, dtype=np.int32)
    it = StreamIterator(ids, streams=4, window=5)  # 4 streams of 25 characters, 5 windows
    assert it.windows == 5
    batches = [it.batch(n) for n in range(6)]
    inputs = np.concatenate([b["inputs"] for b in batches[:5]], axis=1)
    np.testing.assert_array_equal(inputs, np.arange(100).reshape(4, 25))
    np.testing.assert_array_equal(batches[2]["targets"], batches[2]["inputs"] + 1)
    assert [bool(b["reset"][0]) for b in batches] == [True, False, False, False, False, True]
    np.testing.assert_array_equal(batches[5]["inputs"], batches[0]["inputs"])  # epoch 2
    host1 = StreamIterator(ids, streams=4, window=5, host=1, hosts=2).batch(0)["inputs"]
    np.testing.assert_array_equal(host1, batches[0]["inputs"][2:])
    with pytest.raises(ValueError, match=r"train.tbptt=30 is longer than each of the 4 streams "
                                         r"\(25 characters"):
        StreamIterator(ids, streams=4, window=30)
    batch = stream_batch(ids, 2)
    np.testing.assert_array_equal(batch["inputs"], np.arange(102).reshape(2, 51))


def _model(cell="lstm", layers=2, vocab=11):
    from seqjax.config import base_config
    m = base_config().model
    m.cell, m.embed_dim, m.hidden, m.layers = cell, 6, 8, layers
    model = lm.CharLanguageModel(vocab=vocab, model_config=ml_collections.FrozenConfigDict(m))
    tokens = jnp.asarray(np.random.RandomState(0).randint(1, vocab, (3, 10)), jnp.int32)
    return model, model.init(jax.random.key(0), {"inputs": tokens})["params"], tokens


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_carried_state_continues_the_sequence_and_reset_restarts_it(cell):
    model, params, tokens = _model(cell)
    whole = model.apply({"params": params}, {"inputs": tokens})
    first = model.apply({"params": params}, {"inputs": tokens[:, :4]})
    keep = {"inputs": tokens[:, 4:], "carry": first["carry"], "reset": jnp.zeros(3, bool)}
    second = model.apply({"params": params}, keep)
    np.testing.assert_allclose(jnp.concatenate([first["logits"], second["logits"]], 1),
                               whole["logits"], atol=1e-5)
    fresh = model.apply({"params": params}, keep | {"reset": jnp.array([True, False, True])})
    alone = model.apply({"params": params}, {"inputs": tokens[:, 4:]})
    np.testing.assert_allclose(fresh["logits"][0], alone["logits"][0], atol=1e-6)
    np.testing.assert_allclose(fresh["logits"][1], second["logits"][1], atol=1e-6)
    # the pure forward pass is the module's
    logits, _ = lm.forward(cells.get_cell(cell), params, tokens)
    np.testing.assert_allclose(logits, whole["logits"], atol=1e-5)


def _loop_logits(cell, params, ids):
    """Next-character logits after ``ids``: an independent Python loop over cell.step."""
    carries = lm.initial_carries(cell, params, 1)
    for i in ids:
        x = params["embed"]["embedding"][jnp.asarray([i])]
        for name in lm.layer_names(params):
            carries[name], x = cell.step(params[name], carries[name], x)
    return np.asarray(lm.head(params, x))[0]


def test_sampling_greedy_temperature_top_k_and_seed():
    model, params, tokens = _model()
    cell, prompt = cells.get_cell("lstm"), tokens[0, :3]
    sample = jax.jit(lm.sample, static_argnums=(0, 3), static_argnames=("top_k",))
    greedy = np.asarray(sample(cell, params, prompt, 6, temperature=0.0))
    ids = list(np.asarray(prompt))
    for _ in range(6):
        ids.append(int(np.argmax(_loop_logits(cell, params, ids))))
    assert list(greedy) == ids[3:]
    cold = sample(cell, params, prompt, 6, temperature=1e-6, key=jax.random.key(5))
    top1 = sample(cell, params, prompt, 6, temperature=1.0, top_k=1, key=jax.random.key(5))
    assert list(np.asarray(cold)) == list(greedy) == list(np.asarray(top1))
    a = sample(cell, params, prompt, 40, temperature=1.0, key=jax.random.key(1))
    b = sample(cell, params, prompt, 40, temperature=1.0, key=jax.random.key(1))
    c = sample(cell, params, prompt, 40, temperature=1.0, key=jax.random.key(2))
    assert list(np.asarray(a)) == list(np.asarray(b)) != list(np.asarray(c))
    with pytest.raises(ValueError, match=r"top_k must be an integer >= 0"):
        lm.sample(cell, params, prompt, 3, top_k=-1)


def test_continuation_log_prob_is_the_sum_of_next_character_log_probs():
    model, params, tokens = _model()
    cell, ids = cells.get_cell("lstm"), [int(i) for i in tokens[0]]
    expected = 0.0
    for t in range(4, 10):
        logits = _loop_logits(cell, params, ids[:t])
        expected += logits[ids[t]] - np.log(np.sum(np.exp(logits)))
    got = lm.continuation_log_prob(cell, params, jnp.asarray(ids[:4]), jnp.asarray(ids[4:]))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_step_sections_replace_those_of_a_replayed_step(tmp_path):
    path = str(tmp_path / "figures" / "samples.md")
    for step in (0, 3, 6):
        write_step_section(path, step, f"text {step}")
    write_step_section(path, 3, "replayed")  # a run resumed from a checkpoint before step 3
    assert open(path).read() == "## step 0\n\ntext 0\n\n## step 3\n\nreplayed\n\n"


def _config():
    c = importlib.import_module("configs.char_lm").get_config("smoke")
    c.data.raw_dir = os.path.join(SHARED, "tiny_shakespeare")
    return c


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    c, workdir = _config(), str(tmp_path_factory.mktemp("char_lm"))
    c.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
    return c, workdir, train.train_and_evaluate(c, workdir)


def test_smoke_run_reports_nats_and_bits_and_writes_samples(smoke_run):
    c, workdir, summary = smoke_run
    e = summary["final_eval"]
    assert e["bits_per_char"] == pytest.approx(e["nats_per_char"] / np.log(2), rel=1e-6)
    assert summary["baseline"]["nats_per_char"] < np.log(66)  # the unigram beats uniform
    text = open(os.path.join(workdir, "figures", "samples.md")).read()
    assert [line for line in text.splitlines() if line.startswith("## step")] == [
        "## step 0", "## step 3", "## step 6"]
    assert text.count("```text\nROMEO:") == 3


def test_killed_run_resumes_with_its_carried_state(smoke_run, tmp_path, monkeypatch):
    c, workdir, _ = smoke_run

    class Dies(Exception):
        pass
    original = StreamIterator.batch

    def batch(self, n):
        if n == 4:
            raise Dies("killed")
        return original(self, n)
    monkeypatch.setattr(StreamIterator, "batch", batch)
    with pytest.raises(Dies):
        train.train_and_evaluate(c, str(tmp_path))
    monkeypatch.undo()
    train.train_and_evaluate(c, str(tmp_path))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "train/steps_per_sec"} for r in rows]
    assert strip(read_metrics(str(tmp_path))) == strip(read_metrics(workdir))
    assert (open(tmp_path / "figures" / "samples.md").read()
            == open(os.path.join(workdir, "figures", "samples.md")).read())


def test_tbptt_is_refused_for_a_task_that_reads_whole_sequences(tmp_path):
    c = importlib.import_module("configs.adding").get_config("smoke")
    c.train.tbptt = 10
    with pytest.raises(ValueError, match=r"train.tbptt=10 needs a stateful task \(char_lm\)"):
        train.train_and_evaluate(c, str(tmp_path))
