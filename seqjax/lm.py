"""Character-level language models on the pure cells: a stateful forward pass, sampling in
one ``lax.scan``, and log-probabilities of continuations.

A language model's parameters are one pytree (what ``CharLanguageModel`` holds):
``{"embed": {"embedding": (V, E)}, "layer0": cell params, ..., "head": {"kernel": (H, V),
"bias": (V,)}}``; its state is ``{"layer0": carry, ...}``, one carry per layer.

* ``forward(cell, params, tokens_BxT, carries)``: logits (B, T, V) and the carries after the
  last token (``recurrent`` is its part between embedding and head): the training step of
  truncated BPTT feeds them to the next window.
* ``sample(cell, params, prompt, length, temperature=, top_k=, key=)``: the prompt is read
  with ``forward``; then one ``lax.scan`` draws ``length`` characters, each fed back as the
  next input. ``temperature=0`` is greedy decoding (argmax); ``top_k`` > 0 keeps the k most
  likely characters.
* ``continuation_log_prob(cell, params, context, continuation)``: log p(continuation | context)
  in nats, the sum over its characters: what the cloze probes rank candidates by.

``CharLanguageModel`` is the flax module the trainer trains (embedding → ``model.layers``
recurrent layers → dropout → linear head); it runs these same pure functions.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import cells, models
from seqjax import unroll as U


def layer_names(params) -> list[str]:
    return sorted((k for k in params if k.startswith("layer")), key=lambda k: int(k[5:]))


def initial_carries(cell, params, batch: int) -> dict[str, Any]:
    """Zero state for ``batch`` streams, one carry per layer."""
    return {name: cell.initial_carry(batch, cell.hidden_size(params[name]),
                                     dtype=params[name]["W_x"].dtype)
            for name in layer_names(params)}


def head(params, h: jax.Array) -> jax.Array:
    bias = params["head"]["bias"]
    return h @ params["head"]["kernel"] + bias.reshape((1,) * (h.ndim - 1) + bias.shape)


def recurrent(cell, params, x_BxTxD, carries=None, *, probes_BxT1xH=None,
              unroll_options: dict | None = None):
    """The stacked layers over embedded inputs: (carries after the last step, top layer's
    hs (B, T, H)). ``carries`` None starts from zeros; ``probes_BxT1xH`` are added to the top
    layer's h_0..h_T (seqjax.diagnostics): their gradient is ∂L/∂h_t. The layers below the
    top run through ``unroll.unroll_stack``."""
    run = dict(unroll_options or {})
    if carries is None:
        carries = initial_carries(cell, params, x_BxTxD.shape[0])
    names = layer_names(params)
    below, hs = U.unroll_stack(cell, [params[n] for n in names[:-1]], x_BxTxD,
                               [carries[n] for n in names[:-1]], **run)
    top, probes = carries[names[-1]], None
    if probes_BxT1xH is not None:
        top, probes = U.probe_initial_carry(cell, top, probes_BxT1xH)
        run["impl"] = U.resolve_impl(run.get("impl", "scan"), cell.name, probes=True)
    top, hs = U.unroll(cell, params[names[-1]], hs, top, probes_BxTxH=probes, **run)
    return dict(zip(names, below + [top])), hs


def forward(cell, params, tokens_BxT, carries=None, **options):
    """(logits (B, T, V), carries after the last token): embedding, ``recurrent``, head."""
    new, hs = recurrent(cell, params, params["embed"]["embedding"][tokens_BxT], carries,
                        **options)
    return head(params, hs), new


def _step(cell, params, carries, token_B):
    """One character in, next-character logits (B, V) and the new carries out."""
    x, new = params["embed"]["embedding"][token_B], {}
    for name in layer_names(params):
        new[name], x = cell.step(params[name], carries[name], x)
    return head(params, x), new


def _choose(logits_V, key, temperature, top_k: int):
    if top_k:
        kth = jax.lax.top_k(logits_V, top_k)[0][-1]
        logits_V = jnp.where(logits_V < kth, -jnp.inf, logits_V)
    drawn = jax.random.categorical(key, logits_V / jnp.maximum(temperature, 1e-30))
    return jnp.where(temperature > 0, drawn, jnp.argmax(logits_V)).astype(jnp.int32)


def sample(cell, params, prompt_ids, length: int, *, temperature=1.0, top_k: int = 0,
           key=None) -> jax.Array:
    """``length`` character ids drawn after ``prompt_ids`` (1-D, at least one id).

    Character t is drawn with ``fold_in(key, t)`` from softmax(logits / temperature),
    restricted to the ``top_k`` most likely (0: all); ``temperature=0`` takes the argmax.
    Jit it with ``cell``, ``length`` and ``top_k`` static."""
    prompt_ids = jnp.asarray(prompt_ids, jnp.int32)
    if prompt_ids.ndim != 1 or prompt_ids.shape[0] < 1:
        raise ValueError(f"the prompt must be a non-empty 1-D array of ids, got shape "
                         f"{prompt_ids.shape}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 keeps every character), got {top_k!r}")
    key = jax.random.key(0) if key is None else key
    logits, carries = forward(cell, params, prompt_ids[None])

    def draw(state, t):
        logits_1xV, carries = state
        token = _choose(logits_1xV[0], jax.random.fold_in(key, t), temperature, top_k)
        return _step(cell, params, carries, token[None]), token

    _, ids = jax.lax.scan(draw, (logits[:, -1], carries), jnp.arange(length))
    return ids


def continuation_log_prob(cell, params, context_ids, continuation_ids) -> jax.Array:
    """log p(continuation | context) in nats: the sum over the continuation's characters."""
    context_ids = jnp.asarray(context_ids, jnp.int32)
    continuation_ids = jnp.asarray(continuation_ids, jnp.int32)
    ids = jnp.concatenate([context_ids, continuation_ids])
    logits, _ = forward(cell, params, ids[None, :-1])
    logp = jax.nn.log_softmax(logits[0, context_ids.shape[0] - 1:], axis=-1)
    return jnp.sum(jnp.take_along_axis(logp, continuation_ids[:, None], axis=-1))


