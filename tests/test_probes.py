"""The word-order probe (seqjax.probes, experiments/probes.py) and its sentence pairs: a
bag-of-words model scores both sentences of every pair identically by construction; the
probe runs end to end on tiny :smoke IMDB runs read back from their run directories. The
long-range cloze probe: ranking on a fake scorer, scores against a Python loop, missing
characters named, end to end on a :smoke char_lm run of the Portuguese corpus."""

from __future__ import annotations

import collections
import importlib
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqjax import cells, lm, models, probes, train
from seqjax.batching import InputSpec
from seqjax.data import imdb as imdb_data
from tests.realdata_helpers import (REPO, counts_of, data_config, no_network,  # noqa: F401
                                    shared, tiny_checksums, tiny_reviews, write_imdb_tree)

PAIRS = os.path.join(REPO, "tests", "fixtures", "order_pairs.json")


@pytest.fixture(scope="module")
def pairs():
    return probes.load_pairs(PAIRS)


def test_the_fixture_pairs_swap_the_order_of_the_same_words(pairs):
    assert len(pairs) == 11
    assert pairs[0]["sentences"][pairs[0]["positive"]] == "The food was good, not bad."
    assert "A comida estava boa, não estava ruim." in pairs[0]["note"]
    assert {p["positive"] for p in pairs} == {0, 1}   # the position of the positive one varies
    for p in pairs:
        a, b = (imdb_data.tokenize(s) for s in p["sentences"])
        assert collections.Counter(a) == collections.Counter(b) and a != b


def test_load_pairs_rejects_a_pair_of_different_words(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"pairs": [{"sentences": ["good film", "bad film"],
                                           "positive": 0}]}))
    with pytest.raises(ValueError, match=r"pair 0: 'good film' and 'bad film' do not hold the same"):
        probes.load_pairs(str(path))


def test_bag_of_words_scores_both_sentences_of_every_pair_identically(pairs):
    sentences = [s for p in pairs for s in p["sentences"]]
    words = {w for s in sentences for w in imdb_data.tokenize(s)}
    vocab = imdb_data.Vocabulary.build(sentences, len(words) + 2)
    assert len(vocab) == len(words) + 2
    c = importlib.import_module("configs.imdb").get_config("bow")
    spec = InputSpec(kind="tokens", dim=len(vocab), output_dim=2, readout="last", seq_len=32)
    model = models.build_model(ml_collections.FrozenConfigDict(c.model), spec)
    tokens = np.ones((1, 32), np.int32)
    params = jax.jit(model.init)(jax.random.key(3), {"inputs": tokens})["params"]
    result = probes.order_probe(probes.Scorer(model, params, vocab, 32, "pre", "bow"), pairs)
    assert result.p_positive.shape == (len(pairs), 2)
    assert len(np.unique(result.p_positive)) > 1                      # a real, non-constant model
    np.testing.assert_array_equal(result.p_positive[:, 0], result.p_positive[:, 1])  # exactly
    assert result.ties == len(pairs) and not result.correct.any() and result.fraction == 0.0
    table = probes.order_table({"bow": result}, pairs)
    assert "= (tie)" in table and f"**0 / {len(pairs)} (0%)**, {len(pairs)} ties" in table


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match=r"no config.json in it \(not a run directory\)"):
        probes.load_run(str(tmp_path))
    for name, variant, error in (("adding", "smoke", r"task 'adding' has no vocabulary"),
                                 ("imdb", "smoke", r"has no checkpoint to evaluate")):
        run = tmp_path / name
        run.mkdir()
        c = importlib.import_module(f"configs.{name}").get_config(variant)
        (run / "config.json").write_text(json.dumps(c.to_dict()))
        with pytest.raises(ValueError, match=error):
            probes.load_run(str(run))


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_imdb(tmp_path_factory):
    """Tiny IMDB (40+40 train, 32+32 test reviews) prepared into a data_dir."""
    from seqjax.data import pipeline
    root = tmp_path_factory.mktemp("tiny_imdb")
    reviews = tiny_reviews({"train": 40, "test": 32})
    raw = write_imdb_tree(str(root / "raw"), reviews)
    with tiny_checksums(imdb_counts=counts_of(reviews)):
        pipeline.prepare(imdb_data.ImdbReviews, data_config(raw, str(root / "tfds")))
    return str(root / "tfds")


def smoke_run(data_dir: str, workdir: str, kind: str) -> str:
    c = importlib.import_module("configs.imdb").get_config("smoke")
    c.data.data_dir, c.data.raw_dir = data_dir, ""
    c.model.kind = kind
    c.train.diagnostics_every = 0
    c.mesh.data = 1      # one device: the probe reads the run, how it was sharded does not matter
    train.train_and_evaluate(c, workdir)
    return workdir


