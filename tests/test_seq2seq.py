"""Decoding, teacher forcing, BLEU, and the models of seqjax.seq2seq."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import seq2seq as S
from seqjax import text
from seqjax.config import base_config
from seqjax.tasks.seq2seq_common import masked_ce

NEG = -1e9

# ----------------------------------------------------------------- text and BLEU


def test_tokenize_detokenize_and_vocab():
    toks = text.tokenize("Tom's here, isn't he?")
    assert toks == ["tom", "'", "s", "here", ",", "isn", "'", "t", "he", "?"]
    assert text.detokenize(toks) == "tom's here, isn't he?"
    v = text.Vocab.build([["b", "a"], ["a", "c"], ["c"]], min_count=2)
    assert v.words == list(text.SPECIALS) + ["a", "c"]  # by count, ties alphabetically
    assert v.encode(["a", "zzz"]) == [4, text.UNK]
    assert v.decode([text.BOS, 4, 5, text.EOS, 4]) == ["a", "c"]
    arr = text.decoder_arrays([[4, 5, 4]], max_len=2)
    assert arr["dec_inputs"].tolist() == [[text.BOS, 4, 5]]
    assert arr["targets"].tolist() == [[4, 5, text.EOS]]
    with pytest.raises(ValueError, match="min_count must be >= 1, got 0"):
        text.Vocab.build([], min_count=0)


def test_bleu_identical_is_100_and_a_hand_count():
    hyps = ["a man rides a horse .", "two dogs play in the snow ."]
    refs = [[hyps[0], "something else entirely"], [hyps[1]]]  # 2 references, then 1
    assert all(v == pytest.approx(100.0) for v in text.bleu(hyps, refs).values())
    # unigram precision 3/4, no brevity penalty (same length): BLEU-1 = 75
    assert text.bleu(["w x y z"], [["w x q z"]])["bleu1"] == pytest.approx(75.0)
    # bigrams: (w x) matches, (x y), (y z) do not: precision 1/3; BLEU-2 = sqrt(3/4 * 1/3)
    assert text.bleu(["w x y z"], [["w x q z"]])["bleu2"] == pytest.approx(100 * 0.5)
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        text.bleu(["a", "b"], [["a"]])


# ----------------------------------------------------------------- decoding on a known model

V = 5  # PAD, BOS, EOS and two words (3, 4)


def table_step(logp_VxV):
    """A Markov 'model': the next token's log-probabilities depend on the last token only."""
    def step(state, tok_B):
        return tok_B, logp_VxV[tok_B]
    return step


def brute_force_best(logp_VxV, L):
    """The most probable token sequence of exactly L steps (PAD after EOS costs nothing)."""
    best, best_score = None, -np.inf
    for seq in itertools.product(range(V), repeat=L):
        if any(t in (text.PAD, text.BOS) for t in seq):
            # PAD only after EOS
            first_eos = seq.index(text.EOS) if text.EOS in seq else L
            if any(t == text.BOS for t in seq) or any(
                    t == text.PAD for t in seq[:first_eos + 1]) or any(
                    t != text.PAD for t in seq[first_eos + 1:]):
                continue
        elif text.EOS in seq and seq.index(text.EOS) < L - 1:
            continue
        score, prev = 0.0, text.BOS
        for t in seq:
            if prev == text.EOS or prev == text.PAD:
                break
            score += logp_VxV[prev, t]
            prev = t
        if score > best_score:
            best, best_score = list(seq), score
    return best, best_score


def tricky_table():
    """Greedy picks 3 (p=5/9) first, then EOS (.34): .19; the best is 4 EOS (4/9 × .9 = .4)."""
    p = np.full((V, V), 1e-12)
    p[text.BOS, [3, 4]] = [0.5, 0.4]
    p[3, [text.EOS, 3, 4]] = [0.34, 0.33, 0.33]
    p[4, [text.EOS, 3]] = [0.9, 0.1]
    p[text.EOS, text.PAD] = p[text.PAD, text.PAD] = 1.0
    return np.log(p / p.sum(1, keepdims=True)).astype(np.float32)


