"""The one config schema. Every experiment's ``configs/*.py`` starts from ``base_config()``.

Tasks add their own fields under ``config.task`` (declared in ``Task.config_defaults``);
``validate(config)`` rejects keys that neither the schema nor the chosen task knows, and
values outside what is allowed, each with a message that names the value and the choices.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import ml_collections

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
MODEL_KINDS = ("recurrent", "feedforward", "bow", "lru_stack")  # the keys of seqjax.models.MODELS
LRU_POOLS = ("last", "mean")             # model.pool of model.kind="lru_stack"
HOIST_CHOICES = ("auto", "on", "off")
SPIKE_ENCODINGS = ("none", "rate", "latency")
# What the head of a LIF network reads (seqjax.models.SequenceModel): "last": the last spike
# vector; "membrane": Σ_t u_t of a leaky integrator u_t = β_out·u_{t−1} + W s_t + b (Spyx's LI
# layer and integral readout); "count": W Σ_t s_t + b (snnTorch's ce_count). Sums run over
# valid steps.
SPIKE_READOUTS = ("last", "membrane", "count")
VMAP_SWEEP_CHOICES = ("auto", "on", "off")


def _number_or_word(value) -> ml_collections.FieldReference:
    """A field that takes a number or a word (a gate bias: 2.0 or "chrono"). A plain field
    keeps its default's type: a ConfigDict and a --config flag would refuse the word."""
    return ml_collections.FieldReference(value, field_type=object)