def test_probe_end_to_end_on_a_smoke_bag_of_words_run(tiny_imdb, tmp_path, pairs):
    from experiments.probes import order
    run = smoke_run(tiny_imdb, str(tmp_path / "bow"), "bow")
    table = order([run])
    assert f"bow (bag of words): p(positive)" in table and f"{len(pairs)} ties" in table
    written = open(os.path.join(run, "figures", "order_probe.md")).read()
    assert written.count("= (tie)") == len(pairs) and "The food was good, not bad." in written
    assert "step 4, test accuracy" in table


@pytest.mark.slow  # a recurrent smoke run: ≈ 15 s of compiling on 2 shared cores
def test_probe_end_to_end_on_smoke_lstm_and_bag_of_words_runs(tiny_imdb, tmp_path, pairs):
    from experiments.probes import order
    runs = [smoke_run(tiny_imdb, str(tmp_path / name), kind)
            for name, kind in (("lstm", "recurrent"), ("bow", "bow"))]
    table = order(runs)
    header = table.splitlines()[0]
    assert "lstm (LSTM): p(positive)" in header and "bow (bag of words): p(positive)" in header
    assert len(table.splitlines()) == 2 + len(pairs) + 1 + 1 + len(runs)
    scorer, info = probes.load_run(runs[0])
    assert info["step"] == 4 and info["model"] == "LSTM" and 0 <= info["accuracy"] <= 1
    # the LSTM reads the order: two orders of words in the tiny vocabulary score differently
    p = probes.p_positive(scorer, ["the movie was great and the plot was awful",
                                   "the movie was awful and the plot was great"])
    assert p[0] != p[1]
    for run in runs:
        assert os.path.exists(os.path.join(run, "figures", "order_probe.md"))


@pytest.mark.slow  # builds the vocabulary of the 25,000 real training reviews (≈ 20 s)
def test_every_fixture_word_is_in_the_5000_word_imdb_vocabulary(tmp_path, pairs):
    from seqjax.tasks.imdb import ImdbTask
    c = importlib.import_module("configs.imdb").get_config("cpu")
    c.data.raw_dir, c.data.data_dir = shared("imdb"), str(tmp_path / "tfds")
    vocab = ImdbTask(c).vocab
    oov = {w for p in pairs for s in p["sentences"] for w in imdb_data.tokenize(s)
           if w not in vocab.index}
    assert not oov, f"out of the vocabulary: {sorted(oov)}"


# ------------------------------------------------------------------ the long-range cloze probe

CLOZE = os.path.join(REPO, "tests", "fixtures", "cloze.json")


@pytest.fixture(scope="module")
def cloze():
    return probes.load_cloze(CLOZE)


def test_the_cloze_fixture_holds_the_lectures_two_prompts(cloze):
    assert (cloze["before"], cloze["after"]) == ("\n", ".")
    first, second = cloze["items"]
    assert first["prompt"].endswith("aprender a falar ") and second["prompt"].endswith("para ")
    assert first["candidates"] == ["chinês", "francês", "inglês", "alemão"]
    assert (first["answer"], second["answer"]) == ("chinês", "José")
    assert (first["distance"], second["distance"]) == (59, 64)   # "China" ~60 characters back
    assert "O tempo que passei na China foi" in probes.cloze_prompts(cloze)


def test_load_cloze_rejects_a_missing_answer_or_clue(tmp_path):
    path = tmp_path / "cloze.json"
    for item, error in (({"answer": "c"}, r"item 0: the answer 'c' is not among"),
                        ({"clue": "Japão"}, r"item 0: the clue 'Japão' is not in the prompt"),
                        ({"candidates": ["a", "a"]}, r"item 0: needs two or more distinct")):
        good = {"prompt": "Na China falam ", "candidates": ["a", "b"], "answer": "a",
                "clue": "China"}
        path.write_text(json.dumps({"before": "", "after": "", "items": [good | item]}))
        with pytest.raises(ValueError, match=error):
            probes.load_cloze(str(path))