def test_greedy_follows_the_argmax_chain():
    logp = tricky_table()
    toks, score = S.greedy_decode(table_step(jnp.asarray(logp)), jnp.zeros((2,), jnp.int32), 2,
                                  max_len=4)
    # python loop: argmax at each step from BOS; 3 -> EOS (.34)
    expected, prev, total = [], text.BOS, 0.0
    for _ in range(4):
        nxt = int(np.argmax(logp[prev])) if prev != text.EOS and prev != text.PAD else text.PAD
        if prev not in (text.EOS, text.PAD):
            total += logp[prev, nxt]
        expected.append(nxt)
        prev = nxt
    assert expected == [3, text.EOS, text.PAD, text.PAD]
    assert np.asarray(toks).tolist() == [expected] * 2
    np.testing.assert_allclose(np.asarray(score), [total] * 2, rtol=1e-6)


def test_beam_finds_the_better_sequence_greedy_misses():
    logp = tricky_table()
    toks, score, all_toks, all_scores = S.beam_search(
        table_step(jnp.asarray(logp)), jnp.zeros((1,), jnp.int32), 1, beam=2, max_len=4)
    assert np.asarray(toks)[0].tolist() == [4, text.EOS, text.PAD, text.PAD]
    np.testing.assert_allclose(float(score[0]), logp[text.BOS, 4] + logp[4, text.EOS], rtol=1e-5)
    assert np.all(np.diff(np.asarray(all_scores[0])) <= 0)  # sorted best first


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    p = rng.random((V, V)) ** 3
    p[:, [text.PAD, text.BOS]] = 1e-12
    p[text.EOS] = p[text.PAD] = 1e-12
    p[text.EOS, text.PAD] = p[text.PAD, text.PAD] = 1.0
    logp = np.log(p / p.sum(1, keepdims=True)).astype(np.float32)
    L = 3
    best, best_score = brute_force_best(logp, L)
    toks, score, _, _ = S.beam_search(table_step(jnp.asarray(logp)), jnp.zeros((1,), jnp.int32),
                                      1, beam=V ** L, max_len=L)
    assert np.asarray(toks)[0].tolist() == best
    np.testing.assert_allclose(float(score[0]), best_score, rtol=1e-5)


def test_beam_rejects_bad_width():
    with pytest.raises(ValueError, match="beam must be a positive integer, got 0"):
        S.beam_search(table_step(jnp.zeros((V, V))), jnp.zeros((1,), jnp.int32), 1, beam=0,
                      max_len=2)


# ----------------------------------------------------------------- models: teacher forcing == loop


def model_config(**kw):
    m = base_config().model
    m.hidden, m.embed_dim = 8, 6
    for k, v in kw.items():
        m[k] = v
    return m


def loop_logp(model, params, batch):
    """Teacher forcing by hand: decode_step fed the reference tokens one at a time."""
    variables = {"params": params}
    state = jax.jit(lambda b: model.apply(variables, b, method="init_decoder"))(batch)
    step = jax.jit(lambda s, tok: model.apply(variables, s, tok, method="decode_step"))
    out = []
    for t in range(batch["dec_inputs"].shape[1]):  # the loop is Python; each step compiled once
        state, logp = step(state, batch["dec_inputs"][:, t])
        out.append(np.asarray(logp))
    return np.stack(out, 1)


def loop_ce(logp_BxTxV, targets_BxT):
    total, n = 0.0, 0
    for b in range(targets_BxT.shape[0]):
        for t in range(targets_BxT.shape[1]):
            if targets_BxT[b, t] != text.PAD:
                total -= logp_BxTxV[b, t, targets_BxT[b, t]]
                n += 1
    return total / n


def seq2seq_batch():
    src = jnp.array([[5, 6, 7, 8, 9], [9, 8, 0, 0, 0]], jnp.int32)
    arr = text.decoder_arrays([[4, 5, 6], [7]], max_len=4)
    return {"src": src, "src_lengths": jnp.array([5, 2], jnp.int32),
            "dec_inputs": jnp.asarray(arr["dec_inputs"]), "targets": jnp.asarray(arr["targets"])}


