"""``python -m experiments.main`` with NaN injected into one training batch.

``SEQJAX_DRILL_NAN_BATCH=k``: the adding task's (k+1)-th training batch (0-based index k,
so the batch of step k+1) has NaN inputs, in this process and in a resumed one (the index
is part of the iterator state). Everything else is the real CLI.
"""

import os

import jax.numpy as jnp
from absl import app

from seqjax import cli
from seqjax.tasks.adding import AddingTask


def inject_nan(at_batch: int) -> None:
    original = AddingTask.train_iterator

    def train_iterator(self, seed):
        it = original(self, seed)
        make = it._make

        def make_with_nan(key, n):  # KeyedIterator._make(key, batch index)
            batch = make(key, n)
            return batch | {"inputs": batch["inputs"] * jnp.nan} if it._n == at_batch else batch
        it._make = make_with_nan
        return it
    AddingTask.train_iterator = train_iterator


if __name__ == "__main__":
    inject_nan(int(os.environ["SEQJAX_DRILL_NAN_BATCH"]))
    cli.run()
