"""The one trainer for every task: ``train_and_evaluate(config, workdir)``.

One run writes into ``workdir``: config.json, metrics.jsonl, TensorBoard events,
checkpoints/ (orbax: train state + data-iterator position), summary.json at the end.
Started again on the same workdir it resumes from the newest checkpoint and continues
exactly as an uninterrupted run would (same batches, same dropout keys, same logs).

A step whose loss or gradient is NaN/Inf never touches the parameters: the step is
counted, and (unless ``train.skip_nonfinite``) the run stops at the next check with a
``NonFiniteLossError`` that names the step, before writing another checkpoint, so the
last good checkpoint is what a restart or a user finds.

Killed at any moment (SIGKILL, power cut), a restart resumes from the newest complete
checkpoint: orbax writes each one into ``<step>.orbax-checkpoint-tmp`` and renames it when
done, and never lists an unrenamed one; the unlogged part of the current logging window is
saved with the state, so the resumed logs equal an uninterrupted run's bit for bit. A newest
checkpoint that does not restore (corrupt, truncated) is reported, moved aside to
``<step>.corrupt-<stamp>`` and the one before it is used. SIGTERM or Ctrl-C (SIGINT) saves a
checkpoint at the current step and raises ``TrainingInterrupted`` (a second Ctrl-C stops at
once); a disk that fills up or turns read-only raises ``StorageError`` naming the file and the
last complete checkpoint.

Devices: the batch is split over the ``data`` axis of a mesh (seqjax.sharding); the state
is replicated; jit partitions the step. Only process 0 writes logs and summaries.

``config.sweep`` (``sweep.model.cell = ["rnn", "lstm"]``, ``sweep.seed = [0, 1, 2]``, ...)
runs every combination, each member logging into ``workdir/<member>``. Members that differ
only in fields that change array values, not shapes (``VMAPPABLE``: seed, learning rate,
forget bias, recurrent scale), train together as ONE compiled program under ``jax.vmap``
(their shared checkpoints live in ``workdir/<group>``); the others run one after another.
"""

from __future__ import annotations

import copy
import datetime
import errno
import itertools
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import zlib
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from seqjax import config as config_lib
from seqjax import diagnostics, models, plots, sharding
from seqjax.logging import Writer, atomic_write, read_metrics
from seqjax.tasks import get_task_class

# Fields that may change between a run and its resumption: they change what is logged or
# how long it runs, not the trajectory.
RESUMABLE_CHANGES = ("train.num_steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.diagnostics_every",
                     "train.keep_checkpoints", "train.resume", "train.skip_nonfinite",
                     "mesh.data", "mesh.model", "distributed",
                     # performance knobs: the same maths (tested equal), other speed/memory
                     "model.impl", "model.remat", "model.unroll", "model.hoist")
# Sweep fields that change only array contents: members differing in these can be vmapped.
VMAPPABLE = ("seed", "train.learning_rate", "model.forget_bias", "model.recurrent_scale")
DIAGNOSTICS_EXAMPLES = 64


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient) became NaN/Inf; raised with the step and what to try.

    ``diverged``: {run directory: first non-finite step} of the runs that hit it.
    """

    def __init__(self, message: str, diverged: dict | None = None):
        super().__init__(message)
        self.diverged = dict(diverged or {})


class SweepDivergedError(NonFiniteLossError):
    """Some sweep members hit NaN/Inf; the other members ran to the end."""


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; the run stopped with a checkpoint of ``step`` (if step > 0)."""

    def __init__(self, signum: int, step: int, checkpoint_dir: str, saved: bool):
        self.signum, self.step, self.checkpoint_dir, self.saved = signum, step, checkpoint_dir, saved
        where = (f"checkpoint of step {step} saved in {checkpoint_dir}" if saved else
                 "no step was trained yet, so there is no checkpoint")
        super().__init__(f"{signal.Signals(signum).name} received; stopped after step {step}, "
                         f"{where}")


class StorageError(RuntimeError):
    """The workdir could not be written (disk full, read-only, no permission)."""


# errno values that mean "this storage cannot take the run's files".
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                   errno.EFBIG, errno.ENOTDIR)


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


@flax.struct.dataclass
class TrainState:
    step: jax.Array             # updates done
    params: Any
    opt_state: Any              # includes the learning rate (optax.inject_hyperparams)
    rng: jax.Array              # raw key data of the dropout key (folded with the step)
    nonfinite_steps: jax.Array  # steps whose loss/gradient was NaN/Inf (skipped)
    first_nonfinite: jax.Array  # the first such step (1-based), -1 if none


# --------------------------------------------------------------------------- pieces