def _spiking_fields(m: ml_collections.ConfigDict) -> None:
    """The LIF cell's fields of ``base_config().model``: its step options, the spike encoding
    of the inputs and the readout of the top layer's spikes (``SPIKE_READOUTS``)."""
    m.beta = 0.9                         # lif: membrane decay
    m.threshold = 1.0                    # lif: spike threshold
    m.slope = 25.0                       # lif: slope k of the fast-sigmoid surrogate 1/(1+k|u|)²
    m.spike_encoding = "none"            # inputs in [0, 1] as spikes: "rate" (Bernoulli) or
    m.spike_steps = 1                    # "latency", spike_steps sub-steps per input step
    m.spike_readout = "last"             # lif: what the head reads: SPIKE_READOUTS
    m.readout_beta = 0.8                 # lif, spike_readout="membrane": β_out of the output
                                         # leaky integrator (Spyx's LI default)


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default. Configs override; nothing else adds top-level keys."""
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.task = ml_collections.ConfigDict()
    c.task.name = "adding"
    c.task.seq_len = 100
    c.task.noise_std = 0.0     # Gaussian noise added to the inputs
    c.task.eval_size = 1024    # examples in the fixed evaluation set

    c.model = ml_collections.ConfigDict()
    c.model.kind = "recurrent"  # "feedforward": MLP on the flat sequence; "bow": mean word embedding;
                                # "lru_stack": Orvieto et al.'s LRU blocks (seqjax.models.LRUStack)
    c.model.cell = "lstm"
    c.model.hidden = 64
    c.model.layers = 1
    c.model.bidirectional = False
    c.model.activation = "tanh"          # rnn only
    c.model.init_preset = "seqjax"       # or "torch"/"keras"/"flax": their default (rnn, lstm, gru)
    c.model.forget_bias = _number_or_word(1.0)  # lstm, minlstm: initial b_f (none added at step
    c.model.update_bias = _number_or_word(0.0)  # time); gru, mingru: initial b_z; or "chrono"
    c.model.chrono_tmax = 100.0          # T_max of "chrono": b ~ log U(1, T_max - 1)
    c.model.input_bias = 0.0             # minlstm: initial bias of the input gate
    _lru_fields(c.model)                 # lru: r_min, r_max, max_phase; lru_stack: d_model, pool
    _spiking_fields(c.model)
    c.model.recurrent_init = "orthogonal"
    c.model.recurrent_scale = 1.0
    c.model.input_init = "glorot_uniform"
    c.model.input_scale = 1.0            # multiplies the input init (rnn, lstm, gru, lif)
    c.model.impl = "auto"                # "auto" (the fastest correct impl for the backend:
                                         # unroll.resolve_impl) or a key of unroll.IMPLS
    c.model.unroll = 1
    c.model.remat = False
    c.model.hoist = "auto"
    c.model.embed_dim = 32               # token inputs only
    c.model.dropout = 0.0                # on the recurrent outputs, before the head

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 1000
    c.train.batch_size = 64
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.schedule = "constant"
    c.train.warmup_steps = 0
    c.train.weight_decay = 0.0           # adamw only
    c.train.momentum = 0.9               # sgd only (0 for plain SGD)
    c.train.grad_clip = 1.0              # global-norm clipping; 0 turns it off
    c.train.tbptt = 0                    # char_lm: characters per truncated-BPTT window
    c.train.eval_every = 200
    c.train.checkpoint_every = 500
    c.train.diagnostics_every = 100      # 0 turns gradient-flow diagnostics off
    c.train.log_every = 50
    c.train.keep_checkpoints = 3
    c.train.resume = True                # continue from the workdir's newest checkpoint
    c.train.skip_nonfinite = False       # skip (and count) a step whose loss is NaN/Inf
    c.train.vmap_sweep = "auto"          # "on": members differing only in sweep.VMAPPABLE fields
                                         # train as one vmapped program; "auto": on accelerators
                                         # and for init-only sweeps, not for training on CPU

    # Devices: a (data, model) mesh; -1 = all devices. Batches split along "data".
    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.model = 1
    c.distributed = False                # jax.distributed.initialize() for several hosts

    c.data = ml_collections.ConfigDict()
    c.data.raw_dir = ""                  # local raw files (TFDS manual_dir)
    c.data.data_dir = ""                 # prepared datasets; "": data.pipeline.default_data_dir()

    # Runs of one config with some fields changed, one after another, each in <workdir>/<member
    # name>; lists as leaves: sweep.model.cell = ["rnn", "lstm"]; sweep.seed = [0, 1] (product).
    c.sweep = ml_collections.ConfigDict()
    # Named variants crossed with the sweep: "label: field=value, field=value", e.g.
    # "IRNN: model.cell=rnn, model.activation=relu, model.recurrent_init=identity".
    c.sweep_arms = ()
    return c


def _lru_fields(m: ml_collections.ConfigDict) -> None:
    """The LRU cell's init fields, and those of ``model.kind="lru_stack"``
    (seqjax.models.LRUStack)."""
    m.r_min = 0.9                        # lru: ring |λ| ∈ [r_min, r_max] at init
    m.r_max = 0.999
    m.max_phase = 6.283185307179586      # lru: arg λ uniform in [0, max_phase] at init (2π)
    m.d_model = 64                       # lru_stack: width of the blocks (encoder, residual stream)
    m.pool = "last"                      # lru_stack, readout "last": "last" valid step or "mean"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in (d.items() if hasattr(d, "items") else []):
        key = f"{prefix}{k}"
        if isinstance(v, (ml_collections.ConfigDict, dict)) and k != "sweep" and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def _positive(name: str, value, *, zero_ok: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (
        value >= 0 if zero_ok else value > 0)
    if not ok:
        what = "a non-negative" if zero_ok else "a positive"
        raise ValueError(f"{name} must be {what} integer, got {value!r}")


# Fields a library init_preset replaces (a gate bias of "chrono" still applies on top of it).
PRESET_REPLACES = ("forget_bias", "update_bias", "recurrent_init", "recurrent_scale", "input_init")


def _check_init(m, cells) -> None:
    """model.init_preset, the gate biases (a number or "chrono") and chrono_tmax; a field the
    preset or chrono would leave unused is an error unless it holds its default."""
    cells.check_preset(m.init_preset, m.cell, name="model.init_preset")
    for name in ("forget_bias", "update_bias"):
        cells.check_gate_bias(f"model.{name}", m[name])
    cells.check_chrono_tmax(m.chrono_tmax, name="model.chrono_tmax")
    uses, defaults = set(cells.CELLS[m.cell].init_options), base_config().model
    unused = [f"model.{k}={m[k]!r}" for k in PRESET_REPLACES if m.init_preset != "seqjax"
              and k in uses and m[k] != defaults[k] and m[k] != cells.CHRONO]
    if unused:
        raise ValueError(f"model.init_preset={m.init_preset!r} sets the cell's weights and biases "
                         f"itself, so {', '.join(unused)} would not be used: leave them at their "
                         f"defaults (a gate bias of 'chrono' still applies on top of a preset)")
    if m.cell == "minlstm" and m.forget_bias == cells.CHRONO and m.input_bias != 0.0:
        raise ValueError(f"model.forget_bias='chrono' sets minlstm's input bias to -b_f, so "
                         f"model.input_bias={m.input_bias!r} would not be used: leave it at 0.0")


def check_spike_readout(m) -> None:
    """``model.spike_readout`` is one of ``SPIKE_READOUTS``; any but "last" reads spikes, so
    it needs the LIF cell; ``model.readout_beta`` lies in [0, 1]."""
    readout = m.get("spike_readout", "last")
    _choice("model.spike_readout", readout, SPIKE_READOUTS)
    if readout != "last" and m.cell != "lif":
        raise ValueError(f"model.spike_readout={readout!r} reads a spike train, so it needs "
                         f"model.cell='lif', not {m.cell!r}; use spike_readout='last'")
    beta = m.get("readout_beta", 0.8)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"model.readout_beta must lie in [0, 1], got {beta!r}")


def check_lru_stack(m) -> None:
    """The fields of ``model.kind="lru_stack"`` (seqjax.models.LRUStack): an even model.hidden
    (N = hidden/2 complex states), a positive model.d_model, model.pool one of ``LRU_POOLS``."""
    if m.hidden % 2:
        raise ValueError(f"model.kind='lru_stack' needs an even model.hidden (the LRU state is "
                         f"hidden/2 complex numbers), got model.hidden={m.hidden!r}")
    _positive("model.d_model", m.d_model)
    _choice("model.pool", m.pool, LRU_POOLS)


def validate(config, task_defaults: dict | None = None) -> None:
    """Raise a ValueError for unknown keys or bad values. ``task_defaults``: the task's extra fields."""
    from seqjax import cells  # local: keep this module import-light

    known = set(_flatten(base_config()))
    known |= {f"task.{k}" for k in (task_defaults or {})}
    for key in _flatten(config):
        if key not in known:
            raise ValueError(f"unknown config key {key!r}{_suggest(key, known)}")

    m, t = config.model, config.train
    _choice("model.kind", m.kind, MODEL_KINDS)
    if m.cell not in cells.CELLS:
        raise ValueError(f"model.cell={m.cell!r} is not a cell; valid cells: "
                         f"{', '.join(sorted(cells.CELLS))}")
    import seqjax  # noqa: F401  (registers every impl)
    from seqjax.unroll import IMPLS
    _choice("model.impl", m.impl, ("auto",) + tuple(sorted(IMPLS)))
    _choice("model.hoist", m.hoist, HOIST_CHOICES)
    _choice("model.spike_encoding", m.spike_encoding, SPIKE_ENCODINGS)
    check_spike_readout(m)
    _check_init(m, cells)
    if m.kind == "lru_stack":
        check_lru_stack(m)
        if m.cell != "lru":
            raise ValueError(f"model.kind='lru_stack' stacks LRU layers: set model.cell='lru' "
                             f"(got model.cell={m.cell!r})")
    _choice("train.optimizer", t.optimizer, OPTIMIZERS)
    _choice("train.schedule", t.schedule, SCHEDULES)
    _choice("train.vmap_sweep", t.vmap_sweep, VMAP_SWEEP_CHOICES)
    for name in ("model.hidden", "model.layers", "model.spike_steps", "model.unroll", "model.embed_dim",
                 "train.batch_size", "train.log_every", "task.seq_len",
                 "task.eval_size", "train.keep_checkpoints"):
        section, field = name.split(".")
        _positive(name, config[section][field])
    for name in ("train.num_steps", "train.eval_every", "train.checkpoint_every",  # 0 allowed
                 "train.diagnostics_every", "train.warmup_steps", "train.tbptt"):
        section, field = name.split(".")
        _positive(name, config[section][field], zero_ok=True)
    if not t.learning_rate > 0:
        raise ValueError(f"train.learning_rate must be > 0, got {t.learning_rate!r}")
    if t.grad_clip < 0:
        raise ValueError(f"train.grad_clip must be >= 0 (0 turns clipping off), got {t.grad_clip!r}")
    if config.task.noise_std < 0:
        raise ValueError(f"task.noise_std must be >= 0, got {config.task.noise_std!r}")
    if not 0.0 <= m.dropout < 1.0:
        raise ValueError(f"model.dropout must lie in [0, 1), got {m.dropout!r}")
    for label, fields in parse_arms(config).items():
        for key in fields:
            if key not in known or key in ("sweep", "sweep_arms"):
                raise ValueError(f"sweep arm {label!r}: {key!r} is not a config key"
                                 f"{_suggest(key, known)}")
    for key, values in sweep_fields(config).items():
        if key not in known or key == "sweep":
            raise ValueError(f"sweep field {key!r} is not a config key{_suggest(key, known)}")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"sweep.{key} must be a non-empty list of values, got {values!r}")


