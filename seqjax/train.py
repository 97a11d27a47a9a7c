"""The one trainer for every task: ``train_and_evaluate(config, workdir)``.

One run writes into ``workdir``: config.json, metrics.jsonl, TensorBoard events,
checkpoints/ (orbax: train state + data-iterator position), summary.json at the end.
Started again on the same workdir it resumes from the newest checkpoint and continues
exactly as an uninterrupted run would (same batches, same dropout keys, same logs).

A step whose loss or gradient is NaN/Inf never touches the parameters: the step is
counted, and (unless ``train.skip_nonfinite``) the run stops at the next check with a
``NonFiniteLossError`` that names the step, before writing another checkpoint, so the
last good checkpoint is what a restart or a user finds.

``config.sweep`` (``sweep.model.cell = ["rnn", "lstm"]``, ...) runs every combination one after
another, each in ``workdir/<member>``, and returns all their summaries.
"""

from __future__ import annotations

import copy
import datetime
import functools
import itertools
import json
import os
import shutil
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from seqjax import config as config_lib
from seqjax import diagnostics, models, plots
from seqjax.logging import Writer
from seqjax.tasks import get_task_class

# Fields that may change between a run and its resumption: they change what is logged or
# how long it runs, not the trajectory.
RESUMABLE_CHANGES = ("train.num_steps", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.diagnostics_every",
                     "train.keep_checkpoints", "train.resume")
DIAGNOSTICS_EXAMPLES = 64


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient) became NaN/Inf; raised with the step and what to try."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array            # updates done
    params: Any
    opt_state: Any
    nonfinite_steps: jax.Array  # steps whose loss/gradient was NaN/Inf (skipped)
    first_nonfinite: jax.Array  # the first such step (1-based), -1 if none


# --------------------------------------------------------------------------- pieces


def make_optimizer(t) -> optax.GradientTransformation:
    """optax chain: global-norm clipping (if grad_clip > 0) → optimizer with a schedule."""
    lr = t.learning_rate
    if t.schedule == "constant":
        schedule = optax.constant_schedule(lr)
    elif t.schedule == "cosine":
        schedule = optax.cosine_decay_schedule(lr, t.num_steps)
    else:  # warmup_cosine
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, t.warmup_steps,
                                                      max(t.num_steps, t.warmup_steps + 1))
    opt = {
        "adam": lambda: optax.adam(schedule),
        "adamw": lambda: optax.adamw(schedule, weight_decay=t.weight_decay),
        "sgd": lambda: optax.sgd(schedule, momentum=t.momentum or None),
        "rmsprop": lambda: optax.rmsprop(schedule),
    }[t.optimizer]()
    return optax.chain(optax.clip_by_global_norm(t.grad_clip), opt) if t.grad_clip > 0 else opt


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


def _checkpoint_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "data"))


