r"""One-to-many and many-to-many models on the pure cells: captioning and translation.

* ``VGGEncoder``: VGG-style image encoder (Simonyan & Zisserman 2015): blocks of
  ``convs_per_block`` 3×3 convolutions + ReLU and a 2×2 max-pool, channels from the config
  (VGG's 64, 128, 256, 512, …), then the flattened map → a dense layer ("fc", ReLU). Flattening
  (not global average pooling) keeps *where* things are, which captions such as "a seven above
  a two" need.
* ``CaptionModel``: image → ``VGGEncoder`` → features that **initialise the decoder's carry**
  (h_0 = tanh(W_h f + b_h), C_0 = W_c f + b_c, as in Show, Attend and Tell's init MLP), then an
  LSTM (any pure cell) reads BOS w_1 … w_n and predicts w_1 … w_n EOS. The image is not fed as
  an input token (Show and Tell's choice); the carry holds it.
* ``Seq2Seq``: source tokens → encoder (one layer, optionally bidirectional, masked by the
  source lengths) → a bridge (h_0 = tanh(W [h_fwd; h_bwd]), C_0 = W' [C_fwd; C_bwd]) → decoder.
  ``attention="luong"`` adds Luong et al. (2015) global attention with the *general* score and
  no input feeding:

  .. math::
      s_{t,j} = h_t^\top W_a \bar h_j,\quad \alpha_t = \mathrm{softmax}_j(s_{t,j})\ (\text{padding masked}),\quad
      c_t = \textstyle\sum_j \alpha_{t,j} \bar h_j,\quad \tilde h_t = \tanh(W_c [c_t; h_t]),\quad
      p(y_t) = \mathrm{softmax}(W_o \tilde h_t + b_o)

  ``attention="none"``: p(y_t) = softmax(W_o h_t + b_o) (Sutskever et al. 2014; the bridge
  carries the whole source).

Every model has two ways through the decoder that give the same numbers (tested):
``__call__`` (teacher forcing: the whole target at once, one ``unroll``, for training) and
``init_decoder`` + ``decode_step`` (one token at a time, for ``greedy_decode`` / ``beam_search``).
The recurrent weights are the pure cell's pytree (``params["decoder"]`` is what
``cell.init`` returns). ``probes`` (B, T+1, H) are added to the decoder's h_0..h_T, so the
trainer's gradient-flow diagnostics measure ∂L/∂h_t of the decoder.

Decoding (``greedy_decode``, ``beam_search``) is model-agnostic and jit-friendly: a
``lax.scan`` over a fixed ``max_len`` steps with a "done" mask, driven by
``step_fn(state, tokens_B) -> (state, logprobs_BxV)``.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import cells
from seqjax import unroll as U
from seqjax.models import cell_options, unroll_options
from seqjax.text import BOS, EOS, PAD

ATTENTIONS = ("none", "luong")
NEG_INF = -1e9


# --------------------------------------------------------------------------- decoding


def greedy_decode(step_fn: Callable, state: Any, batch: int, *, max_len: int,
                  eos_id: int = EOS, bos_id: int = BOS, pad_id: int = PAD):
    """Pick the most probable token at every step.

    Returns ``(tokens_BxL, logprob_B)``: L = ``max_len`` tokens per example, the first EOS
    kept and PAD after it; logprob_B is the sum of the chosen tokens' log-probabilities up
    to and including EOS.
    """
    def body(carry, _):
        state, tok_B, done_B, score_B = carry
        state, logp_BxV = step_fn(state, tok_B)
        nxt_B = jnp.argmax(logp_BxV, axis=-1).astype(jnp.int32)
        gain_B = jnp.take_along_axis(logp_BxV, nxt_B[:, None], axis=-1)[:, 0]
        nxt_B = jnp.where(done_B, pad_id, nxt_B)
        score_B = score_B + jnp.where(done_B, 0.0, gain_B)
        return (state, nxt_B, done_B | (nxt_B == eos_id), score_B), nxt_B

    init = (state, jnp.full((batch,), bos_id, jnp.int32), jnp.zeros((batch,), bool),
            jnp.zeros((batch,), jnp.float32))
    (_, _, _, score_B), toks_LxB = jax.lax.scan(body, init, None, length=max_len)
    return toks_LxB.T, score_B


def beam_search(step_fn: Callable, state: Any, batch: int, *, beam: int, max_len: int,
                length_penalty: float = 0.0, eos_id: int = EOS, bos_id: int = BOS,
                pad_id: int = PAD):
    """Keep the ``beam`` most probable prefixes per example at every step.

    ``state`` is the decoder state of ``batch`` examples (leading axis B); it is repeated to
    B·K rows here. A finished beam (it emitted EOS) keeps its score and only extends with PAD.
    At the end the beam with the highest score / len^``length_penalty`` wins (len counts
    tokens up to and including EOS; penalty 0: the raw log-probability).

    Returns ``(tokens_BxL, logprob_B, all_tokens_BxKxL, all_logprob_BxK)``, the beams sorted
    best first by the (penalised) final score.
    """
    K = beam
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"beam must be a positive integer, got {beam!r}")
    state = jax.tree.map(lambda a: jnp.repeat(a, K, axis=0), state)  # row b*K + k
    scores_BxK = jnp.tile(jnp.concatenate([jnp.zeros((1,)), jnp.full((K - 1,), NEG_INF)]),
                          (batch, 1)).astype(jnp.float32)
    toks_BxKxL = jnp.full((batch, K, max_len), pad_id, jnp.int32)
    done_BxK = jnp.zeros((batch, K), bool)
    last_BK = jnp.full((batch * K,), bos_id, jnp.int32)

    def body(carry, t):
        state, last_BK, toks_BxKxL, scores_BxK, done_BxK = carry
        state, logp_BKxV = step_fn(state, last_BK)
        V = logp_BKxV.shape[-1]
        logp_BxKxV = logp_BKxV.reshape(batch, K, V)
        only_pad_V = jnp.full((V,), NEG_INF).at[pad_id].set(0.0)
        logp_BxKxV = jnp.where(done_BxK[:, :, None], only_pad_V, logp_BxKxV)
        cand_BxKV = (scores_BxK[:, :, None] + logp_BxKxV).reshape(batch, K * V)
        scores_BxK, idx_BxK = jax.lax.top_k(cand_BxKV, K)
        src_BxK, tok_BxK = idx_BxK // V, (idx_BxK % V).astype(jnp.int32)
        rows_BK = (jnp.arange(batch)[:, None] * K + src_BxK).reshape(-1)
        state = jax.tree.map(lambda a: a[rows_BK], state)
        toks_BxKxL = jnp.take_along_axis(toks_BxKxL, src_BxK[:, :, None], axis=1)
        toks_BxKxL = toks_BxKxL.at[:, :, t].set(tok_BxK)
        done_BxK = jnp.take_along_axis(done_BxK, src_BxK, axis=1) | (tok_BxK == eos_id)
        return (state, tok_BxK.reshape(-1), toks_BxKxL, scores_BxK, done_BxK), None

    init = (state, last_BK, toks_BxKxL, scores_BxK, done_BxK)
    (_, _, toks_BxKxL, scores_BxK, _), _ = jax.lax.scan(body, init, jnp.arange(max_len))
    lengths_BxK = jnp.sum(toks_BxKxL != pad_id, axis=-1).astype(jnp.float32)
    final_BxK = scores_BxK / jnp.maximum(lengths_BxK, 1.0) ** length_penalty
    order_BxK = jnp.argsort(-final_BxK, axis=1)
    toks_BxKxL = jnp.take_along_axis(toks_BxKxL, order_BxK[:, :, None], axis=1)
    scores_BxK = jnp.take_along_axis(scores_BxK, order_BxK, axis=1)
    return toks_BxKxL[:, 0], scores_BxK[:, 0], toks_BxKxL, scores_BxK


# --------------------------------------------------------------------------- pieces


class VGGEncoder(nn.Module):
    """(B, H, W, C) images → (B, feature_dim) features. H and W must divide by 2^len(channels)."""

    channels: tuple = (64, 128, 256, 512)
    convs_per_block: int = 2
    feature_dim: int = 256

    @nn.compact
    def __call__(self, image_BxHxWxC):
        B, H, W, _ = image_BxHxWxC.shape
        if H % 2 ** len(self.channels) or W % 2 ** len(self.channels):
            raise ValueError(f"VGGEncoder with {len(self.channels)} pooling blocks needs image "
                             f"sides divisible by {2 ** len(self.channels)}, got {H}x{W}")
        x = image_BxHxWxC
        for i, ch in enumerate(self.channels):
            for j in range(self.convs_per_block):
                x = nn.relu(nn.Conv(ch, (3, 3), padding="SAME", name=f"block{i}_conv{j}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        return nn.relu(nn.Dense(self.feature_dim, name="fc")(x.reshape(B, -1)))


class _Decoder(nn.Module):
    """Embedding → pure cell → (attention) → vocabulary logits; shared by both models."""

    vocab: int
    embed_dim: int
    hidden: int
    cell_name: str = "lstm"
    step_options: tuple = ()
    init_options: tuple = ()
    unroll_options: tuple = ()
    attention: str = "none"
    dropout: float = 0.0

    def setup(self):
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention={self.attention!r} is not allowed; choose one of: "
                             f"{', '.join(ATTENTIONS)}")
        self.cell = cells.get_cell(self.cell_name, **dict(self.step_options))
        self.embed = nn.Embed(self.vocab, self.embed_dim)
        self.core = self.param("core", lambda key: self.cell.init(
            key, self.embed_dim, self.hidden, **dict(self.init_options)))
        if self.attention == "luong":
            self.score = nn.Dense(self.hidden, use_bias=False)  # W_a (applied to the memory)
            self.combine = nn.Dense(self.hidden, use_bias=False)  # W_c
        self.out = nn.Dense(self.vocab)
        self.drop = nn.Dropout(self.dropout)

    def _readout(self, h_BxTxH, memory, train):
        if self.attention == "luong":
            mem_BxSxM, mask_BxS = memory
            keys_BxSxH = self.score(mem_BxSxM)
            s_BxTxS = jnp.einsum("bth,bsh->bts", h_BxTxH, keys_BxSxH)
            s_BxTxS = jnp.where(mask_BxS[:, None, :], s_BxTxS, NEG_INF)
            alpha_BxTxS = jax.nn.softmax(s_BxTxS, axis=-1)
            ctx_BxTxM = jnp.einsum("bts,bsm->btm", alpha_BxTxS, mem_BxSxM)
            h_BxTxH = jnp.tanh(self.combine(jnp.concatenate([ctx_BxTxM, h_BxTxH], -1)))
        return self.out(self.drop(h_BxTxH, deterministic=not train))

    def teacher_forced(self, carry0, tokens_BxT, memory=None, probes=None, train=False):
        x_BxTxE = self.drop(self.embed(tokens_BxT), deterministic=not train)
        carry0, probes_BxTxH = U.probe_initial_carry(self.cell, carry0, probes)
        opts = dict(self.unroll_options)
        opts["impl"] = U.resolve_impl(opts.get("impl", "scan"), self.cell_name,
                                    probes=probes is not None)
        _, hs_BxTxH = U.unroll(self.cell, self.core, x_BxTxE, carry0,
                               probes_BxTxH=probes_BxTxH, **opts)
        return self._readout(hs_BxTxH, memory, train)

    def step(self, carry, tokens_B, memory=None):
        carry, h_BxH = self.cell.step(self.core, carry, self.embed(tokens_B))
        logits_BxV = self._readout(h_BxH[:, None], memory, False)[:, 0]
        return carry, jax.nn.log_softmax(logits_BxV, axis=-1)


def _decoder_from_config(m, vocab: int, attention: str = "none") -> _Decoder:
    step, init = cell_options(m)
    return _Decoder(vocab=vocab, embed_dim=m.embed_dim, hidden=m.hidden, cell_name=m.cell,
                    step_options=tuple(sorted(step.items())),
                    init_options=tuple(sorted(init.items())),
                    unroll_options=tuple(sorted(unroll_options(m).items())),
                    attention=attention, dropout=m.dropout, name="decoder")


# --------------------------------------------------------------------------- models


def init_key(key):
    """An ``rbg`` PRNG key derived from any key (same key → same parameters).

    Why: on the project's 2-core CPU each threefry random call in a program adds seconds of
    XLA compile time (measured: one ``jax.random.normal`` 1–5 s under load, ten of them in one
    jit 15 s; the same call with ``rbg`` 0.5 s), and a CNN + LSTM init makes ~20 such calls.
    Only parameter initialisation uses it; dropout keys are the trainer's.
    """
    data = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    data = jnp.resize(data, (4,)) ^ jnp.array([0, 0, 0x9E3779B9, 0x7F4A7C15], jnp.uint32)
    return jax.random.wrap_key_data(data, impl="rbg")


class _FastInit:
    """``init`` under ``jax.jit`` with ``rbg`` keys (``init_key``): one fast compile, instead of
    one compile per operation (an eager init of a CNN + scan) or per threefry call."""

    def init(self, rngs, *args, **kwargs):
        if not isinstance(rngs, dict):
            rngs = {"params": rngs}
        rngs = {k: init_key(v) for k, v in rngs.items()}
        return jax.jit(lambda r, a, k: nn.Module.init(self, r, *a, **k))(rngs, args, kwargs)


class _EncoderDecoder(_FastInit):
    """What both models share once ``init_decoder(batch, train) -> (carry, memory)`` exists:
    the teacher-forced pass and the one-token decoding step."""

    def __call__(self, batch, probes=None, train: bool = False):
        carry, memory = self.init_decoder(batch, train)
        return self.decoder.teacher_forced(carry, batch["dec_inputs"], memory, probes, train)

    def decode_step(self, state, tokens_B):
        carry, memory = state
        carry, logp = self.decoder.step(carry, tokens_B, memory)
        return (carry, memory), logp


class CaptionModel(_EncoderDecoder, nn.Module):
    """Image → VGG features → decoder carry; the decoder writes the caption.

    Batch: ``image`` (B, H, W, C) float in [0, 1], ``dec_inputs`` (B, T) int32 (BOS w…).
    Returns logits (B, T, vocab).
    """

    model_config: Any
    vocab: int
    channels: tuple = (64, 128, 256, 512)
    convs_per_block: int = 2
    feature_dim: int = 256

    def setup(self):
        m = self.model_config
        self.encoder = VGGEncoder(self.channels, self.convs_per_block, self.feature_dim)
        self.decoder = _decoder_from_config(m, self.vocab)
        self.bridge_h = nn.Dense(m.hidden)
        self.bridge_c = nn.Dense(m.hidden)

    def init_decoder(self, batch, train: bool = False):
        """The decoder's state before BOS: (carry, memory=None)."""
        f_BxF = self.encoder(batch["image"])
        cell = cells.get_cell(self.model_config.cell, **dict(self.decoder.step_options))
        carry = cell.initial_carry(f_BxF.shape[0], self.model_config.hidden, dtype=f_BxF.dtype)
        carry = cell.with_hidden(carry, jnp.tanh(self.bridge_h(f_BxF)))
        c = self.bridge_c(f_BxF)  # always created, so params do not depend on the cell
        if isinstance(carry, cells.LSTMCarry):
            carry = carry._replace(c=c)
        return carry, None


