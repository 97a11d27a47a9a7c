"""The one trainer for every task: ``train_and_evaluate(config, workdir)``.

One run writes into ``workdir``: config.json, metrics.jsonl, TensorBoard events,
checkpoints/ (orbax: train state + data-iterator position), summary.json at the end.
Started again on the same workdir it resumes from the newest checkpoint and continues
exactly as an uninterrupted run would (same batches, same dropout keys, same logs).

``train_step`` is a module-level pure function of (state, batch) given the model, the
task and the optimizer; the ``Trainer`` jits it (vmapped over the members of a sweep
group), and runs the loop: logging windows, evaluation, gradient-flow diagnostics and
checkpoints (``seqjax.checkpoint``), each due ``every`` so many steps.

A step whose loss or gradient is NaN/Inf never touches the parameters: the step is
counted, and (unless ``train.skip_nonfinite``) the run stops at the next check with a
``NonFiniteLossError`` that names the step, before writing another checkpoint, so the
last good checkpoint is what a restart or a user finds.

Killed at any moment (SIGKILL, power cut), a restart resumes from the newest complete
checkpoint; the unlogged part of the current logging window is saved with the state, so the
resumed logs equal an uninterrupted run's bit for bit. SIGTERM or Ctrl-C (SIGINT) saves a
checkpoint at the current step and raises ``TrainingInterrupted`` (a second Ctrl-C stops at
once); a disk that fills up or turns read-only raises ``StorageError`` naming the file and
the last complete checkpoint.

Devices: the batch is split over the ``data`` axis of a mesh (seqjax.sharding); the state
is replicated; jit partitions the step. Only process 0 writes logs and summaries.
Sweeps (``config.sweep``) are run by ``seqjax.sweep``, each group through a ``Trainer``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import shutil
import signal
import threading
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from seqjax import config as config_lib
from seqjax import diagnostics, launch, models, rundir, sharding, sweep, unroll
from seqjax.checkpoint import STORAGE_ERRNOS, Checkpointer, storage_errno, storage_message
from seqjax.chrono import Chrono, every, fmt_duration
from seqjax.errors import (NonFiniteLossError, StorageError, SweepDivergedError,  # noqa: F401
                           TrainingInterrupted, WorkdirInUse)
from seqjax.tasks import get_task_class
from seqjax.writer import Writer, atomic_write, heatmap_rgb, read_metrics, write_step_section

# Fields that may change between a run and its resumption: they change what is logged or
# how long it runs, not the trajectory.
RESUMABLE_CHANGES = ("train.num_steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.diagnostics_every",
                     "train.keep_checkpoints", "train.resume", "train.skip_nonfinite",
                     "mesh.data", "mesh.model", "distributed",
                     # performance knobs: the same maths (tested equal), other speed/memory
                     "model.impl", "model.remat", "model.unroll", "model.hoist")
DIAGNOSTICS_EXAMPLES = 64


@flax.struct.dataclass
class TrainState:
    step: jax.Array             # updates done
    params: Any
    opt_state: Any              # includes the learning rate (optax.inject_hyperparams)
    rng: jax.Array              # raw key data of the dropout key (folded with the step)
    nonfinite_steps: jax.Array  # steps whose loss/gradient was NaN/Inf (skipped)
    first_nonfinite: jax.Array  # the first such step (1-based), -1 if none
    carry: Any = None           # stateful tasks (truncated BPTT): the recurrent state the
                                # next batch starts from; None for every other task


def make_optimizer(t) -> optax.GradientTransformation:
    """optax: global-norm clipping (if grad_clip > 0) → optimizer with a schedule.

    The peak learning rate is an injected hyper-parameter (it lives in the optimizer
    state), so members of a sweep with different learning rates share one program.
    """
    def build(learning_rate):
        schedule = make_schedule(t, learning_rate)
        opt = {
            "adam": lambda: optax.adam(schedule),
            "adamw": lambda: optax.adamw(schedule, weight_decay=t.weight_decay),
            "sgd": lambda: optax.sgd(schedule, momentum=t.momentum or None),
            "rmsprop": lambda: optax.rmsprop(schedule),
        }[t.optimizer]()
        return optax.chain(optax.clip_by_global_norm(t.grad_clip), opt) if t.grad_clip > 0 \
            else opt
    return optax.inject_hyperparams(build)(learning_rate=t.learning_rate)


def make_schedule(t, learning_rate):
    """The learning rate as optax takes it: a function of the count of updates done (its
    peak ``learning_rate``), or, for ``schedule="constant"``, the rate itself."""
    if t.schedule == "constant":
        return learning_rate
    if t.schedule == "cosine":
        return optax.cosine_decay_schedule(learning_rate, t.num_steps)
    # warmup_cosine: optax.warmup_cosine_decay_schedule(0, peak, warmup, total) from its
    # parts, as its own test `peak_value == 0.0` fails on the injected (traced) peak
    decay_steps = max(t.num_steps, t.warmup_steps + 1) - t.warmup_steps
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, t.warmup_steps),
                                 optax.cosine_decay_schedule(learning_rate, decay_steps)],
                                [t.warmup_steps])


def learning_rate_at(t, learning_rate, count: int) -> float:
    """The rate of the update that follows ``count`` updates, computed on the host."""
    schedule = make_schedule(t, learning_rate)
    if not callable(schedule):
        return float(schedule)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and float rates
        return float(schedule(count))


def init_params(model, seed: int, batch):
    """A run's initial parameters: ``model.init`` with key ``fold_in(key(seed), 0)`` on the
    first two examples of ``batch`` (the first evaluation batch), as the trainer starts."""
    example = jax.tree.map(lambda a: a[:2], batch)
    # jitted: one compile instead of an eager dispatch (and compile) per init op
    return jax.jit(model.init)({"params": jax.random.fold_in(jax.random.key(seed), 0)},
                               example)["params"]


# --------------------------------------------------------------------------- pure steps


def loss_fn(params, batch, key, *, model, task, train: bool, probes=None):
    """(loss, (metrics, model output)) of one batch."""
    out, sown = model.apply({"params": params}, batch, probes=probes, train=train,
                            rngs={"dropout": key}, mutable=["intermediates"])
    loss, metrics = task.loss(out, batch)
    # quantities a model reports about itself (the LIF cell's spike rate) join the metrics
    for name, values in sown.get("intermediates", {}).items():
        metrics = metrics | {name: jnp.mean(jnp.stack(values))}
    return loss, (metrics, out)


def train_step(state: TrainState, batch, *, model, task, tx):
    """One update: (new state, metrics). A NaN/Inf loss or gradient leaves the parameters
    and optimizer state as they were, and is counted in the state."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    if state.carry is not None:  # truncated BPTT: the state enters as data, so no gradient
        batch = batch | {"carry": jax.lax.stop_gradient(state.carry)}  # crosses the window
    (loss, (metrics, out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, batch, key, model=model, task=task, train=True)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # optax mixes int step counts with float decays (adam's bias correction), which the
    # strict dtype promotion of our tests rejects; seqjax's own maths stays strict.
    with jax.numpy_dtype_promotion("standard"):
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    step = state.step + 1
    state = state.replace(
        step=step, params=keep(new_params, state.params),
        opt_state=keep(new_opt, state.opt_state),
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
        first_nonfinite=jnp.where((state.first_nonfinite < 0) & ~finite, step,
                                  state.first_nonfinite))
    if state.carry is not None:  # a NaN/Inf step restarts the streams from zeros
        state = state.replace(carry=jax.tree.map(
            lambda c: jnp.where(finite, c, jnp.zeros_like(c)), out["carry"]))
    return state, {"loss": loss, "grad_norm": grad_norm} | metrics


def eval_step(params, batch, *, model, task):
    loss, (metrics, out) = loss_fn(params, batch, jax.random.key(0), model=model, task=task,
                                   train=False)
    return {"loss": loss} | metrics, out


def diagnostics_step(params, batch, *, model, task, probe_shape):
    """Per-timestep ‖∂ℓ/∂h_t‖ (mean over examples of the per-example loss), param grads."""
    probes = jnp.zeros(probe_shape, jnp.float32)

    def loss_of(probes, params):
        return loss_fn(params, batch, jax.random.key(0), model=model, task=task, train=False,
                       probes=probes)[0]

    g_probes, g_params = jax.grad(loss_of, argnums=(0, 1))(probes, params)
    # The task loss is a mean over the batch: scale back to per-example gradients.
    norms_BxT1 = diagnostics.safe_norm(g_probes, axis=-1) * probe_shape[0]
    return jnp.mean(norms_BxT1, axis=0), g_params


# --------------------------------------------------------------------------- helpers


class _StopSignals:
    """Within the block, SIGTERM/SIGINT only record ``signum``; the loop checks it at the
    next step boundary. The first signal restores the previous handlers, so a second
    Ctrl-C interrupts at once. Outside the main thread nothing is installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum, self._previous = None, {}

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        self._restore()


class _LogWindow:
    """The per-step metrics of the current logging window, per member, until they are
    averaged into one logged row. ``encode()`` goes into a checkpoint exactly (float32 →
    repr → float32), so a resumed run logs the same means."""

    def __init__(self, split, carried=None):
        self.split, self.pending, self.carried = split, [], list(carried or [])

    def add(self, metrics) -> None:
        self.pending.append(metrics)

    def _rows(self) -> list[list[dict]]:
        return self.carried + [self.split(p) for p in self.pending]

    def take_means(self) -> list[dict[str, float]]:
        means = [{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                 for rows in zip(*self._rows())]
        self.pending, self.carried = [], []
        return means

    def encode(self) -> list:
        return [[{k: (repr(float(v)), str(np.asarray(v).dtype)) for k, v in m.items()}
                 for m in row] for row in self._rows()]

    @staticmethod
    def decode(saved) -> list:
        return [[{k: np.asarray(float(v), dtype) for k, (v, dtype) in member.items()}
                 for member in row] for row in saved]


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _prepare_workdir(config, workdir: str, is_main: bool) -> None:
    """Refuse to mix two experiments in one workdir; with resume=False move the old run aside."""
    path = os.path.join(workdir, rundir.CONFIG_FILE)
    if not os.path.exists(path):
        return
    if not config.train.resume:
        if is_main:  # everything but the lock this process holds
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            aside = f"{workdir.rstrip('/')}.old-{stamp}"
            os.makedirs(aside)
            for name in os.listdir(workdir):
                if name != rundir.LOCK_FILE:
                    shutil.move(os.path.join(workdir, name), os.path.join(aside, name))
            print(f"train.resume=False: the previous run in {workdir} was moved to {aside}")
        return
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is unreadable ({e}); move the workdir aside or pick another")
    changed = config_lib.diff(old, config.to_dict(), ignore=RESUMABLE_CHANGES)
    if changed:
        raise ValueError(
            f"workdir {workdir} holds a run of a different config (differs in: "
            f"{', '.join(changed)}); use another --workdir, or --config.train.resume=False "
            f"to move the old run aside and start anew")


def _nonfinite_message(t, bad: list[tuple[str, int]], good: int | None, ckpt_dir: str) -> str:
    where = "; ".join(f"{n} at step {s}" for n, s in bad)
    return (f"loss or gradient became NaN/Inf at step {min(s for _, s in bad)} "
            f"(run: {where}); the parameters were not updated with it. Try " + (
                "gradient clipping (--config.train.grad_clip=1.0)" if not t.grad_clip
                else f"a tighter gradient clip (now {t.grad_clip:g})") +
            f", a lower learning rate (now "
            f"{t.learning_rate:g}), or --config.train.skip_nonfinite=True to skip such "
            f"steps. Last good checkpoint: " + (
                f"step {good} in {ckpt_dir}; rerun "
                f"on this workdir (with skip_nonfinite) to resume from it, or change "
                f"the optimizer with another --workdir." if good is not None else
                "none (no checkpoint was written before it)."))


def _diagnostics_history(workdir):
    steps, rows = [], []
    for r in read_metrics(workdir):
        if rundir.HIDDEN_NORMS in r:
            steps.append(r["step"])
            rows.append(r[rundir.HIDDEN_NORMS])
    return steps, rows


HPARAMS = ("task.name", "task.seq_len", "model.kind", "model.cell", "model.hidden",
           "model.activation", "model.forget_bias", "model.init_preset", "model.recurrent_init",
           "model.recurrent_scale", "train.optimizer", "train.learning_rate", "train.schedule",
           "train.batch_size", "seed")


def _hparams(config, final_eval: dict) -> tuple[dict, dict]:
    """(the config fields runs are compared on, the final eval metrics under ``hparams/``):
    what TensorBoard's HParams tab shows of a run."""
    fields = {}
    for name in HPARAMS:
        node = config
        for part in name.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        fields[name] = node
    return fields, {f"hparams/eval/{k}": v for k, v in final_eval.items()}


def _learning_rates(members, opt_state) -> list[float]:
    """Per member, the rate its last update used: its own peak through the schedule at
    the count of updates before it (a skipped NaN/Inf step does not advance the count)."""
    counts = np.atleast_1d(jax.device_get(opt_state.count))
    return [learning_rate_at(mc.train, mc.train.learning_rate, max(int(c) - 1, 0))
            for (mc, _), c in zip(members, counts, strict=True)]


def _write_examples(writer, step, examples, files: dict[str, str]):
    """TensorBoard text and images; the text of each tag in ``files`` (the task's
    ``example_files``) also goes into ``<workdir>/figures/<file>``, a section per step."""
    for tag, value in examples.items():
        if isinstance(value, str):
            writer.text(step, tag, value)
            if tag in files and writer.enabled:
                write_step_section(os.path.join(writer.workdir, rundir.FIGURES_DIR,
                                                files[tag]), step, value)
        else:
            writer.image(step, tag, np.asarray(value))


# --------------------------------------------------------------------------- the loop


class Program:
    """What a run (or a vmapped group of runs) computes: its task, model, optimizer and
    mesh, the compiled steps, and the helpers that split member-stacked results.

    ``Program([(config, workdir)])``: one run. ``Program([(config, workdir), ...],
    group_dir=...)``: members that differ only in ``sweep.VMAPPABLE`` fields; each keeps its
    own logs and summary in its workdir, the shared checkpoints go to ``group_dir``.
    """

    def __init__(self, runs: list[tuple[Any, str]], group_dir: str | None = None):
        self.members = runs
        self.vmapped = len(runs) > 1
        config, workdir = runs[0]
        self.group_dir = group_dir or workdir
        self.names = [w for _, w in runs]
        task_cls = get_task_class(config.task.name)
        for c, _ in runs:
            config_lib.validate(c, task_cls.config_defaults)
        self.config, self.t = config, config.train
        self.task = task_cls(config)
        self.custom_model = hasattr(self.task, "build_model")
        self.model = self._model(config)
        self.tx = make_optimizer(config.train)
        self.is_main = jax.process_index() == 0
        self.mesh = sharding.make_mesh(config.mesh)
        sharding.check_batch_size(config.train.batch_size, self.mesh)
        self.eval_set = list(self.task.eval_batches())
        self.diag_batch = jax.tree.map(lambda a: a[:DIAGNOSTICS_EXAMPLES], self.eval_set[0])
        self.diag_shape = (models.probe_shape(ml_collections.FrozenConfigDict(config.model),
                                              self.diag_batch)
                           if not self.custom_model else
                           getattr(self.task, "probe_shape", lambda b: None)(self.diag_batch))
        self.data_per_member = self.vmapped and len({c.seed for c, _ in runs}) > 1
        if config.train.tbptt and not hasattr(self.task, "initial_carry"):
            raise ValueError(f"train.tbptt={config.train.tbptt} needs a stateful task (char_lm); "
                             f"task {config.task.name!r} reads whole sequences: set it to 0")

    def _model(self, config):
        model_config = ml_collections.ConfigDict(config.model.to_dict())
        if self.vmapped:  # the implementation that batches best under vmap
            model_config.impl = unroll.resolve_impl(model_config.impl, model_config.cell,
                                                    vmapped=True)
        model_config = ml_collections.FrozenConfigDict(model_config)
        if self.custom_model:
            return self.task.build_model(model_config)
        return models.build_model(model_config, self.task.input_spec())

    def init_member(self, config) -> TrainState:
        """A member's initial state: its own seed, init options and learning rate."""
        root = jax.random.key(config.seed)
        params = init_params(self._model(config), config.seed, self.eval_set[0])
        return TrainState(step=jnp.array(0, jnp.int32), params=params,
                          opt_state=make_optimizer(config.train).init(params),
                          rng=jax.random.key_data(jax.random.fold_in(root, 2)),
                          nonfinite_steps=jnp.array(0, jnp.int32),
                          first_nonfinite=jnp.array(-1, jnp.int32),
                          carry=(self.task.initial_carry(params)
                                 if hasattr(self.task, "initial_carry") else None))

    # ---- helpers over members

    def split(self, tree) -> list:
        """Per-member host copies of a (possibly member-stacked) pytree."""
        tree = jax.device_get(tree)
        if not self.vmapped:
            return [tree]
        return [jax.tree.map(lambda a: a[i], tree) for i in range(len(self.members))]

    def compile(self, fn, member_axes, **bound):
        """jit (vmapped over members when grouped), outputs replicated over the mesh."""
        fn = functools.partial(fn, model=self.model, task=self.task, **bound)
        if self.vmapped:
            fn = jax.vmap(fn, in_axes=member_axes)
        return jax.jit(fn, out_shardings=sharding.replicated(self.mesh))

    def place(self, batch, *, eval_batch=False):
        axis = 1 if (self.vmapped and self.data_per_member and not eval_batch) else 0
        return sharding.global_batch(batch, self.mesh, axis, same_on_every_host=eval_batch)

    def evaluate(self, eval_fn, params, final: bool = False) -> list[tuple[dict, dict]]:
        """[(metrics, examples)] per member, over the whole eval set."""
        n = len(self.members)
        rows, sizes, examples = [[] for _ in range(n)], [], [{} for _ in range(n)]
        for i, batch in enumerate(self.eval_set):
            metrics, out = eval_fn(params, self.place(batch, eval_batch=True))
            sizes.append(len(jax.tree.leaves(batch)[0]))
            for m, (mm, mo) in enumerate(zip(self.split(metrics), self.split(out))):
                rows[m].append(mm)
                if i == 0:
                    examples[m] = self.task.examples(jax.tree.map(np.asarray, mo),
                                                     jax.device_get(batch))
        w = np.asarray(sizes, np.float64) / sum(sizes)
        results = []
        for m, member_params in enumerate(self.split(params)):
            metrics = {k: float(sum(wi * r[k] for wi, r in zip(w, rows[m]))) for k in rows[m][0]}
            extra, extra_examples = self.task.generation_eval(self.model, member_params,
                                                              final=final)
            results.append((metrics | extra, examples[m] | extra_examples))
        return results


class Trainer:
    """The loop of one run or vmapped group: ``Trainer(runs, group_dir).run()`` trains,
    logs, evaluates, measures gradient flow and checkpoints, and returns one summary per
    member. Its state between steps lives on the object; each due action is a method."""

    def __init__(self, runs: list[tuple[Any, str]], group_dir: str | None = None):
        self.p = Program(runs, group_dir)
        self.members, self.names, self.group_dir = self.p.members, self.p.names, self.p.group_dir
        self.t, self.is_main = self.p.t, self.p.is_main

    def _next_batch(self):
        batches = [next(it) for it in self.iterators]
        return self.p.place(_stack(batches) if self.p.data_per_member else batches[0])

    # ---- the run

    def run(self):
        """Train; returns one summary dict per member."""
        self.ckpt = None
        with _StopSignals() as stop:
            try:
                return self._run(stop)
            except (Exception, KeyboardInterrupt) as e:
                if self.ckpt is not None:
                    self.ckpt.settle()
                code, filename = storage_errno(e)
                if code not in STORAGE_ERRNOS:
                    raise
                # orbax's own writes fail without a file name: then it is the checkpoint that
                # was being written (its failure surfaces at the next save or wait)
                filename = filename or (self.ckpt and self.ckpt.last_save)
                raise StorageError(storage_message(code, filename, self.group_dir)) from e

    def _run(self, stop: _StopSignals) -> list[dict]:
        self.chrono = Chrono()
        self._start()
        batch = self._compile_train(stop)
        step = self.start
        for step in range(self.start + 1, self.t.num_steps + 1):
            if self._stop_requested(stop):
                self._interrupted(step - 1, stop.signum or signal.SIGTERM)
            if step > self.start + 1:
                batch = self._next_batch()
            self.state, metrics = self.train_fn(self.state, batch)
            self.window.add(metrics)
            self.chrono.tick()
            self._after_step(step)
        self._check_finite(step)
        return self._finish()

    def _start(self) -> None:
        """Workdirs checked, state initialised or restored, writers and compiled steps ready."""
        for mc, w in self.members:
            _prepare_workdir(mc, w, self.is_main)
        if self.p.vmapped:
            sweep.prepare_group_dir(self.group_dir, self.members, self.is_main)
        self.ckpt = Checkpointer(self.group_dir, self.t.keep_checkpoints, is_main=self.is_main)
        with jax.numpy_dtype_promotion("standard"):
            states = [self.p.init_member(mc) for mc, _ in self.members]
        state = _stack(states) if self.p.vmapped else states[0]
        seeds = [mc.seed for mc, _ in self.members] if self.p.data_per_member else [self.p.config.seed]
        self.iterators = [self.p.task.train_iterator(s) for s in seeds]
        start, data = None, {}
        if self.t.resume:
            start, state, data = self.ckpt.restore(state, self._accept)
        if start is not None:
            print(f"resuming {self.group_dir} from step {start}", flush=True)
        self.state = jax.device_put(state, sharding.replicated(self.p.mesh))
        self.writers = [Writer(w, enabled=self.is_main, resume_step=start) for w in self.names]
        if self.is_main and start is None:
            for mc, w in self.members:
                atomic_write(os.path.join(w, rundir.CONFIG_FILE), config_lib.to_json(mc))
        self.resumed_from, self.start = start, start or 0
        self.chrono.resume(data)  # wall time of the sessions that led to the checkpoint
        self.window = _LogWindow(self.p.split, _LogWindow.decode(data.get("pending", [])))
        self.heat = [_diagnostics_history(w) if self.start else ([], []) for w in self.names]
        self.saved = [self.start]  # steps checkpointed (or restored) in this process
        self.train_fn = self.p.compile(train_step, (0, 0 if self.p.data_per_member else None),
                                      tx=self.p.tx)
        self.eval_fn = self.p.compile(eval_step, (0, None))
        self.diag_fn = self.p.compile(diagnostics_step, (0, None), probe_shape=self.p.diag_shape) \
            if (self.t.diagnostics_every and self.p.diag_shape) else None

    @staticmethod
    def _stop_requested(stop: _StopSignals) -> bool:
        """A signal here, or (several hosts) on any host: all stop at the same step."""
        return sharding.agree(stop.signum is not None)

    def _accept(self, data: dict) -> None:
        for it, s in zip(self.iterators, data["iterators"], strict=True):
            it.set_state(s)

    def _compile_train(self, stop: _StopSignals):
        """Compile the train step (on the first batch, which it returns), say so, and log
        step 0 of a fresh run. A signal that arrived while compiling (which cannot be
        interrupted) stops the run here, before the first evaluation."""
        t, batch, compile_s = self.t, None, 0.0
        if t.num_steps > self.start:  # num_steps=0 measures at initialisation only
            batch = self._next_batch()
            compile_start = time.perf_counter()
            self.train_fn = self.train_fn.lower(self.state, batch).compile()
            compile_s = time.perf_counter() - compile_start
        self.compile_s = compile_s
        label = self.group_dir if self.p.vmapped else self.names[0]
        members = f" ({len(self.names)} members vmapped)" if self.p.vmapped else ""
        if batch is None:
            print(f"[{label}] measuring at step {self.start} only{members} "
                  f"(train.num_steps={t.num_steps})")
        else:
            print(f"[{label}] compiled the train step in {compile_s:.1f} s{members} on "
                  f"{self.p.mesh.devices.size} device(s); training steps {self.start + 1}.."
                  f"{t.num_steps}")
        self.last_eval: list = []
        if self._stop_requested(stop):
            self._interrupted(self.start, stop.signum or signal.SIGTERM)
        if self.start == 0:
            rows = [{} for _ in self.names]
            if self.diag_fn:
                self._diagnose(0, rows)
            if t.eval_every or t.num_steps == 0:
                self.last_eval = self._log_eval(0, rows, t.num_steps == 0)
            for w, r in zip(self.writers, rows):
                w.write(0, r)
        self.chrono.start_window()
        return batch

    def _after_step(self, step: int) -> None:
        """Logging window, diagnostics, evaluation and checkpoint, when each is due."""
        t, last = self.t, step == self.t.num_steps
        rows = [{} for _ in self.names]
        if every(step, t.log_every) or last:
            self._log_train(step, rows)
        with self.chrono.side():
            if self.diag_fn and (every(step, t.diagnostics_every) or last):
                self._diagnose(step, rows)
            if every(step, t.eval_every) or last:
                self.last_eval = self._log_eval(step, rows, last)
            for w, r in zip(self.writers, rows):
                w.write(step, r)
            if every(step, t.checkpoint_every) or last:
                self._check_finite(step)
                self._save(step)

    def _log_train(self, step: int, rows: list[dict]) -> None:
        per_member = self.window.take_means()
        self._check_finite(step)
        rate, eta = self.chrono.end_window(self.t.num_steps - step)
        skipped = np.atleast_1d(jax.device_get(self.state.nonfinite_steps))
        for m, tm in enumerate(per_member):
            rows[m] |= {f"train/{k}": v for k, v in tm.items()}
            rows[m]["train/steps_per_sec"] = rate
            rows[m]["train/nonfinite_steps"] = int(skipped[m])
        with self.chrono.side():  # TensorBoard only: metrics.jsonl rows stay as they were
            for w, lr in zip(self.writers, _learning_rates(self.members, self.state.opt_state)):
                w.scalars(step, {"train/learning_rate": lr})
        losses = [tm["loss"] for tm in per_member]
        shown = f"{losses[0]:.4g}" if len(losses) == 1 else \
            f"{np.mean(losses):.4g} (mean of {len(losses)}, {min(losses):.4g}–{max(losses):.4g})"
        label = self.group_dir if self.p.vmapped else self.names[0]
        print(f"[{label}] step {step:>6}/{self.t.num_steps}  loss {shown}  {rate:6.1f} steps/s"
              f"  eta {fmt_duration(eta)}", flush=True)

    def _save(self, step: int) -> None:
        self.ckpt.save(step, self.state, {
            "iterators": [it.get_state() for it in self.iterators],
            "pending": self.window.encode()} | self.chrono.state())
        self.saved.append(step)

    def _close(self) -> None:
        self.ckpt.close()
        for w in self.writers:
            w.close()

    def _check_finite(self, step: int) -> None:
        firsts = np.atleast_1d(jax.device_get(self.state.first_nonfinite))
        bad = [(self.names[i], int(f)) for i, f in enumerate(firsts) if f >= 0]
        if bad and not self.t.skip_nonfinite:
            self.ckpt.wait()
            good = self.ckpt.latest_step()
            self._close()
            ckpt_dir = os.path.join(self.group_dir, rundir.CHECKPOINTS_DIR)
            raise NonFiniteLossError(_nonfinite_message(self.t, bad, good, ckpt_dir),
                                     diverged=dict(bad))

    def _interrupted(self, step: int, signum: int) -> None:
        """SIGTERM/SIGINT: checkpoint this step (unless it is NaN), close, raise."""
        self._check_finite(step)
        if self.saved[-1] != step:
            self._save(step)
        self._close()
        raise TrainingInterrupted(signum, step, self.ckpt.directory, self.ckpt.saved(step))

    def _diagnose(self, step: int, rows: list[dict]) -> None:
        hidden_all, g_all = self.diag_fn(self.state.params,
                                         self.p.place(self.p.diag_batch, eval_batch=True))
        params_all = self.p.split(self.state.params)
        for m, (hidden, g_params) in enumerate(zip(self.p.split(hidden_all),
                                                   self.p.split(g_all))):
            row, writer = rows[m], self.writers[m]
            row[rundir.HIDDEN_NORMS] = hidden
            row["grad/h0_over_hT"] = float(hidden[0] / max(hidden[-1], 1e-38))
            for name, v in diagnostics.param_grad_norms(g_params).items():
                row[f"grad/norm/{name}"] = float(v)
            for prefix, tree in (("params", params_all[m]), ("grads", g_params)):
                writer.histograms(step, {f"{prefix}/{k}": v
                                         for k, v in diagnostics.flat_params(tree).items()})
            self.heat[m][0].append(step)
            self.heat[m][1].append(hidden)
            writer.image(step, "grad/hidden_norms_heatmap",
                         heatmap_rgb(np.asarray(self.heat[m][0]), np.asarray(self.heat[m][1])))

    def _log_eval(self, step: int, rows: list[dict], final: bool) -> list[dict]:
        results = self.p.evaluate(self.eval_fn, self.state.params, final=final)
        base = self.p.task.baseline()
        for m, (metrics, examples) in enumerate(results):
            rows[m] |= {f"eval/{k}": v for k, v in metrics.items()}
            _write_examples(self.writers[m], step, examples, getattr(self.p.task, "example_files", {}))
            shown = "  ".join(f"{k} {v:.4g}" + (f" (baseline {base[k]:.4g})" if k in base
                                                 else "") for k, v in metrics.items())
            print(f"[{self.names[m]}]   eval @ {step}: {shown}", flush=True)
        return [metrics for metrics, _ in results]

    def _finish(self) -> list[dict]:
        if not self.last_eval:  # restarted on a finished run: nothing trained, evaluate once
            self.last_eval = [m for m, _ in self.p.evaluate(self.eval_fn, self.state.params, final=True)]
        self.ckpt.close()
        skipped = np.atleast_1d(jax.device_get(self.state.nonfinite_steps))
        steps = np.atleast_1d(jax.device_get(self.state.step))
        summaries = []
        for m, (mc, w) in enumerate(self.members):
            summary = {
                "task": mc.task.name, "model": mc.model.kind, "cell": mc.model.cell,
                "seed": mc.seed, "steps": int(steps[m]),
                "final_eval": self.last_eval[m], "baseline": self.p.task.baseline(),
                "nonfinite_steps": int(skipped[m]), "compile_s": self.compile_s,
                "wall_time_s": self.chrono.elapsed(),  # every session up to now
                "resumed_from": self.resumed_from,
                "backend": jax.default_backend(), "devices": int(self.p.mesh.devices.size),
                "vmapped_members": len(self.members),
            }
            self.writers[m].hparams(int(steps[m]), *_hparams(mc, self.last_eval[m]))
            if self.is_main:
                atomic_write(os.path.join(w, rundir.SUMMARY_FILE), json.dumps(summary, indent=2))
            summaries.append(summary)
        for w in self.writers:
            w.close()
        return summaries


# --------------------------------------------------------------------------- entry point


def train_and_evaluate(config, workdir: str, launcher=None) -> dict:
    """Train (and evaluate) ``config`` in ``workdir``; a sweep runs each member in a subdir,
    here or as jobs of ``launcher`` (``--launcher``, seqjax.launch; a single run ignores it).

    Returns the run's summary, or ``{"members": {name: summary}}`` for a sweep. The workdir
    is locked for the whole call: a second process on it stops with ``WorkdirInUse``.
    """
    sharding.maybe_initialize_distributed(config)
    with _workdir_lock(workdir):
        members = sweep.sweep_members(config)
        if not members:
            return Trainer([(config, workdir)]).run()[0]
        config_lib.validate(config, get_task_class(config.task.name).config_defaults)
        return sweep.run_sweep(config, workdir, members,
                               lambda runs, group_dir: Trainer(runs, group_dir).run(),
                               launch.runner(launcher, sweep_job))


def sweep_job(runs, group_dir) -> list[dict]:
    """One launched job of a sweep, in its own process: a lone member as any run (with
    its own workdir lock), a vmapped group through its Trainer."""
    if group_dir is None:
        return [train_and_evaluate(*runs[0])]
    return Trainer(runs, group_dir).run()


@contextlib.contextmanager
def _workdir_lock(workdir: str):
    """Process 0 (the writer) holds the workdir's lock; every process learns whether it got
    it, so all hosts run or none does."""
    error = None
    with contextlib.ExitStack() as stack:
        if jax.process_index() == 0:
            try:
                stack.enter_context(rundir.locked(workdir))
            except WorkdirInUse as e:
                error = e
            except OSError as e:
                code, filename = storage_errno(e)
                if code not in STORAGE_ERRNOS:
                    raise
                error = StorageError(storage_message(code, filename, workdir))
        if sharding.agree(error is not None):
            raise error or WorkdirInUse(
                f"workdir {workdir} could not be taken by process 0 (it says why); "
                f"this process stops with it")
        yield
