"""Temporal order (Hochreiter & Schmidhuber 1997, task 6a): which of X/Y came first, and second.

A sequence of T symbols from {a, b, c, d} (distractors) starts with B and ends with E. Two
relevant symbols, each X or Y, sit at t1 ∈ [0.1T, 0.2T] and t2 ∈ [0.5T, 0.6T] (the paper's
10–20 and 50–60 for T = 100). The class is the pair: XX, XY, YX, YY (4 classes, chance 25%).
Inputs are one-hot over the 8 symbols (a b c d X Y B E).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from seqjax.tasks.base import InputSpec, SyntheticTask, add_noise

N_SYMBOLS = 8
X, Y, START, END = 4, 5, 6, 7


def temporal_order_batch(key, batch: int, seq_len: int):
    """(tokens_BxT int32, labels_B int32)."""
    if not isinstance(seq_len, int) or seq_len < 10:
        raise ValueError(f"temporal_order needs seq_len >= 10, got {seq_len!r}")
    k_d, k_t1, k_t2, k_s = jax.random.split(key, 4)
    tokens = jax.random.randint(k_d, (batch, seq_len), 0, 4)
    lo1, hi1 = max(1, seq_len // 10), max(2, seq_len // 5)
    lo2, hi2 = seq_len // 2, min(seq_len - 2, (6 * seq_len) // 10)
    t1 = jax.random.randint(k_t1, (batch,), lo1, hi1 + 1)  # both ends included
    t2 = jax.random.randint(k_t2, (batch,), lo2, hi2 + 1)
    which = jax.random.randint(k_s, (batch, 2), 0, 2)  # 0 → X, 1 → Y
    rows = jnp.arange(batch)
    tokens = tokens.at[rows, t1].set(X + which[:, 0]).at[rows, t2].set(X + which[:, 1])
    tokens = tokens.at[:, 0].set(START).at[:, -1].set(END)
    labels = 2 * which[:, 0] + which[:, 1]
    return tokens.astype(jnp.int32), labels.astype(jnp.int32)


class TemporalOrderTask(SyntheticTask):
    """Many-to-one classification; metrics ``accuracy`` and ``ce``; baseline accuracy 0.25."""

    name = "temporal_order"
    success = {"accuracy": (">=", 0.9)}

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="features", dim=N_SYMBOLS, output_dim=4, readout="last",
                         seq_len=self.settings.seq_len)

    def make_batch(self, key, batch_size: int) -> dict:
        k_data, k_noise = jax.random.split(key)
        tokens, labels = temporal_order_batch(k_data, batch_size, self.settings.seq_len)
        x = jax.nn.one_hot(tokens, N_SYMBOLS, dtype=jnp.float32)
        return {"inputs": add_noise(k_noise, x, self.settings.noise_std), "targets": labels}

    def loss(self, logits, batch):
        ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]))
        acc = jnp.mean((jnp.argmax(logits, -1) == batch["targets"]).astype(jnp.float32))
        return ce, {"ce": ce, "accuracy": acc}

    def baseline(self):
        return {"accuracy": 0.25, "ce": float(jnp.log(4.0))}