def test_candidates_are_ranked_by_total_log_prob_on_a_fake_scorer():
    item = {"prompt": "falar ", "candidates": ["chinês", "inglês", "alemão", "x"],
            "answer": "chinês", "clue": "falar"}
    calls = []
    table = {"chinês.": -6.0, "inglês.": -3.5, "alemão.": -6.0, "x.": -4.0}

    def fake(context, continuation):
        calls.append((context, continuation))
        return table[continuation]

    r = probes.score_cloze(fake, item, "\n", ".")
    assert calls[0] == ("\nfalar ", "chinês.") and len(calls) == 4
    np.testing.assert_array_equal(r.total, [-6.0, -3.5, -6.0, -4.0])
    np.testing.assert_allclose(r.per_char, [-6 / 7, -0.5, -6 / 7, -2.0])
    # by the total, not per character ("x." is -2 per character, the worst)
    assert list(r.ranks) == [4, 1, 4, 2] and r.answer == 0
    assert r.answer_rank == 4     # tied with alemão: a tie counts against both
    assert list(probes.rank_scores([-1.0, -2.0, -1.5])) == [1, 3, 2]
    data = {"before": "\n", "after": ".", "items": [item]}
    md = probes.cloze_table(probes.cloze_probe(fake, data), data)
    assert "| 1 | **chinês** (right) | -6.00 | -0.857 | 4 |" in md
    assert "|  | **right answer's rank** |  |  | prompt 1: 4 of 4 |" in md
    summary = probes.cloze_summary({"fake": [r]}, data)
    assert summary.splitlines()[-1] == "| fake | 4 |"


@pytest.fixture(scope="module")
def tiny_lm(cloze):
    """A freshly initialised tiny LSTM language model over the first prompt's characters."""
    from seqjax.config import base_config
    from seqjax.data.tiny_shakespeare import CharVocabulary
    item = cloze["items"][0]
    vocab = CharVocabulary.build("\n." + item["prompt"] + "".join(item["candidates"]))
    m = base_config().model
    m.cell, m.embed_dim, m.hidden = "lstm", 6, 8
    model = lm.CharLanguageModel(vocab=len(vocab), model_config=ml_collections.FrozenConfigDict(m))
    init = jax.jit(model.init)   # one compile instead of one per parameter
    params = init(jax.random.key(1), {"inputs": np.ones((1, 1), np.int32)})["params"]
    return cells.get_cell("lstm"), params, vocab


def test_cloze_score_is_the_sum_of_next_character_log_probs_of_a_python_loop(cloze, tiny_lm):
    cell, params, vocab = tiny_lm
    context, continuation = "\n" + cloze["items"][0]["prompt"], "chinês."
    ids = [int(i) for i in vocab.encode(context + continuation)]
    carries, expected = lm.initial_carries(cell, params, 1), 0.0
    for t, i in enumerate(ids[:-1]):        # an independent loop over cell.step
        x = params["embed"]["embedding"][jnp.asarray([i])]
        for name in lm.layer_names(params):
            carries[name], x = cell.step(params[name], carries[name], x)
        if t >= len(context) - 1:
            logits = np.asarray(lm.head(params, x), np.float64)[0]
            expected += logits[ids[t + 1]] - np.log(np.sum(np.exp(logits)))
    got = probes.lm_log_prob(cell, params, vocab)(context, continuation)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert expected < 0


def test_a_character_missing_from_the_vocabulary_is_named(cloze, tiny_lm):
    from seqjax.data.tiny_shakespeare import CharVocabulary
    cell, params, _ = tiny_lm
    vocab = CharVocabulary.build("\n." + cloze["items"][0]["prompt"] + "chinsfralemo")
    with pytest.raises(ValueError, match=r"character\(s\) 'ê' \(U\+00EA\) of 'chinês.' not in "
                                         r"the model's vocabulary"):
        probes.cloze_probe(probes.lm_log_prob(cell, params, vocab), cloze)


def test_load_lm_refuses_a_run_of_another_task(tmp_path):
    c = importlib.import_module("configs.imdb").get_config("smoke")
    (tmp_path / "config.json").write_text(json.dumps(c.to_dict()))
    with pytest.raises(ValueError, match=r"task 'imdb' is not a character-level language model"):
        probes.load_lm(str(tmp_path))
    with pytest.raises(ValueError, match=r"no config.json in it"):
        probes.load_lm(str(tmp_path / "nothing"))


@pytest.mark.slow  # prepares the Portuguese corpus and trains a smoke LSTM: ≈ 17 s on 2 shared cores
def test_cloze_end_to_end_on_a_smoke_portuguese_char_lm_run(tmp_path, cloze):
    from experiments.probes import cloze as run_cloze
    c = importlib.import_module("configs.char_lm").get_config("smoke")
    c.task.corpus, c.data.raw_dir = "por_eng", shared("por_eng")
    c.data.data_dir = str(tmp_path / "tfds")
    c.mesh.data = 1
    run = str(tmp_path / "pt")
    train.train_and_evaluate(c, run)
    out = run_cloze([run])
    written = open(os.path.join(run, "figures", "cloze_probe.md")).read()
    assert written in out and "LSTM 16 on por_eng, step 6, " in written
    assert "nats/char on its validation text" in written
    assert "**chinês** (right)" in written and "**José** (right)" in written
    last = out.splitlines()[-1]
    assert last.startswith("| pt (LSTM 16) | ") and len(last.split("|")) == 5
