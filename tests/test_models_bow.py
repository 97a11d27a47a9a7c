"""The bag-of-words baseline (model.kind="bow"): the mean embedding of the valid tokens through
one linear layer, checked against numpy; blind to word order and to padding by construction."""

import jax
import ml_collections
import numpy as np
import pytest

from seqjax import config as config_lib
from seqjax import models
from seqjax.batching import InputSpec

VOCAB, EMBED, T = 30, 6, 9
SPEC = InputSpec(kind="tokens", dim=VOCAB, output_dim=2, readout="last", seq_len=T)


def bow_config(**changes):
    c = config_lib.base_config()
    c.model.kind, c.model.embed_dim = "bow", EMBED
    c.model.update(changes)
    return ml_collections.FrozenConfigDict(c.model)


@pytest.fixture(scope="module")
def bow():
    model = models.build_model(bow_config(), SPEC)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, VOCAB, (4, T)).astype(np.int32)
    lengths = np.array([T, 5, 1, 3], np.int32)
    params = jax.jit(model.init)(jax.random.key(0), {"inputs": tokens, "lengths": lengths})["params"]
    apply = jax.jit(lambda b: model.apply({"params": params}, b))
    return model, params, apply, tokens, lengths


def test_output_is_the_mean_embedding_through_the_head(bow):
    model, params, apply, tokens, lengths = bow
    table = np.asarray(params["embed"]["embedding"], np.float64)
    W = np.asarray(params["head"]["kernel"], np.float64)
    b = np.asarray(params["head"]["bias"], np.float64)
    expected = np.stack([table[row[:n]].mean(0) @ W + b for row, n in zip(tokens, lengths)])
    got = np.asarray(apply({"inputs": tokens, "lengths": lengths}))
    assert got.shape == (4, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # without lengths every position counts
    full = np.stack([table[row].mean(0) @ W + b for row in tokens])
    np.testing.assert_allclose(np.asarray(apply({"inputs": tokens})), full, rtol=1e-5, atol=1e-6)


def test_permuting_the_valid_tokens_and_changing_the_padding_change_nothing(bow):
    _, _, apply, tokens, lengths = bow
    before = np.asarray(apply({"inputs": tokens, "lengths": lengths}))
    rng = np.random.default_rng(1)
    shuffled = tokens.copy()
    for row, n in zip(shuffled, lengths):
        row[:n] = rng.permutation(row[:n])
        row[n:] = rng.integers(0, VOCAB, T - n)   # anything past the length, padding id or not
    assert not (shuffled == tokens).all()
    after = np.asarray(apply({"inputs": shuffled, "lengths": lengths}))
    np.testing.assert_array_equal(after, before)  # bit for bit


def test_registry_config_and_errors():
    assert set(models.MODELS) == set(config_lib.MODEL_KINDS)
    c = config_lib.base_config()
    c.model.kind = "bow"
    config_lib.validate(c)
    batch = {"inputs": np.zeros((2, T), np.int32)}
    assert models.probe_shape(bow_config(), batch) is None
    with pytest.raises(ValueError, match=r"unknown model.kind 'cnn'; allowed: bow, feedforward, "
                                         r"lru_stack, recurrent"):
        models.build_model(bow_config(kind="cnn"), SPEC)
    tagger = InputSpec(kind="tokens", dim=VOCAB, output_dim=2, readout="all", seq_len=T)
    with pytest.raises(ValueError, match=r"readout 'all'"):
        models.build_model(bow_config(), tagger).init(jax.random.key(0), batch)
    real = InputSpec(kind="features", dim=3, output_dim=2, readout="last", seq_len=T)
    with pytest.raises(ValueError, match=r"needs token inputs; this task's inputs are 'features'"):
        models.build_model(bow_config(), real).init(jax.random.key(0),
                                                    {"inputs": np.zeros((2, T, 3), np.float32)})
