"""flax.linen modules around the pure recurrent core: embeddings, heads, baselines
(feed-forward on the flat sequence; bag of words, blind to word order).

The recurrent parameters inside these modules are exactly the pure cell's pytree
(``params["core"]["layer0"]`` is what ``cell.init`` returns), so everything in
``seqjax.cells``/``unroll``/``diagnostics`` applies to a trained model's weights as is.

Every model is called as ``model.apply(variables, batch, probes=None, train=False)``
with the task's batch dict (``inputs``, optional ``lengths``), and returns the head's
outputs: (B, output_dim) for ``readout="last"``, (B, T, output_dim) for ``"all"``.
``probes`` (B, T+1, H), when given, are added to the top layer's hidden states h_0..h_T
(see seqjax.diagnostics): the gradient with respect to them is ∂L/∂h_t.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax import cells
from seqjax import unroll as U
from seqjax.batching import InputSpec
from seqjax.config import check_lru_stack
from seqjax.config import check_spike_readout


def cell_options(model_config) -> tuple[dict, dict]:
    """(step options, init options) for ``model_config.cell`` from the config's model fields;
    ``init_preset``, which every cell takes, is among the init options."""
    cell_cls = cells.CELLS[model_config.cell]
    step_fields = {f.name for f in dataclasses.fields(cell_cls)}
    step = {k: model_config[k] for k in step_fields if k in model_config}
    init = {k: model_config[k] for k in cell_cls.init_options + ("init_preset",)
            if k in model_config}
    return step, init


def unroll_options(model_config) -> dict:
    """``unroll`` keywords from the config's model fields; ``model.impl`` may be "auto" or an
    impl already resolved by the caller (``seqjax.unroll.resolve_impl`` keeps it as is)."""
    impl = U.resolve_impl(model_config.impl, model_config.cell)
    hoist = {"auto": None, "on": True, "off": False}[model_config.hoist]
    return dict(impl=impl, unroll=model_config.unroll, remat=model_config.remat, hoist=hoist)


class RecurrentCore(nn.Module):
    """``layers`` stacked recurrent layers (optionally bidirectional) of one pure cell."""

    cell_name: str
    hidden: int
    layers: int = 1
    bidirectional: bool = False
    step_options: tuple = ()    # ((name, value), ...) — hashable for flax
    init_options: tuple = ()
    unroll_options: tuple = ()

    @nn.compact
    def __call__(self, x_BxTxD, lengths=None, probes=None):
        """Returns (final hidden of the top layer (B, H or 2H), hs of the top layer (B, T, H or 2H))."""
        cell = cells.get_cell(self.cell_name, **dict(self.step_options))
        init_opts, run_opts = dict(self.init_options), dict(self.unroll_options)
        B, T, D = x_BxTxD.shape
        hs, d = x_BxTxD, D
        for layer in range(self.layers):
            top = layer == self.layers - 1
            if self.bidirectional:
                def init(key, d=d):
                    kf, kb = jax.random.split(key)
                    return {"fwd": cell.init(kf, d, self.hidden, **init_opts),
                            "bwd": cell.init(kb, d, self.hidden, **init_opts)}
                p = self.param(f"layer{layer}", init)
                carry, hs = U.unroll_bidirectional(cell, p, hs, lengths=lengths, **run_opts)
                final_h = jnp.concatenate([cell.hidden(carry["fwd"]), cell.hidden(carry["bwd"])], -1)
                d = 2 * self.hidden
            else:
                p = self.param(f"layer{layer}",
                               lambda key, d=d: cell.init(key, d, self.hidden, **init_opts))
                carry0, probes_BxTxH = None, None
                if top and probes is not None:
                    carry0, probes_BxTxH = U.probe_initial_carry(
                        cell, cell.initial_carry(B, self.hidden, dtype=probes.dtype), probes)
                    run_opts = run_opts | {"impl": U.resolve_impl(
                        run_opts["impl"], self.cell_name, probes=True)}
                carry, hs = U.unroll(cell, p, hs, carry0, lengths=lengths,
                                     probes_BxTxH=probes_BxTxH, **run_opts)
                final_h = cell.hidden(carry)
                d = self.hidden
        return final_h, hs


class SequenceModel(nn.Module):
    """Embedding (token inputs) → recurrent core → dropout → linear head.

    A LIF core's head reads its top layer's spikes as ``model.spike_readout`` says
    (seqjax.config.SPIKE_READOUTS): the last spike vector ("last"), a leaky integrator over
    the whole spike train ("membrane") or the spike counts ("count"); ``_spike_head``.
    """

    spec: InputSpec
    model_config: Any  # the config's ``model`` section (a frozen dict is fine)

    @nn.compact
    def __call__(self, batch, probes=None, train: bool = False):
        m = self.model_config
        x, lengths = batch["inputs"], batch.get("lengths")
        if self.spec.kind == "tokens":
            x = nn.Embed(self.spec.dim, m.embed_dim, name="embed")(x)
        encoding = m.get("spike_encoding", "none")
        if encoding != "none":
            x, lengths = self._spike_encode(x, lengths, encoding, m.spike_steps)
        step, init = cell_options(m)
        final_h, hs = RecurrentCore(
            cell_name=m.cell, hidden=m.hidden, layers=m.layers, bidirectional=m.bidirectional,
            step_options=tuple(sorted(step.items())), init_options=tuple(sorted(init.items())),
            unroll_options=tuple(sorted(unroll_options(m).items())), name="core",
        )(x, lengths, probes)
        if m.cell == "lif":  # fraction of (example, step, unit) that spiked, top layer
            self.sow("intermediates", "spike_rate", _valid_mean(hs, lengths))
        spike_readout = m.get("spike_readout", "last")
        if spike_readout != "last":
            return self._spike_head(hs, lengths, spike_readout, train)
        if encoding != "none" and m.spike_steps > 1:  # one output per input step: its last sub-step
            hs = hs[:, m.spike_steps - 1::m.spike_steps]
        features = final_h if self.spec.readout == "last" else hs
        features = nn.Dropout(m.dropout, deterministic=not train)(features)
        return nn.Dense(self.spec.output_dim, name="head")(features)

    def _spike_head(self, s_BxTxH, lengths, readout: str, train: bool):
        """Logits from the top layer's whole spike train s_t (all sub-steps), summed over the
        valid steps t < length: "count": W Σ_t s_t + b; "membrane": Σ_t u_t with
        u_t = β_out·u_{t−1} + W s_t + b, u_{−1} = 0 (``leaky_integral``)."""
        check_spike_readout(self.model_config)
        if self.spec.readout != "last":
            raise ValueError(f"model.spike_readout={readout!r} gives one output per sequence "
                             f"(readout 'last'); this task needs readout {self.spec.readout!r}")
        B, T, _ = s_BxTxH.shape
        valid_BxT = (jnp.ones((B, T), s_BxTxH.dtype) if lengths is None
                     else U.valid_mask(lengths, T).astype(s_BxTxH.dtype))
        s_BxTxH = nn.Dropout(self.model_config.dropout, deterministic=not train)(s_BxTxH)
        head = nn.Dense(self.spec.output_dim, name="head")
        if readout == "count":
            return head(jnp.sum(s_BxTxH * valid_BxT[:, :, None], axis=1))
        return leaky_integral(head(s_BxTxH), valid_BxT, self.model_config.readout_beta)

    def _spike_encode(self, x, lengths, encoding: str, steps: int):
        """(B, T, D) inputs in [0, 1] → (B, T·steps, D) spikes: each input step becomes
        ``steps`` sub-steps (seqjax.cells.rate_encode / latency_encode). Rate codes
        draw from the "dropout" stream in training and a fixed key in evaluation."""
        if self.spec.kind == "tokens":
            raise ValueError("model.spike_encoding needs real-valued inputs in [0, 1], "
                             "not tokens; use spike_encoding='none'")
        B, T, D = x.shape
        if encoding == "rate":
            key = (self.make_rng("dropout") if self.has_rng("dropout")
                   else jax.random.key(0))
            s = cells.rate_encode(key, x, steps)
        else:
            s = cells.latency_encode(x, steps)
        s = s.reshape(B, T * steps, D)
        return s, (None if lengths is None else lengths * steps)


def leaky_integral(z_BxTxC, valid_BxT, beta: float):
    """Σ_{t valid} u_t of the non-spiking leaky integrator u_t = β·u_{t−1} + z_t, u_{−1} = 0
    (Spyx's ``LI`` layer read by its integral loss). Valid steps are a prefix, so the padding
    after an example's length neither enters the sum nor the recursion of what is summed."""
    def step(carry, inputs):
        u, acc = carry
        z_BxC, valid_B = inputs
        u = beta * u + z_BxC
        return (u, acc + valid_B[:, None] * u), None

    zeros = jnp.zeros_like(z_BxTxC[:, 0])
    (_, acc), _ = jax.lax.scan(step, (zeros, zeros),
                               (jnp.swapaxes(z_BxTxC, 0, 1), jnp.swapaxes(valid_BxT, 0, 1)))
    return acc


def _valid_mean(hs_BxTxH, lengths):
    if lengths is None:
        return jnp.mean(hs_BxTxH)
    valid = U.valid_mask(lengths, hs_BxTxH.shape[1]).astype(hs_BxTxH.dtype)
    return jnp.sum(hs_BxTxH * valid[:, :, None]) / (jnp.sum(valid) * hs_BxTxH.shape[-1])


class FeedForward(nn.Module):
    """The one-to-one baseline: an MLP on the whole flattened sequence, no recurrence.

    ``model.layers`` hidden layers of ``model.hidden`` ReLU units. For ``readout="all"``
    the output layer emits T·output_dim numbers, reshaped to (B, T, output_dim).
    """

    spec: InputSpec
    model_config: Any

    @nn.compact
    def __call__(self, batch, probes=None, train: bool = False):
        m = self.model_config
        x = batch["inputs"]
        if self.spec.kind == "tokens":
            x = nn.Embed(self.spec.dim, m.embed_dim, name="embed")(x)
        if "lengths" in batch:  # zero the padding so it cannot leak into the prediction
            T = x.shape[1]
            valid = U.valid_mask(batch["lengths"], T).astype(x.dtype)
            x = x * valid[:, :, None]
        B, T = x.shape[:2]
        h = x.reshape(B, -1)
        for layer in range(m.layers):
            h = nn.relu(nn.Dense(m.hidden, name=f"dense{layer}")(h))
            h = nn.Dropout(m.dropout, deterministic=not train)(h)
        if self.spec.readout == "last":
            return nn.Dense(self.spec.output_dim, name="head")(h)
        return nn.Dense(T * self.spec.output_dim, name="head")(h).reshape(B, T, -1)


class BagOfWords(nn.Module):
    """The order-blind baseline: the mean embedding of a text's words, then a linear head.

    With c_v = #{t < length : token_t = v} (the review's word counts) and n = Σ_v c_v,

        features = (Σ_v c_v · E[v]) / n,    logits = features · W + b.

    The counts are integers (exact whatever the order of the words), and the sum over v
    runs in vocabulary order, so permuting a text's words gives bit-identical outputs, and
    tokens past ``lengths`` count for nothing. Token inputs and ``readout="last"`` only;
    ``model.hidden``, ``layers``, ``cell`` and ``dropout`` are not used.
    """

    spec: InputSpec
    model_config: Any

    @nn.compact
    def __call__(self, batch, probes=None, train: bool = False):
        if self.spec.kind != "tokens":
            raise ValueError(f"model.kind='bow' needs token inputs; this task's inputs are "
                             f"{self.spec.kind!r}")
        if self.spec.readout != "last":
            raise ValueError(f"model.kind='bow' gives one output per sequence (readout 'last'); "
                             f"this task needs readout {self.spec.readout!r}")
        tokens_BxT = batch["inputs"]
        B, T = tokens_BxT.shape
        embed = nn.Embed(self.spec.dim, self.model_config.embed_dim, name="embed")
        table_VxE = embed.embedding
        lengths = batch.get("lengths")
        valid_BxT = (jnp.ones((B, T), table_VxE.dtype) if lengths is None
                     else U.valid_mask(lengths, T).astype(table_VxE.dtype))
        rows_BxT = jnp.broadcast_to(jnp.arange(B)[:, None], (B, T))
        counts_BxV = jnp.zeros((B, self.spec.dim), table_VxE.dtype).at[
            rows_BxT, tokens_BxT].add(valid_BxT)
        n_Bx1 = jnp.maximum(jnp.sum(counts_BxV, axis=1, keepdims=True), 1.0)
        features_BxE = (counts_BxV @ table_VxE) / n_Bx1
        return nn.Dense(self.spec.output_dim, name="head")(features_BxE)


class LRUBlock(nn.Module):
    r"""One block of Orvieto et al. (2023)'s LRU network, pre-norm and residual:

    .. math::
        \hat u_t &= \mathrm{LayerNorm}(u_t), \qquad
        x_t = \lambda \odot x_{t-1} + \gamma \odot (B \hat u_t) \quad (\text{the LRU cell}) \\
        y_t &= \mathrm{GELU}(\mathrm{Re}(C x_t) + D \odot \hat u_t), \qquad
        [a_t, b_t] = W y_t + c \\
        u'_t &= u_t + \mathrm{Dropout}(a_t \odot \sigma(b_t))

    The recurrence is the pure ``seqjax.cells`` LRU (params ``self.param("lru")`` are what
    ``cell.init(key, d_model, hidden, r_min=, r_max=, max_phase=)`` returns: N = hidden/2
    complex states) run by ``seqjax.unroll.unroll`` with ``run_options`` (``impl="parallel"``:
    the associative scan); ``cell.output`` gives Re(C x_t) + D ⊙ û_t. Padded steps
    (``lengths``) come after an example's valid ones and every map but the causal
    recurrence is per step, so they never change a valid step's output.
    """

    d_model: int
    hidden: int
    dropout: float = 0.0
    init_options: tuple = ()    # ((name, value), ...): r_min, r_max, max_phase
    run_options: tuple = ()     # unroll keywords

    @nn.compact
    def __call__(self, u_BxTxD, lengths=None, train: bool = False):
        cell = cells.get_cell("lru")
        p = self.param("lru", lambda key: cell.init(key, self.d_model, self.hidden,
                                                    **dict(self.init_options)))
        v_BxTxD = nn.LayerNorm(name="norm")(u_BxTxD)
        _, hs_BxTxH = U.unroll(cell, p, v_BxTxD, lengths=lengths, **dict(self.run_options))
        y_BxTxD = nn.gelu(cell.output(p, hs_BxTxH, v_BxTxD))
        a_BxTxD, b_BxTxD = jnp.split(nn.Dense(2 * self.d_model, name="glu")(y_BxTxD), 2, axis=-1)
        y_BxTxD = nn.Dropout(self.dropout, deterministic=not train)(a_BxTxD * nn.sigmoid(b_BxTxD))
        return u_BxTxD + y_BxTxD


class LRUStack(nn.Module):
    """The LRU network of Orvieto et al. (2023): encoder → ``model.layers`` ``LRUBlock``s →
    readout → linear head (``model.kind="lru_stack"``).

    Encoder: Dense(``model.d_model``) (token inputs: an embedding of width d_model). Each
    block's LRU has ``model.hidden``/2 complex states, initialised on the ring
    ``model.r_min`` ≤ |λ| ≤ ``model.r_max`` with phases in [0, ``model.max_phase``], and is
    unrolled with ``model.impl`` ("parallel": the associative scan; "scan": sequential).
    ``model.dropout`` is the blocks' dropout. Readout "all": the head at every step;
    readout "last": ``model.pool`` = "last" (the output at each example's last valid step,
    t = lengths − 1) or "mean" (the mean over its valid steps, the paper's pooling for
    classification). ``model.cell`` is not read (the recurrence is always the LRU).
    """

    spec: InputSpec
    model_config: Any

    @nn.compact
    def __call__(self, batch, probes=None, train: bool = False):
        m = self.model_config
        check_lru_stack(m)
        x, lengths = batch["inputs"], batch.get("lengths")
        if self.spec.kind == "tokens":
            x = nn.Embed(self.spec.dim, m.d_model, name="encoder")(x)
        else:
            x = nn.Dense(m.d_model, name="encoder")(x)
        init = {k: m[k] for k in cells.LRU.init_options if k in m}
        run = unroll_options(m) | {"impl": U.resolve_impl(m.impl, "lru")}
        for layer in range(m.layers):
            x = LRUBlock(d_model=m.d_model, hidden=m.hidden, dropout=m.dropout,
                         init_options=tuple(sorted(init.items())),
                         run_options=tuple(sorted(run.items())),
                         name=f"block{layer}")(x, lengths, train)
        if self.spec.readout == "last":
            x = pool(x, lengths, m.pool)
        return nn.Dense(self.spec.output_dim, name="head")(x)


def pool(x_BxTxD, lengths, how: str):
    """(B, D) from (B, T, D): the step t = lengths − 1 (``"last"``; T − 1 without lengths) or
    the mean over the valid steps t < lengths (``"mean"``). An empty example (length 0)
    gives step 0 for "last" and zeros for "mean"."""
    B, T, _ = x_BxTxD.shape
    if how == "last":
        if lengths is None:
            return x_BxTxD[:, -1]
        return x_BxTxD[jnp.arange(B), jnp.clip(lengths - 1, 0, T - 1)]
    if lengths is None:
        return jnp.mean(x_BxTxD, axis=1)
    valid_BxT = U.valid_mask(lengths, T).astype(x_BxTxD.dtype)
    total_BxD = jnp.sum(x_BxTxD * valid_BxT[:, :, None], axis=1)
    return total_BxD / jnp.maximum(jnp.sum(valid_BxT, axis=1, keepdims=True), 1.0)


MODELS = {"recurrent": SequenceModel, "feedforward": FeedForward, "bow": BagOfWords,
          "lru_stack": LRUStack}


def build_model(model_config, spec: InputSpec) -> nn.Module:
    """The module for ``model.kind``, a key of ``MODELS`` ("recurrent", "feedforward", "bow",
    "lru_stack")."""
    if model_config.kind not in MODELS:
        raise ValueError(f"unknown model.kind {model_config.kind!r}; allowed: "
                         f"{', '.join(sorted(MODELS))}")
    return MODELS[model_config.kind](spec=spec, model_config=model_config)


def param_count(model_config, spec: InputSpec) -> int:
    """How many numbers the model for ``model_config`` on inputs ``spec`` holds (its params'
    sizes, from shapes alone: nothing is computed)."""
    shape = (2, spec.seq_len) if spec.kind == "tokens" else (2, spec.seq_len, spec.dim)
    dtype = jnp.int32 if spec.kind == "tokens" else jnp.float32
    model = build_model(model_config, spec)
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            {"inputs": jax.ShapeDtypeStruct(shape, dtype)})
    return sum(int(math.prod(a.shape)) for a in jax.tree.leaves(shapes["params"]))


def probe_shape(model_config, batch) -> tuple[int, int, int] | None:
    """(B, T+1, H) for models whose top layer can be probed, else None."""
    if model_config.kind != "recurrent" or model_config.bidirectional:
        return None
    B, T = batch["inputs"].shape[:2]
    if model_config.get("spike_encoding", "none") != "none":
        T *= model_config.spike_steps
    return (B, T + 1, model_config.hidden)