def _literal(text: str):
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: a string value


def parse_arms(config) -> dict[str, dict]:
    """{label: {dotted field: value}} from ``config.sweep_arms`` (ordered as written)."""
    arms = {}
    for arm in config.get("sweep_arms", ()) or ():
        label, sep, body = arm.partition(":")
        if not sep or not label.strip():
            raise ValueError(f"sweep arm {arm!r} must read 'label: field=value, field=value'")
        fields = {}
        for item in filter(None, (x.strip() for x in body.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"sweep arm {label.strip()!r}: {item!r} is not field=value")
            fields[key.strip()] = _literal(value.strip())
        if label.strip() in arms:
            raise ValueError(f"sweep arm label {label.strip()!r} appears twice")
        arms[label.strip()] = fields
    return arms


def sweep_fields(config) -> dict[str, list]:
    """{"model.cell": ["rnn", "lstm"], ...} from the nested ``config.sweep``."""
    def walk(d, prefix):
        out = {}
        for k, v in d.items():
            if isinstance(v, (ml_collections.ConfigDict, dict)):
                out.update(walk(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out
    return walk(config.sweep, "") if config.get("sweep") else {}


def to_json(config) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def diff(a: dict, b: dict, ignore=()) -> list[str]:
    """Dotted keys whose values differ between two config dicts (as read from config.json).

    Both sides go through JSON first, so a tuple in a live config equals the list that
    config.json holds for it (``sweep_arms = ()`` reads back as ``[]``).
    """
    a, b = (json.loads(json.dumps(x, default=str)) for x in (a, b))
    fa, fb = _flatten(a), _flatten(b)
    # A field added to the schema after run ``a`` was written is no difference while ``b``
    # leaves it at its default (old workdirs stay resumable when the schema grows).
    defaults = _flatten(json.loads(json.dumps(base_config().to_dict(), default=str)))
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k) != fb.get(k)
                  and not (k not in fa and k in defaults and fb.get(k) == defaults[k]))
