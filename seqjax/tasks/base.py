"""What every task provides to the one trainer.

A task owns its data, its loss and metrics, its trivial baseline and the examples a person
wants to look at. The trainer (seqjax.train) never looks inside a batch except through
these methods.

The types a task shares with the data modules (``Batch``, ``InputSpec``, the resumable
iterators) live in seqjax.batching; they are imported here for the tasks' convenience.

A task reads its settings once, in its constructor: ``self.settings`` is the task's
``config_defaults`` overridden by what ``config.task`` sets (attribute access, frozen).
``success`` names the final evaluation metric and bound that count as solving the task;
``seqjax.tasks.SUCCESS`` collects them, keyed by metric, for the figures.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from seqjax.batching import Batch, DataIterator, IndexedIterator, InputSpec

__all__ = ["Batch", "DataIterator", "IndexedIterator", "InputSpec", "KeyedIterator", "Task",
           "SyntheticTask", "task_settings", "fixed_eval_batches", "add_noise", "mse"]


def task_settings(defaults: dict, task_config) -> ml_collections.FrozenConfigDict:
    """The task's fields: its ``defaults`` overridden by what ``task_config`` (``config.task``,
    a ConfigDict or a plain dict) sets."""
    given = task_config.to_dict() if hasattr(task_config, "to_dict") else dict(task_config)
    return ml_collections.FrozenConfigDict(dict(defaults) | given)


class KeyedIterator(IndexedIterator):
    """Synthetic data: batch n is ``make(fold_in(key, n))``."""

    def __init__(self, make, key):
        # fold_in inside the same jitted call: one dispatch per batch, not two
        self._make = jax.jit(lambda key, n: make(jax.random.fold_in(key, n)))
        self._key = key

    def batch(self, n: int) -> Batch:
        return self._make(self._key, n)


class Task:
    """Base class. Subclasses set ``name`` and ``config_defaults`` and define the methods.

    ``Task(config)`` takes the whole run config (a task may read ``config.train.batch_size``
    and ``config.data``); its own fields are ``self.settings``, merged here once.
    """

    name: str = ""
    config_defaults: dict[str, Any] = {}  # task-specific fields under config.task
    success: dict[str, tuple[str, float]] = {}  # {metric: (op "<" or ">=", bound)}: solved

    def __init__(self, config):
        self.config = config
        self.settings = task_settings(self.config_defaults, config.task)

    # --- what the model needs
    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    # --- data
    def train_iterator(self, seed: int) -> DataIterator:
        raise NotImplementedError

    def eval_batches(self) -> Iterator[Batch]:
        """The fixed evaluation set (same on every call)."""
        raise NotImplementedError

    # --- objective (pure, jittable)
    def loss(self, outputs: jax.Array, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss, {metric: scalar}) for a batch; metrics are batch means."""
        raise NotImplementedError

    def baseline(self) -> dict[str, float]:
        """The trivial predictor's metrics, written into summary.json beside the model's."""
        return {}

    def examples(self, outputs: np.ndarray, batch: Batch) -> dict[str, Any]:
        """Things a person wants to look at for one eval batch: {"text/...": str, "image/...": HxWx3}."""
        return {}

    def generation_eval(self, model, params, *, final: bool) -> tuple[dict[str, float], dict]:
        """Metrics that need more than a teacher-forced pass (decoding, BLEU), and examples.

        Called at every evaluation (``final`` is True for the last one); the returned
        metrics join the eval metrics (``eval/<name>``). Default: none.
        """
        return {}, {}

    # Optional hooks a task may define (the trainer looks for them):
    #   build_model(model_config) -> flax Module called as model.apply(vars, batch, probes=,
    #     train=), built from ``model_config`` (the run's model section as the trainer uses it)
    #   probe_shape(batch) -> (B, T+1, H) or None, for gradient-flow diagnostics


class SyntheticTask(Task):
    """A task whose examples come from ``make_batch(key, batch_size)``: generated on the fly.

    Training batch n is drawn from ``fold_in(key(seed), 1)`` folded with n; with several
    hosts each host draws its own slice of the global batch from a host-folded key. The
    evaluation set is fixed by ``task.eval_seed`` (the same for every training seed).
    """

    config_defaults = {"eval_seed": 1234}

    def make_batch(self, key, batch_size: int) -> Batch:
        raise NotImplementedError

    def train_iterator(self, seed: int) -> DataIterator:
        hosts = jax.process_count()
        key = jax.random.fold_in(jax.random.key(seed), 1)
        if hosts > 1:
            key = jax.random.fold_in(key, 1000 + jax.process_index())
        size = self.config.train.batch_size // hosts
        return KeyedIterator(jax.jit(lambda k: self.make_batch(k, size)), key)

    def eval_batches(self):
        return fixed_eval_batches(self, self.settings.eval_seed)


def fixed_eval_batches(task, eval_seed: int, chunk: int = 512):
    """The synthetic tasks' evaluation set: ``task.eval_size`` examples from ``eval_seed``,
    the same for every training seed (so runs with different seeds are compared on one set),
    in chunks of at most ``chunk`` examples."""
    n = task.settings.eval_size
    key = jax.random.key(eval_seed)
    # jitted: one compile per chunk size, where eager ops would compile one program each
    make = jax.jit(lambda key, start, size: task.make_batch(jax.random.fold_in(key, start), size),
                   static_argnums=2)
    for start in range(0, n, chunk):
        yield make(key, start, min(chunk, n - start))


def add_noise(key, x: jax.Array, std: float) -> jax.Array:
    """x + N(0, std²), the input noise of ``task.noise_std``; x unchanged when std == 0."""
    if std == 0:
        return x
    return x + std * jax.random.normal(key, x.shape, x.dtype)


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    return jnp.mean((pred - target) ** 2)