class Seq2Seq(_EncoderDecoder, nn.Module):
    """Encoder–decoder for translation, with or without Luong attention.

    Batch: ``src`` (B, S) int32 padded with PAD, ``src_lengths`` (B,), ``dec_inputs`` (B, T).
    Returns logits (B, T, tgt_vocab).
    """

    model_config: Any
    src_vocab: int
    tgt_vocab: int
    attention: str = "luong"

    def setup(self):
        m = self.model_config
        step, init = cell_options(m)
        self.enc_cell = cells.get_cell(m.cell, **step)
        self.src_embed = nn.Embed(self.src_vocab, m.embed_dim)
        make = lambda key: self.enc_cell.init(key, m.embed_dim, m.hidden, **init)
        if m.bidirectional:
            self.encoder = self.param("encoder", lambda key: {
                "fwd": make(jax.random.fold_in(key, 0)), "bwd": make(jax.random.fold_in(key, 1))})
        else:
            self.encoder = self.param("encoder", make)
        self.decoder = _decoder_from_config(m, self.tgt_vocab, self.attention)
        self.bridge_h = nn.Dense(m.hidden)
        self.bridge_c = nn.Dense(m.hidden)
        self.drop = nn.Dropout(m.dropout)

    def encode(self, batch, train: bool = False):
        """(final carry of the encoder (fwd and bwd concatenated), memory_BxSxM, mask_BxS)."""
        m = self.model_config
        x_BxSxE = self.drop(self.src_embed(batch["src"]), deterministic=not train)
        lengths = batch["src_lengths"]
        opts = unroll_options(m)
        if m.bidirectional:
            carry, mem = U.unroll_bidirectional(self.enc_cell, self.encoder, x_BxSxE,
                                                lengths=lengths, **opts)
            carry = jax.tree.map(lambda f, b: jnp.concatenate([f, b], -1),
                                 carry["fwd"], carry["bwd"])
        else:
            carry, mem = U.unroll(self.enc_cell, self.encoder, x_BxSxE, lengths=lengths, **opts)
        mask_BxS = U.valid_mask(lengths, x_BxSxE.shape[1])
        return carry, mem, mask_BxS

    def init_decoder(self, batch, train: bool = False):
        enc_carry, mem, mask = self.encode(batch, train)
        h_enc = self.enc_cell.hidden(enc_carry)
        dec_cell = self.enc_cell
        carry = dec_cell.initial_carry(h_enc.shape[0], self.model_config.hidden, dtype=h_enc.dtype)
        carry = dec_cell.with_hidden(carry, jnp.tanh(self.bridge_h(h_enc)))
        c_src = enc_carry.c if isinstance(enc_carry, cells.LSTMCarry) else h_enc
        c = self.bridge_c(c_src)
        if isinstance(carry, cells.LSTMCarry):
            carry = carry._replace(c=c)
        return carry, ((mem, mask) if self.attention == "luong" else None)


def decode(model: nn.Module, params, batch, *, max_len: int, beam: int = 1,
           length_penalty: float = 0.0):
    """Greedy (``beam=1``) or beam-search decoding of a ``CaptionModel``/``Seq2Seq``:
    (tokens_BxL, logprob_B). Jit it with ``max_len``/``beam`` static."""
    variables = {"params": params}
    state = model.apply(variables, batch, method="init_decoder")
    B = jax.tree.leaves(batch)[0].shape[0]

    def step_fn(s, tok_B):  # PAD and BOS are never targets: never emit them
        s, logp_BxV = model.apply(variables, s, tok_B, method="decode_step")
        return s, logp_BxV.at[:, jnp.array([PAD, BOS])].set(NEG_INF)

    if beam == 1:
        return greedy_decode(step_fn, state, B, max_len=max_len)
    toks, score, _, _ = beam_search(step_fn, state, B, beam=beam, max_len=max_len,
                                    length_penalty=length_penalty)
    return toks, score