@pytest.mark.parametrize("attention,bidirectional", [("luong", True), ("none", False)])
def test_seq2seq_teacher_forced_loss_equals_loop(attention, bidirectional):
    model = S.Seq2Seq(model_config(bidirectional=bidirectional), src_vocab=12, tgt_vocab=10,
                      attention=attention)
    batch = seq2seq_batch()
    params = model.init({"params": jax.random.key(0)}, batch)["params"]
    apply = jax.jit(lambda b: model.apply({"params": params}, b))
    logits = apply(batch)
    with jax.numpy_dtype_promotion("standard"):
        ce, metrics = masked_ce(logits, batch["targets"])
    ref = loop_logp(model, params, batch)
    np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(logits)), ref, atol=1e-5)
    np.testing.assert_allclose(float(ce), loop_ce(ref, np.asarray(batch["targets"])), rtol=1e-5)
    # padding of the source is invisible: change the padded tokens, same outputs
    batch2 = dict(batch, src=batch["src"].at[1, 2:].set(3))
    np.testing.assert_allclose(np.asarray(apply(batch2)), np.asarray(logits), atol=1e-6)
    if attention == "none" and not bidirectional:
        # the recurrent weights are the pure cell's pytree
        assert set(params["encoder"]) == {"W_x", "W_h", "b"}
        assert set(params["decoder"]["core"]) == {"W_x", "W_h", "b"}


def test_caption_model_teacher_forcing_greedy_and_probes():
    model = S.CaptionModel(model_config(), vocab=9, channels=(2, 4), feature_dim=8)
    arr = text.decoder_arrays([[4, 5], [6, 7, 8]], max_len=3)
    batch = {"image": jax.random.uniform(jax.random.key(1), (2, 8, 8, 1)),
             "dec_inputs": jnp.asarray(arr["dec_inputs"]), "targets": jnp.asarray(arr["targets"])}
    params = model.init({"params": jax.random.key(0)}, batch)["params"]
    assert set(params["encoder"]) == {"block0_conv0", "block0_conv1", "block1_conv0",
                                      "block1_conv1", "fc"}
    assert params["encoder"]["block1_conv0"]["kernel"].shape == (3, 3, 2, 4)
    variables = {"params": params}
    apply = jax.jit(lambda b, p: model.apply(variables, b, probes=p))
    logits = apply(batch, None)
    np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(logits)),
                               loop_logp(model, params, batch), atol=1e-5)
    # greedy decoding == the argmax chain of decode_step (PAD/BOS never emitted)
    with jax.numpy_dtype_promotion("standard"):
        toks, _ = jax.jit(lambda b: S.decode(model, params, b, max_len=4))(batch)
    state = jax.jit(lambda b: model.apply(variables, b, method="init_decoder"))(batch)
    step = jax.jit(lambda s, tok: model.apply(variables, s, tok, method="decode_step"))
    tok, done = jnp.full((2,), text.BOS, jnp.int32), np.zeros(2, bool)
    for t in range(4):
        state, logp = step(state, tok)
        logp = np.asarray(logp).copy()
        logp[:, [text.PAD, text.BOS]] = -np.inf
        nxt = np.where(done, text.PAD, logp.argmax(-1))
        np.testing.assert_array_equal(np.asarray(toks)[:, t], nxt)
        done |= nxt == text.EOS
        tok = jnp.asarray(nxt, jnp.int32)
    # probes: the gradient wrt a zero probe on h_t is dL/dh_t; zero probes change nothing
    probes = jnp.zeros((2, 5, 8))
    np.testing.assert_allclose(np.asarray(apply(batch, probes)), np.asarray(logits), atol=1e-6)
    g = jax.jit(jax.grad(lambda p: model.apply(variables, batch, probes=p)[:, 1].sum()))(probes)
    g = np.abs(np.asarray(g)).sum(-1)
    assert np.all(g[:, :3] > 0) and np.all(g[:, 3:] == 0)  # logits at t=1 read h_0..h_2 only
    with pytest.raises(ValueError, match=r"needs image sides divisible by 4, got 6x6"):
        model.init({"params": jax.random.key(0)}, dict(batch, image=jnp.zeros((2, 6, 6, 1))))