def _mean_metrics(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# --------------------------------------------------------------------------- one run


class Trainer:
    """Holds the compiled functions of one run; ``run()`` does the loop."""

    def __init__(self, config, workdir: str):
        task_cls = get_task_class(config.task.name)
        config_lib.validate(config, task_cls.config_defaults)
        self.config, self.workdir = config, workdir
        self.task = task_cls(config)
        self.spec = self.task.input_spec()
        self.model_config = ml_collections.FrozenConfigDict(config.model)
        build = getattr(self.task, "build_model", None)
        self.model = build() if build else models.build_model(self.model_config, self.spec)
        self.tx = make_optimizer(config.train)
        self.is_main = jax.process_index() == 0
        root = jax.random.key(config.seed)
        self.init_key, self.dropout_key = jax.random.fold_in(root, 0), jax.random.fold_in(root, 2)
        self.eval_set = list(self.task.eval_batches())
        self.diag_batch = jax.tree.map(lambda a: a[:DIAGNOSTICS_EXAMPLES], self.eval_set[0])
        self.diag_shape = models.probe_shape(self.model_config, self.diag_batch) \
            if not build else getattr(self.task, "probe_shape", lambda b: None)(self.diag_batch)

    # ---- pure functions (jitted below)

    def init_state(self) -> TrainState:
        example = jax.tree.map(lambda a: a[:2], self.eval_set[0])
        params = self.model.init({"params": self.init_key}, example)["params"]
        return TrainState(step=jnp.array(0, jnp.int32), params=params,
                          opt_state=self.tx.init(params),
                          nonfinite_steps=jnp.array(0, jnp.int32),
                          first_nonfinite=jnp.array(-1, jnp.int32))

    def loss_fn(self, params, batch, key, train: bool, probes=None):
        out = self.model.apply({"params": params}, batch, probes=probes, train=train,
                               rngs={"dropout": key})
        loss, metrics = self.task.loss(out, batch)
        return loss, (metrics, out)

    def train_step(self, state: TrainState, batch):
        key = jax.random.fold_in(self.dropout_key, state.step)
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
        state = TrainState(
            step=step, params=keep(new_params, state.params),
            opt_state=keep(new_opt, state.opt_state),
            nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
            first_nonfinite=jnp.where((state.first_nonfinite < 0) & ~finite, step,
                                      state.first_nonfinite))
        return state, {"loss": loss, "grad_norm": grad_norm} | metrics

    def eval_step(self, params, batch):
        loss, (metrics, out) = self.loss_fn(params, batch, self.dropout_key, False)
        return {"loss": loss} | metrics, out

    def diagnostics_step(self, params, batch):
        """Per-timestep ‖∂ℓ/∂h_t‖ (mean over examples of the per-example loss), param grads."""
        probes = jnp.zeros(self.diag_shape, jnp.float32)

        def loss_of(probes, params):
            return self.loss_fn(params, batch, self.dropout_key, False, probes)[0]

        g_probes, g_params = jax.grad(loss_of, argnums=(0, 1))(probes, params)
        # The task loss is a mean over the batch: scale back to per-example gradients.
        norms_BxT1 = jnp.linalg.norm(g_probes, axis=-1) * self.diag_shape[0]
        return jnp.mean(norms_BxT1, axis=0), g_params

    # ---- the loop

    def evaluate(self, eval_fn, params, final: bool = False) -> tuple[dict, dict]:
        rows, sizes, examples = [], [], {}
        for i, batch in enumerate(self.eval_set):
            metrics, out = eval_fn(params, batch)
            rows.append(jax.device_get(metrics))
            sizes.append(len(jax.tree.leaves(batch)[0]))
            if i == 0:
                examples = self.task.examples(np.asarray(out), jax.device_get(batch))
        w = np.asarray(sizes, np.float64) / sum(sizes)
        metrics = {k: float(sum(wi * r[k] for wi, r in zip(w, rows))) for k in rows[0]}
        extra, extra_examples = self.task.generation_eval(self.model, params, final=final)
        return metrics | extra, examples | extra_examples

    def run(self) -> dict:
        c, t = self.config, self.config.train
        wall_start = time.perf_counter()
        _prepare_workdir(c, self.workdir, self.is_main)
        mngr = _checkpoint_manager(self.workdir, t.keep_checkpoints)
        with jax.numpy_dtype_promotion("standard"):
            state = self.init_state()
        train_it = self.task.train_iterator(c.seed)
        start = mngr.latest_step() if t.resume else None
        if start is not None:
            restored = mngr.restore(start, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(state), data=ocp.args.JsonRestore()))
            state = restored["state"]
            train_it.set_state(restored["data"])
            print(f"resuming {self.workdir} from step {start}")
        writer = Writer(self.workdir, enabled=self.is_main, resume_step=start)
        if self.is_main and start is None:
            with open(os.path.join(self.workdir, "config.json"), "w") as f:
                f.write(config_lib.to_json(c))
        start = start or 0
        heat_steps, heat_rows = self._diagnostics_history(writer) if start else ([], [])

        train_fn = jax.jit(self.train_step)
        eval_fn = jax.jit(self.eval_step)
        diag_fn = jax.jit(self.diagnostics_step) if (t.diagnostics_every and self.diag_shape) \
            else None

        def save(step):
            mngr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(train_it.get_state())))

        def check_finite(step):
            first = int(state.first_nonfinite)
            if first >= 0 and not t.skip_nonfinite:
                mngr.wait_until_finished()
                good = mngr.latest_step()
                writer.close()
                raise NonFiniteLossError(
                    f"loss or gradient became NaN/Inf at step {first} (run: {self.workdir}); "
                    f"the parameters were not updated with it. Try gradient clipping "
                    f"(--config.train.grad_clip=1.0), a lower learning rate (now "
                    f"{t.learning_rate:g}), or --config.train.skip_nonfinite=True to skip such "
                    f"steps. Last good checkpoint: step {good} in "
                    f"{os.path.join(self.workdir, 'checkpoints')}.")

        def diagnose(step, row):
            hidden, g_params = jax.device_get(diag_fn(state.params, self.diag_batch))
            row["grad/hidden_norms"] = hidden
            row["grad/h0_over_hT"] = float(hidden[0] / max(hidden[-1], 1e-38))
            for name, v in diagnostics.param_grad_norms(g_params).items():
                row[f"grad/norm/{name}"] = float(v)
            flat = lambda tree: {"/".join(str(getattr(k, "key", k)) for k in p): v
                                 for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
            writer.histograms(step, {f"params/{k}": v for k, v in
                                     flat(jax.device_get(state.params)).items()})
            writer.histograms(step, {f"grads/{k}": v for k, v in flat(g_params).items()})
            heat_steps.append(step)
            heat_rows.append(hidden)
            writer.image(step, "grad/hidden_norms_heatmap",
                         plots.heatmap_rgb(np.asarray(heat_steps), np.asarray(heat_rows)))

        batch = next(train_it)
        compile_start = time.perf_counter()
        compiled_train = train_fn.lower(state, batch).compile()
        compile_s = time.perf_counter() - compile_start
        print(f"[{self.workdir}] compiled the train step in {compile_s:.1f} s; "
              f"training steps {start + 1}..{t.num_steps}")
        if start == 0:
            row = {}
            if diag_fn:
                diagnose(0, row)
            if t.eval_every:
                row |= {f"eval/{k}": v for k, v in self.evaluate(eval_fn, state.params)[0].items()}
            writer.write(0, row)

        pending, window_start, window_steps, overhead = [], time.perf_counter(), 0, 0.0
        last_eval: dict = {}
        step = start
        for step in range(start + 1, t.num_steps + 1):
            if step > start + 1:
                batch = next(train_it)
            state, metrics = compiled_train(state, batch)
            pending.append(metrics)
            window_steps += 1
            row = {}
            last = step == t.num_steps
            if step % t.log_every == 0 or last:
                train_metrics = _mean_metrics(jax.device_get(pending))
                pending = []
                check_finite(step)
                elapsed = time.perf_counter() - window_start
                rate = window_steps / max(elapsed - overhead, 1e-9)  # training steps only
                wall_rate = window_steps / max(elapsed, 1e-9)  # with eval etc.: for the eta
                row |= {f"train/{k}": v for k, v in train_metrics.items()}
                row["train/steps_per_sec"] = rate
                row["train/nonfinite_steps"] = int(state.nonfinite_steps)
                print(f"[{self.workdir}] step {step:>6}/{t.num_steps}  loss "
                      f"{train_metrics['loss']:.4g}  {rate:6.1f} steps/s  "
                      f"eta {_fmt_time((t.num_steps - step) / wall_rate)}", flush=True)
                window_start, window_steps, overhead = time.perf_counter(), 0, 0.0
            side_start = time.perf_counter()
            if diag_fn and (step % t.diagnostics_every == 0 or last):
                diagnose(step, row)
            if (t.eval_every and step % t.eval_every == 0) or last:
                last_eval, examples = self.evaluate(eval_fn, state.params, final=last)
                row |= {f"eval/{k}": v for k, v in last_eval.items()}
                self._write_examples(writer, step, examples)
                base = self.task.baseline()
                shown = "  ".join(f"{k} {v:.4g}" + (f" (baseline {base[k]:.4g})" if k in base
                                                     else "") for k, v in last_eval.items())
                print(f"[{self.workdir}]   eval @ {step}: {shown}", flush=True)
            writer.write(step, row)
            if (t.checkpoint_every and step % t.checkpoint_every == 0) or last:
                check_finite(step)
                save(step)
            overhead += time.perf_counter() - side_start
        check_finite(step)
        if not last_eval:  # restarted on a finished run: nothing trained, evaluate once
            last_eval, _ = self.evaluate(eval_fn, state.params, final=True)
        mngr.wait_until_finished()
        mngr.close()
        summary = {
            "task": c.task.name, "model": self.model_config.kind, "cell": c.model.cell,
            "steps": int(state.step), "final_eval": last_eval, "baseline": self.task.baseline(),
            "nonfinite_steps": int(state.nonfinite_steps), "compile_s": compile_s,
            "wall_time_s": time.perf_counter() - wall_start, "backend": jax.default_backend(),
        }
        if self.is_main:
            with open(os.path.join(self.workdir, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
        writer.close()
        return summary

    def _diagnostics_history(self, writer):
        steps, rows = [], []
        from seqjax.logging import read_metrics
        for r in read_metrics(self.workdir):
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


# --------------------------------------------------------------------------- entry points


def sweep_members(config) -> list[tuple[str, Any]]:
    """[(member name, member config)] for ``config.sweep`` (cartesian product, in order)."""
    sweep = config_lib.sweep_fields(config)
    if not sweep:
        return []
    fields = list(sweep)
    members = []
    for values in itertools.product(*(sweep[f] for f in fields)):
        member = copy.deepcopy(config)
        with member.unlocked():
            member.sweep = ml_collections.ConfigDict()
            for f, v in zip(fields, values):
                *path, key = f.split(".")
                node = member
                for p in path:
                    node = node[p]
                node[key] = v
        name = "-".join(f"{f.rsplit('.', 1)[1]}={v}" for f, v in zip(fields, values))
        members.append((name, member))
    return members


def train_and_evaluate(config, workdir: str) -> dict:
    """Train (and evaluate) ``config`` in ``workdir``; a sweep runs each member in a subdir."""
    members = sweep_members(config)
    if not members:
        return Trainer(config, workdir).run()
    config_lib.validate(config, get_task_class(config.task.name).config_defaults)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "sweep.json"), "w") as f:
        json.dump({"members": [name for name, _ in members],
                   "sweep": config_lib.sweep_fields(config)}, f, indent=2)
    return {"members": {name: Trainer(member, os.path.join(workdir, name)).run()
                        for name, member in members}}


def run_dirs(workdir: str) -> list[str]:
    """The run directories under ``workdir``: its sweep members, or itself."""
    path = os.path.join(workdir, "sweep.json")
    if os.path.exists(path):
        with open(path) as f:
            return [os.path.join(workdir, m) for m in json.load(f)["members"]]
    return [workdir]