class CharLanguageModel(nn.Module):
    """Embedding → dropout → ``model.layers`` recurrent layers of ``model.cell`` → dropout →
    linear head over ``vocab`` characters; called as ``apply(vars, batch, probes=, train=)``.

    ``batch["inputs"]`` (B, T) ids; ``batch["carry"]`` (optional) the state to start from,
    zeroed for the streams where ``batch["reset"]`` (B,) is True. Returns ``{"logits": (B, T,
    V), "carry": the state after the last token}``."""

    vocab: int
    model_config: Any

    @nn.compact
    def __call__(self, batch, probes=None, train: bool = False):
        m = self.model_config
        step_options, init_options = models.cell_options(m)
        cell = cells.get_cell(m.cell, **step_options)
        x = nn.Embed(self.vocab, m.embed_dim, name="embed")(batch["inputs"])
        x = nn.Dropout(m.dropout, deterministic=not train)(x)  # Zaremba et al.: dropout on the
        params, d = {}, m.embed_dim
        for layer in range(m.layers):
            params[f"layer{layer}"] = self.param(
                f"layer{layer}", lambda key, d=d: cell.init(key, d, m.hidden, **init_options))
            d = m.hidden
        carries = batch.get("carry")
        if carries is not None and "reset" in batch:  # new epoch: these streams start afresh
            keep = ~batch["reset"]
            carries = jax.tree.map(lambda c: c * keep.reshape((-1,) + (1,) * (c.ndim - 1))
                                   .astype(c.dtype), carries)
        new, hs = recurrent(cell, params, x, carries, probes_BxT1xH=probes,
                            unroll_options=models.unroll_options(m))
        hs = nn.Dropout(m.dropout, deterministic=not train)(hs)  # non-recurrent connections
        return {"logits": nn.Dense(self.vocab, name="head")(hs), "carry": new}


def last_prediction_gradients(cell, params, tokens_BxT) -> jax.Array:
    """Mean over the B windows of ‖∂ℓ_T/∂h_t‖, t = 0..T (top layer, h_0 the zero state): how
    much of the gradient of the LAST prediction's loss ℓ_T (its next character is
    ``tokens[:, T]``; the window's inputs are ``tokens[:, :T]``) reaches each earlier state.
    Truncated BPTT with windows of K characters keeps only t > T − K of it."""
    inputs, targets = tokens_BxT[:, :-1], tokens_BxT[:, -1]
    B, T = inputs.shape
    hidden = cell.hidden_size(params[layer_names(params)[-1]])

    def loss(probes):
        logits, _ = forward(cell, params, inputs, probes_BxT1xH=probes)
        logp = jax.nn.log_softmax(logits[:, -1], axis=-1)
        return -jnp.sum(jnp.take_along_axis(logp, targets[:, None], axis=-1))

    g = jax.grad(loss)(jnp.zeros((B, T + 1, hidden), params["head"]["kernel"].dtype))
    return jnp.mean(jnp.sqrt(jnp.sum(g * g, axis=-1)), axis=0)