def make_optimizer(t) -> optax.GradientTransformation:
    """optax: global-norm clipping (if grad_clip > 0) → optimizer with a schedule.

    The peak learning rate is an injected hyper-parameter (it lives in the optimizer
    state), so members of a sweep with different learning rates share one program.
    """
    def build(learning_rate):
        if t.schedule == "constant":
            schedule = learning_rate
        elif t.schedule == "cosine":
            schedule = optax.cosine_decay_schedule(learning_rate, t.num_steps)
        else:  # warmup_cosine
            schedule = optax.warmup_cosine_decay_schedule(
                0.0, learning_rate, t.warmup_steps, max(t.num_steps, t.warmup_steps + 1))
        opt = {
            "adam": lambda: optax.adam(schedule),
            "adamw": lambda: optax.adamw(schedule, weight_decay=t.weight_decay),
            "sgd": lambda: optax.sgd(schedule, momentum=t.momentum or None),
            "rmsprop": lambda: optax.rmsprop(schedule),
        }[t.optimizer]()
        return optax.chain(optax.clip_by_global_norm(t.grad_clip), opt) if t.grad_clip > 0 \
            else opt
    return optax.inject_hyperparams(build)(learning_rate=t.learning_rate)


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _prepare_workdir(config, workdir: str, is_main: bool) -> None:
    """Refuse to mix two experiments in one workdir; with resume=False move the old run aside."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    if not config.train.resume:
        if is_main:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            aside = f"{workdir.rstrip('/')}.old-{stamp}"
            shutil.move(workdir, aside)
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


def _checkpoint_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(directory), "checkpoints"),
        # cleanup: remove what a killed save left (<step>.orbax-checkpoint-tmp)
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             cleanup_tmp_directories=True),
        item_names=("state", "data"))


def _digest(tree) -> str:
    """CRC-32 of every array of ``tree`` (bytes, dtype, shape), written with a checkpoint:
    orbax reads back flipped bits in array data without complaint; this notices them."""
    crc = 0
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        a = np.ascontiguousarray(leaf)
        crc = zlib.crc32(f"{a.dtype}{a.shape}".encode() + a.tobytes(), crc)
    return f"{crc:08x}"


def _storage_errno(e: BaseException) -> tuple[int | None, str | None]:
    """(errno, file) of an OSError, or of the tensorstore error orbax raises instead
    (``ValueError('RESOURCE_EXHAUSTED: Error writing local file "...": ... [os_error_code='28']')``),
    looked for along the exception's causes."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            return e.errno, e.filename
        code = re.search(r"os_error_code='?(\d+)", str(e))
        if code:
            path = re.search(r'local file "([^"]+)"', str(e))
            return int(code.group(1)), path.group(1) if path else None
        e = e.__cause__ or e.__context__
    return None, None


def _complete_steps(ckpt_dir: str) -> list[int]:
    """Steps of the finished checkpoints in ``ckpt_dir`` (orbax renames a step's directory
    to its bare number only once every file is written)."""
    try:
        return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())
    except OSError:
        return []


