"""The copy memory task (Arjovsky, Shah & Bengio 2016).

Inputs (length T + 20): 10 symbols drawn from {1..8}, then T − 1 blanks (0), a delimiter (9),
then 10 blanks. Targets: T + 10 blanks, then the 10 symbols. The model must hold the
symbols for T steps. Inputs are one-hot over 10 input symbols; outputs are 9 classes
(blank, 1..8). Loss: cross entropy averaged over all T + 20 positions. The memoryless
baseline predicts blanks and then a uniform guess: 10·ln 8 / (T + 20).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from seqjax.tasks.base import InputSpec, SyntheticTask, add_noise

N_COPY, N_IN, N_OUT, DELIM = 10, 10, 9, 9


def copy_batch(key, batch: int, delay: int):
    """(tokens_Bx(T+20), targets_Bx(T+20)), int32; T = ``delay``."""
    if not isinstance(delay, int) or delay < 1:
        raise ValueError(f"copy task needs seq_len (the delay T) >= 1, got {delay!r}")
    symbols = jax.random.randint(key, (batch, N_COPY), 1, 9)
    blanks = jnp.zeros((batch, delay - 1), jnp.int32)
    tail = jnp.zeros((batch, N_COPY), jnp.int32)
    delim = jnp.full((batch, 1), DELIM, jnp.int32)
    tokens = jnp.concatenate([symbols, blanks, delim, tail], axis=1)
    targets = jnp.concatenate([jnp.zeros((batch, delay + N_COPY), jnp.int32), symbols], axis=1)
    return tokens.astype(jnp.int32), targets.astype(jnp.int32)


class CopyTask(SyntheticTask):
    """Many-to-many; metrics ``ce`` (all positions) and ``recall_accuracy`` (last 10)."""

    name = "copy"
    success = {"recall_accuracy": (">=", 0.9)}

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="features", dim=N_IN, output_dim=N_OUT, readout="all",
                         seq_len=self.settings.seq_len + 2 * N_COPY)

    def make_batch(self, key, batch_size: int) -> dict:
        k_data, k_noise = jax.random.split(key)
        tokens, targets = copy_batch(k_data, batch_size, self.settings.seq_len)
        x = jax.nn.one_hot(tokens, N_IN, dtype=jnp.float32)
        return {"inputs": add_noise(k_noise, x, self.settings.noise_std), "targets": targets}

    def loss(self, logits, batch):
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]))
        hit = jnp.argmax(logits[:, -N_COPY:], -1) == batch["targets"][:, -N_COPY:]
        return ce, {"ce": ce, "recall_accuracy": jnp.mean(hit.astype(jnp.float32))}

    def baseline(self):
        return {"ce": N_COPY * math.log(8) / (self.settings.seq_len + 2 * N_COPY),
                "recall_accuracy": 1.0 / 8}