def _mean_metrics(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


# --------------------------------------------------------------------------- training


class Trainer:
    """One run, or a group of runs trained as one vmapped program; ``run()`` does the loop.

    ``Trainer(config, workdir)``: one run. ``Trainer(members=[(config, workdir), ...],
    group_dir=...)``: members that differ only in ``VMAPPABLE`` fields; each keeps its own
    logs and summary in its workdir, the shared checkpoints go to ``group_dir``.
    """

    def __init__(self, config=None, workdir: str | None = None, *, members=None,
                 group_dir: str | None = None):
        self.members = members or [(config, workdir)]
        self.vmapped = len(self.members) > 1
        config, workdir = self.members[0]
        self.group_dir = group_dir or workdir
        task_cls = get_task_class(config.task.name)
        for c, _ in self.members:
            config_lib.validate(c, task_cls.config_defaults)
        self.config = config
        self.task = task_cls(config)
        self.spec = self.task.input_spec()
        self.model_config = ml_collections.FrozenConfigDict(config.model)
        self.custom_model = getattr(self.task, "build_model", None)
        self.model = self._model(config)
        self.tx = make_optimizer(config.train)
        self.is_main = jax.process_index() == 0
        self.mesh = sharding.make_mesh(config.mesh)
        sharding.check_batch_size(config.train.batch_size, self.mesh)
        self.eval_set = list(self.task.eval_batches())
        self.diag_batch = jax.tree.map(lambda a: a[:DIAGNOSTICS_EXAMPLES], self.eval_set[0])
        self.diag_shape = (models.probe_shape(self.model_config, self.diag_batch)
                           if not self.custom_model else
                           getattr(self.task, "probe_shape", lambda b: None)(self.diag_batch))
        seeds = [c.seed for c, _ in self.members]
        self.data_per_member = self.vmapped and len(set(seeds)) > 1

    def _model(self, config):
        if self.custom_model:
            return type(self.task)(config).build_model()
        model_config = config.model
        if self.vmapped and model_config.impl == "auto" and jax.default_backend() == "cpu":
            # vmapped members on CPU: the fused kernel batches worse than lax.scan (5 LSTM seeds:
            # 61.5 s fused vs 46.5 s scan, benchmarks/RESULTS.md); same maths, tested equal
            model_config = ml_collections.ConfigDict(model_config.to_dict())
            model_config.impl = "scan"
        return models.build_model(ml_collections.FrozenConfigDict(model_config), self.spec)

    # ---- pure functions (jitted, and vmapped over members, below)

    def init_member(self, config) -> TrainState:
        """A member's initial state: its own seed, init options and learning rate."""
        root = jax.random.key(config.seed)
        example = jax.tree.map(lambda a: a[:2], self.eval_set[0])
        # jitted: one compile instead of an eager dispatch (and compile) per init op
        params = jax.jit(self._model(config).init)({"params": jax.random.fold_in(root, 0)},
                                                   example)["params"]
        return TrainState(step=jnp.array(0, jnp.int32), params=params,
                          opt_state=make_optimizer(config.train).init(params),
                          rng=jax.random.key_data(jax.random.fold_in(root, 2)),
                          nonfinite_steps=jnp.array(0, jnp.int32),
                          first_nonfinite=jnp.array(-1, jnp.int32))

    def loss_fn(self, params, batch, key, train: bool, probes=None):
        out, sown = self.model.apply({"params": params}, batch, probes=probes, train=train,
                                     rngs={"dropout": key}, mutable=["intermediates"])
        loss, metrics = self.task.loss(out, batch)
        # quantities a model reports about itself (the LIF cell's spike rate) join the metrics
        for name, values in sown.get("intermediates", {}).items():
            metrics = metrics | {name: jnp.mean(jnp.stack(values))}
        return loss, (metrics, out)

    def train_step(self, state: TrainState, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        (loss, (metrics, _)), grads = jax.value_and_grad(self.loss_fn, has_aux=True)(
            state.params, batch, key, True)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        # optax mixes int step counts with float decays (adam's bias correction), which the
        # strict dtype promotion of our tests rejects; seqjax's own maths stays strict.
        with jax.numpy_dtype_promotion("standard"):
            updates, new_opt = self.tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        step = state.step + 1
        state = state.replace(
            step=step, params=keep(new_params, state.params),
            opt_state=keep(new_opt, state.opt_state),
            nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
            first_nonfinite=jnp.where((state.first_nonfinite < 0) & ~finite, step,
                                      state.first_nonfinite))
        return state, {"loss": loss, "grad_norm": grad_norm} | metrics

    def eval_step(self, params, batch):
        loss, (metrics, out) = self.loss_fn(params, batch, jax.random.key(0), False)
        return {"loss": loss} | metrics, out

    def diagnostics_step(self, params, batch):
        """Per-timestep ‖∂ℓ/∂h_t‖ (mean over examples of the per-example loss), param grads."""
        probes = jnp.zeros(self.diag_shape, jnp.float32)

        def loss_of(probes, params):
            return self.loss_fn(params, batch, jax.random.key(0), False, probes)[0]

        g_probes, g_params = jax.grad(loss_of, argnums=(0, 1))(probes, params)
        # The task loss is a mean over the batch: scale back to per-example gradients.
        norms_BxT1 = diagnostics.safe_norm(g_probes, axis=-1) * self.diag_shape[0]
        return jnp.mean(norms_BxT1, axis=0), g_params

    # ---- helpers over members

    def _split(self, tree) -> list:
        """Per-member host copies of a (possibly member-stacked) pytree."""
        tree = jax.device_get(tree)
        if not self.vmapped:
            return [tree]
        return [jax.tree.map(lambda a: a[i], tree) for i in range(len(self.members))]

    def _compile(self, fn, member_axes):
        """jit (vmapped over members when grouped), outputs replicated over the mesh."""
        if self.vmapped:
            fn = jax.vmap(fn, in_axes=member_axes)
        return jax.jit(fn, out_shardings=sharding.replicated(self.mesh))

    def _place(self, batch, *, eval_batch=False):
        axis = 1 if (self.vmapped and self.data_per_member and not eval_batch) else 0
        return sharding.global_batch(batch, self.mesh, axis, same_on_every_host=eval_batch)

    def evaluate(self, eval_fn, params, final: bool = False) -> list[tuple[dict, dict]]:
        """[(metrics, examples)] per member, over the whole eval set."""
        n = len(self.members)
        rows, sizes, examples = [[] for _ in range(n)], [], [{} for _ in range(n)]
        for i, batch in enumerate(self.eval_set):
            metrics, out = eval_fn(params, self._place(batch, eval_batch=True))
            sizes.append(len(jax.tree.leaves(batch)[0]))
            for m, (mm, mo) in enumerate(zip(self._split(metrics), self._split(out))):
                rows[m].append(mm)
                if i == 0:
                    examples[m] = self.task.examples(np.asarray(mo), jax.device_get(batch))
        w = np.asarray(sizes, np.float64) / sum(sizes)
        results = []
        for m, member_params in enumerate(self._split(params)):
            metrics = {k: float(sum(wi * r[k] for wi, r in zip(w, rows[m]))) for k in rows[m][0]}
            extra, extra_examples = self.task.generation_eval(self.model, member_params,
                                                              final=final)
            results.append((metrics | extra, examples[m] | extra_examples))
        return results

    # ---- the loop

    def run(self):
        """Train; returns the summary dict (a list of them for a vmapped group)."""
        with _StopSignals() as stop:
            try:
                return self._run(stop)
            except (Exception, KeyboardInterrupt) as e:
                self._settle()
                code, filename = _storage_errno(e)
                if code not in _STORAGE_ERRNOS:
                    raise
                # orbax's own writes fail without a file name: then it is the checkpoint that
                # was being written (its failure surfaces at the next save or wait)
                filename = filename or getattr(self, "_last_save", None)
                raise StorageError(self._storage_message(code, filename)) from e

    def _settle(self) -> None:
        """After an error: let a checkpoint being written finish, so a rerun resumes from it."""
        mngr = getattr(self, "_mngr", None)
        if mngr is not None:
            try:
                mngr.wait_until_finished()
                mngr.close()
            except Exception:  # the save itself failed (disk full): it stays incomplete, unused
                pass

    def _storage_message(self, code: int, filename: str | None) -> str:
        ckpt_dir = os.path.join(os.path.abspath(self.group_dir), "checkpoints")
        steps = _complete_steps(ckpt_dir)
        fix = {errno.ENOSPC: "Free some space (or move the workdir to another disk)",
               errno.EDQUOT: "Free some space (or move the workdir to another disk)",
               errno.EFBIG: "Free some space (or move the workdir to another disk)",
               errno.ENOTDIR: "A parent of the workdir is a file: choose another --workdir"
               }.get(code, "Make it writable (or choose a --workdir elsewhere)")
        what = f"cannot write {filename or self.group_dir}: {os.strerror(code)}."
        if steps:
            return (f"{what} The run stopped; its newest complete checkpoint is step "
                    f"{steps[-1]} in {ckpt_dir}. {fix}, then rerun the same command to "
                    f"resume from it.")
        return f"{what} {fix}, then run again (no checkpoint was written: it starts at step 0)."

    def _restore(self, mngr, state, iterators):
        """(step, state, carried log window) from the newest checkpoint that restores.

        A checkpoint that fails to restore (truncated or corrupt files, a partly deleted
        directory) is reported and, once an older one restored, moved aside so that this
        step can be saved again. If none restores, nothing is moved and the error says why.
        """
        steps = sorted(mngr.all_steps(), reverse=True)
        ckpt_dir = str(mngr.directory)
        failures = []
        for step in steps:
            try:
                restored = mngr.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(state), data=ocp.args.JsonRestore()))
                got = int(np.atleast_1d(jax.device_get(restored["state"].step))[0])
                if got != step:
                    raise ValueError(f"it holds the state of step {got}")
                data = restored["data"]
                if "digest" in data and _digest(restored["state"]) != data["digest"]:
                    raise ValueError("its arrays do not match the checksum saved with them")
                for it, s in zip(iterators, data["iterators"], strict=True):
                    it.set_state(s)
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                text = (str(e).strip().splitlines() or [""])[0]
                reason = f"{type(e).__name__}: {text[:300]}"
                failures.append((step, reason))
                print(f"warning: checkpoint step {step} in {ckpt_dir} does not restore ({reason})"
                      + (f"; falling back to an older one" if step != steps[-1] else ""),
                      file=sys.stderr, flush=True)
                continue
            if failures and self.is_main:
                stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
                for bad, _ in failures:
                    aside = os.path.join(ckpt_dir, f"{bad}.corrupt-{stamp}")
                    os.rename(os.path.join(ckpt_dir, str(bad)), aside)
                    print(f"warning: moved the damaged checkpoint to {aside}", file=sys.stderr)
                mngr.reload()
            carried = [[{k: np.asarray(float(v), dtype) for k, (v, dtype) in member.items()}
                        for member in row] for row in data.get("pending", [])]
            self._elapsed_before = float(data.get("elapsed_s", 0.0))
            return step, restored["state"], carried
        if failures:
            raise ValueError(
                f"no checkpoint in {ckpt_dir} restores (steps "
                f"{', '.join(str(s) for s, _ in failures)}; the warnings above say why). If "
                f"the code changed since they were written, run them with the old code; "
                f"else move them aside, or start anew with --config.train.resume=False")
        return None, state, []

    def _run(self, stop: _StopSignals):
        c, t = self.config, self.config.train
        wall_start = time.perf_counter()
        names = [w for _, w in self.members]
        self._elapsed_before = 0.0  # set by _restore: wall time before the checkpoint resumed
        for mc, w in self.members:
            _prepare_workdir(mc, w, self.is_main)
        if self.vmapped:
            _prepare_group_dir(self.group_dir, self.members, self.is_main)
        mngr = self._mngr = _checkpoint_manager(self.group_dir, t.keep_checkpoints)
        with jax.numpy_dtype_promotion("standard"):
            states = [self.init_member(mc) for mc, _ in self.members]
        state = _stack(states) if self.vmapped else states[0]
        iterators = [self.task.train_iterator(mc.seed) for mc, _ in self.members] \
            if self.data_per_member else [self.task.train_iterator(c.seed)]
        start, carried = None, []  # carried: the logging window's rows before the checkpoint
        if t.resume:
            start, state, carried = self._restore(mngr, state, iterators)
        if start is not None:
            print(f"resuming {self.group_dir} from step {start}", flush=True)
        state = jax.device_put(state, sharding.replicated(self.mesh))
        writers = [Writer(w, enabled=self.is_main, resume_step=start) for w in names]
        if self.is_main and start is None:
            for mc, w in self.members:
                atomic_write(os.path.join(w, "config.json"), config_lib.to_json(mc))
        resumed_from, start = start, start or 0
        heat = [self._diagnostics_history(w) if start else ([], []) for w in names]

        batch_axis = 0 if self.data_per_member else None
        train_fn = self._compile(self.train_step, (0, batch_axis))
        eval_fn = self._compile(self.eval_step, (0, None))
        diag_fn = self._compile(self.diagnostics_step, (0, None)) \
            if (t.diagnostics_every and self.diag_shape) else None

        def next_batch():
            batches = [next(it) for it in iterators]
            return self._place(_stack(batches) if self.data_per_member else batches[0])

        def save(step):
            # The unlogged rows of the current logging window go with the state, exactly
            # (float32 -> repr -> float32), so a resumed run logs the same means.
            window = [[{k: (repr(float(v)), str(np.asarray(v).dtype)) for k, v in m.items()}
                       for m in row] for row in carried + [self._split(p) for p in pending]]
            mngr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave({"iterators": [it.get_state() for it in iterators],
                                        "pending": window, "digest": _digest(state),
                                        # wall time of the sessions that led to this step
                                        "elapsed_s": self._elapsed_before
                                        + time.perf_counter() - wall_start})))
            saved.append(step)
            self._last_save = os.path.join(str(mngr.directory), f"{step}.orbax-checkpoint-tmp")

        def check_finite(step):
            firsts = np.atleast_1d(jax.device_get(state.first_nonfinite))
            bad = [(names[i], int(f)) for i, f in enumerate(firsts) if f >= 0]
            if bad and not t.skip_nonfinite:
                mngr.wait_until_finished()
                good = mngr.latest_step()
                mngr.close()
                for w in writers:
                    w.close()
                where = "; ".join(f"{n} at step {s}" for n, s in bad)
                raise NonFiniteLossError(
                    f"loss or gradient became NaN/Inf at step {min(s for _, s in bad)} "
                    f"(run: {where}); the parameters were not updated with it. Try " + (
                        "gradient clipping (--config.train.grad_clip=1.0)" if not t.grad_clip
                        else f"a tighter gradient clip (now {t.grad_clip:g})") +
                    f", a lower learning rate (now "
                    f"{t.learning_rate:g}), or --config.train.skip_nonfinite=True to skip such "
                    f"steps. Last good checkpoint: " + (
                        f"step {good} in {os.path.join(self.group_dir, 'checkpoints')}; rerun "
                        f"on this workdir (with skip_nonfinite) to resume from it, or change "
                        f"the optimizer with another --workdir." if good is not None else
                        "none (no checkpoint was written before it)."),
                    diverged=dict(bad))

        def diagnose(step, rows):
            hidden_all, g_all = diag_fn(state.params, self._place(self.diag_batch, eval_batch=True))
            params_all = self._split(state.params)
            for m, (hidden, g_params) in enumerate(zip(self._split(hidden_all),
                                                       self._split(g_all))):
                row = rows[m]
                row["grad/hidden_norms"] = hidden
                row["grad/h0_over_hT"] = float(hidden[0] / max(hidden[-1], 1e-38))
                for name, v in diagnostics.param_grad_norms(g_params).items():
                    row[f"grad/norm/{name}"] = float(v)
                writers[m].histograms(step, {f"params/{k}": v
                                             for k, v in _flat(params_all[m]).items()})
                writers[m].histograms(step, {f"grads/{k}": v for k, v in _flat(g_params).items()})
                heat[m][0].append(step)
                heat[m][1].append(hidden)
                writers[m].image(step, "grad/hidden_norms_heatmap",
                                 plots.heatmap_rgb(np.asarray(heat[m][0]), np.asarray(heat[m][1])))

        def log_eval(step, rows, final):
            results = self.evaluate(eval_fn, state.params, final=final)
            base = self.task.baseline()
            for m, (metrics, examples) in enumerate(results):
                rows[m] |= {f"eval/{k}": v for k, v in metrics.items()}
                self._write_examples(writers[m], step, examples)
                shown = "  ".join(f"{k} {v:.4g}" + (f" (baseline {base[k]:.4g})" if k in base
                                                     else "") for k, v in metrics.items())
                print(f"[{names[m]}]   eval @ {step}: {shown}", flush=True)
            return [metrics for metrics, _ in results]

        compile_s, compiled_train = 0.0, None
        if t.num_steps > start:  # num_steps=0 measures at initialisation only
            batch = next_batch()
            compile_start = time.perf_counter()
            compiled_train = train_fn.lower(state, batch).compile()
            compile_s = time.perf_counter() - compile_start
        label = self.group_dir if self.vmapped else names[0]
        members = f" ({len(names)} members vmapped)" if self.vmapped else ""
        if compiled_train is None:
            print(f"[{label}] measuring at step {start} only{members} "
                  f"(train.num_steps={t.num_steps})")
        else:
            print(f"[{label}] compiled the train step in {compile_s:.1f} s{members} on "
                  f"{self.mesh.devices.size} device(s); training steps {start + 1}..{t.num_steps}")
        last_eval: list = []
        if start == 0:
            rows = [{} for _ in names]
            if diag_fn:
                diagnose(0, rows)
            if t.eval_every or t.num_steps == 0:
                last_eval = log_eval(0, rows, t.num_steps == 0)
            for w, r in zip(writers, rows):
                w.write(0, r)

        pending, window_start, window_steps, overhead = [], time.perf_counter(), 0, 0.0
        saved = [start]  # steps checkpointed (or restored) in this process

        def interrupted(step):
            """SIGTERM/SIGINT: checkpoint this step (unless it is NaN), close, raise."""
            check_finite(step)
            if saved[-1] != step:
                save(step)
            mngr.wait_until_finished()
            mngr.close()
            for w in writers:
                w.close()
            raise TrainingInterrupted(stop.signum, step, str(mngr.directory),
                                      step in _complete_steps(str(mngr.directory)))

        step = start
        for step in range(start + 1, t.num_steps + 1):
            if stop.signum:
                interrupted(step - 1)
            if step > start + 1:
                batch = next_batch()
            state, metrics = compiled_train(state, batch)
            pending.append(metrics)
            window_steps += 1
            rows = [{} for _ in names]
            last = step == t.num_steps
            if step % t.log_every == 0 or last:
                per_member = [_mean_metrics(ms) for ms in
                              zip(*(carried + [self._split(p) for p in pending]))]
                pending, carried = [], []
                check_finite(step)
                elapsed = time.perf_counter() - window_start
                rate = window_steps / max(elapsed - overhead, 1e-9)  # training steps only
                wall_rate = window_steps / max(elapsed, 1e-9)  # with eval etc.: for the eta
                skipped = np.atleast_1d(jax.device_get(state.nonfinite_steps))
                for m, tm in enumerate(per_member):
                    rows[m] |= {f"train/{k}": v for k, v in tm.items()}
                    rows[m]["train/steps_per_sec"] = rate
                    rows[m]["train/nonfinite_steps"] = int(skipped[m])
                losses = [tm["loss"] for tm in per_member]
                shown = f"{losses[0]:.4g}" if len(losses) == 1 else \
                    f"{np.mean(losses):.4g} (mean of {len(losses)}, {min(losses):.4g}–{max(losses):.4g})"
                print(f"[{label}] step {step:>6}/{t.num_steps}  loss {shown}  {rate:6.1f} steps/s"
                      f"  eta {_fmt_time((t.num_steps - step) / wall_rate)}", flush=True)
                window_start, window_steps, overhead = time.perf_counter(), 0, 0.0
            side_start = time.perf_counter()
            if diag_fn and (step % t.diagnostics_every == 0 or last):
                diagnose(step, rows)
            if (t.eval_every and step % t.eval_every == 0) or last:
                last_eval = log_eval(step, rows, last)
            for w, r in zip(writers, rows):
                w.write(step, r)
            if (t.checkpoint_every and step % t.checkpoint_every == 0) or last:
                check_finite(step)
                save(step)
            overhead += time.perf_counter() - side_start
        check_finite(step)
        if not last_eval:  # restarted on a finished run: nothing trained, evaluate once
            last_eval = [m for m, _ in self.evaluate(eval_fn, state.params, final=True)]
        mngr.wait_until_finished()
        mngr.close()
        skipped = np.atleast_1d(jax.device_get(state.nonfinite_steps))
        summaries = []
        for m, (mc, w) in enumerate(self.members):
            summary = {
                "task": mc.task.name, "model": mc.model.kind, "cell": mc.model.cell,
                "seed": mc.seed, "steps": int(np.atleast_1d(jax.device_get(state.step))[m]),
                "final_eval": last_eval[m], "baseline": self.task.baseline(),
                "nonfinite_steps": int(skipped[m]), "compile_s": compile_s,
                # all sessions up to the restored checkpoint, then this one
                "wall_time_s": self._elapsed_before + time.perf_counter() - wall_start,
                "resumed_from": resumed_from,
                "backend": jax.default_backend(), "devices": int(self.mesh.devices.size),
                "vmapped_members": len(self.members),
            }
            if self.is_main:
                atomic_write(os.path.join(w, "summary.json"), json.dumps(summary, indent=2))
            summaries.append(summary)
        for w in writers:
            w.close()
        return summaries if self.vmapped else summaries[0]

    @staticmethod
    def _diagnostics_history(workdir):
        steps, rows = [], []
        for r in read_metrics(workdir):
            if plots.HIDDEN_NORMS in r:
                steps.append(r["step"])
                rows.append(r[plots.HIDDEN_NORMS])
        return steps, rows

    @staticmethod
    def _write_examples(writer, step, examples):
        for tag, value in examples.items():
            if isinstance(value, str):
                writer.text(step, tag, value)
            else:
                writer.image(step, tag, np.asarray(value))


def _flat(tree) -> dict:
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in p): v
            for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _prepare_group_dir(group_dir: str, members, is_main: bool) -> None:
    """A vmapped group's checkpoints belong to exactly these members, in this order."""
    names = [os.path.basename(w) for _, w in members]
    path = os.path.join(group_dir, "group.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)["members"]
        if old != names:
            raise ValueError(f"{group_dir} holds the checkpoints of members {old}, not {names}; "
                             f"use another --workdir")
    elif is_main:
        os.makedirs(group_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump({"members": names}, f)


# --------------------------------------------------------------------------- entry points


def _set(config, dotted: str, value) -> None:
    *path, key = dotted.split(".")
    node = config
    for part in path:
        node = node[part]
    node[key] = value


def sweep_members(config) -> list[tuple[str, Any]]:
    """[(member name, member config)]: ``sweep_arms`` × the cartesian product of ``sweep``."""
    sweep = config_lib.sweep_fields(config)
    arms = config_lib.parse_arms(config)
    if not sweep and not arms:
        return []
    fields = list(sweep)
    members = []
    for label, arm_fields in (arms.items() if arms else [(None, {})]):
        for values in itertools.product(*(sweep[f] for f in fields)):
            member = copy.deepcopy(config)
            with member.unlocked():
                member.sweep = ml_collections.ConfigDict()
                member.sweep_arms = ()
                for f, v in list(arm_fields.items()) + list(zip(fields, values)):
                    _set(member, f, v)
            parts = ([label] if label else []) + [
                f"{f.rsplit('.', 1)[-1]}={v}" for f, v in zip(fields, values)]
            members.append(("-".join(parts).replace(" ", "_").replace("/", "_"), member))
    return members


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def vmap_sweep(config) -> bool:
    """Whether members that differ only in VMAPPABLE fields train as one vmapped program.

    ``train.vmap_sweep="auto"``: yes on accelerators, where one small run leaves the chip idle,
    and for init-only sweeps (one compile instead of one per member); not for training on
    CPU, where a step is already compute-bound and N sequential runs are as fast or faster
    (5 LSTM seeds: sequential 41.5 s, vmapped 46.5–61.5 s, benchmarks/RESULTS.md).
    """
    choice = config.train.vmap_sweep
    if choice == "auto":
        return jax.default_backend() != "cpu" or config.train.num_steps == 0
    return choice == "on"


def sweep_groups(config, members) -> list[tuple[str | None, list]]:
    """Members partitioned into groups that differ only in VMAPPABLE fields.

    Returns [(group name or None for a lone member, [(name, config), ...])], in order of
    first appearance. Without vmapping (``vmap_sweep(config)`` false) every member is alone.
    """
    fields = list(config_lib.sweep_fields(config))
    for arm in config_lib.parse_arms(config).values():
        fields += [f for f in arm if f not in fields]
    fixed = [f for f in fields if f not in VMAPPABLE]
    fixed += [f for f in ("model.cell", "model.kind") if f not in fixed]
    groups: dict[tuple, list] = {}
    for name, member in members:
        key = tuple(_get(member, f) for f in fixed)
        groups.setdefault(key, []).append((name, member))
    out = []
    for key, group in groups.items():
        if len(group) > 1 and vmap_sweep(config):
            label = "-".join(f"{f.rsplit('.', 1)[-1]}={v}" for f, v in zip(fixed, key))
            out.append(("vmap" + (f"-{label}" if label else ""), group))
        else:
            out.extend((None, [m]) for m in group)
    return out


def train_and_evaluate(config, workdir: str) -> dict:
    """Train (and evaluate) ``config`` in ``workdir``; a sweep runs each member in a subdir."""
    sharding.maybe_initialize_distributed(config)
    members = sweep_members(config)
    if not members:
        return Trainer(config, workdir).run()
    config_lib.validate(config, get_task_class(config.task.name).config_defaults)
    os.makedirs(workdir, exist_ok=True)
    groups = sweep_groups(config, members)
    arms = config_lib.parse_arms(config)
    varied = list(config_lib.sweep_fields(config))
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "sweep.json"), "w") as f:
            json.dump({
                "members": [name for name, _ in members],
                "sweep": config_lib.sweep_fields(config), "arms": arms,
                # what distinguishes each member: its arm and its swept values
                "member_fields": {name: {"arm": _arm_of(name, arms)} |
                                  {f: _get(mc, f) for f in varied} for name, mc in members},
                "vmapped_groups": {g: [n for n, _ in ms] for g, ms in groups if g}},
                f, indent=2)
    summaries, failures = {}, []
    for group, group_members in groups:
        runs = [(mc, os.path.join(workdir, name)) for name, mc in group_members]
        for _, d in runs:  # a rerun that gets further replaces an earlier divergence
            if os.path.exists(os.path.join(d, DIVERGED_FILE)) and jax.process_index() == 0:
                os.remove(os.path.join(d, DIVERGED_FILE))
        try:
            if group is None:
                summaries[group_members[0][0]] = Trainer(*runs[0]).run()
            else:
                out = Trainer(members=runs, group_dir=os.path.join(workdir, group)).run()
                summaries |= {name: s for (name, _), s in zip(group_members, out)}
        except NonFiniteLossError as e:
            # One diverging member must not cost the others: record it, go on, fail at the end.
            print(f"error: {e}\n(the sweep goes on with its other members)", file=sys.stderr,
                  flush=True)
            failures.append(str(e))
            for (name, _), (_, d) in zip(group_members, runs):
                step = e.diverged.get(d)
                record = {"diverged_at": step, "error": str(e)} if step is not None else {
                    "diverged_at": None, "stopped_with": sorted(e.diverged), "error": str(e)}
                summaries[name] = record
                if jax.process_index() == 0:
                    atomic_write(os.path.join(d, DIVERGED_FILE), json.dumps(record, indent=2))
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump({"members": summaries}, f, indent=2)
    if failures:
        names = [n for n, s in summaries.items() if "error" in s]
        raise SweepDivergedError(
            f"{len(names)} of {len(summaries)} sweep members stopped on NaN/Inf ("
            f"{', '.join(names)}); every other member ran to the end and its results are in "
            f"{workdir}. First failure: {failures[0]}")
    return {"members": summaries}


# Written into a sweep member's directory when it stopped on NaN/Inf (removed by a rerun);
# plots.load_run reads it.
DIVERGED_FILE = plots.DIVERGED_FILE


def _arm_of(name: str, arms: dict) -> str | None:
    labels = [a for a in arms if name == a.replace(" ", "_").replace("/", "_") or
              name.startswith(a.replace(" ", "_").replace("/", "_") + "-")]
    return max(labels, key=len) if labels else None


def run_dirs(workdir: str) -> list[str]:
    """The run directories under ``workdir``: its sweep members, or itself."""
    path = os.path.join(workdir, "sweep.json")
    if os.path.exists(path):
        with open(path) as f:
            return [os.path.join(workdir, m) for m in json.load(f)["members"]]
    return [workdir]
