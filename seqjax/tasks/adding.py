"""The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015).

Each example is a sequence of T steps with two channels: channel 0 holds values drawn
from U[0, 1], channel 1 is a marker that is 1 at exactly two steps, one in each half of
the sequence, and 0 elsewhere. The target is the sum of the two marked values. The sum
has variance 2/12, so always predicting its mean (1.0) scores MSE = 1/6 ≈ 0.167: the
baseline a model must beat to show it carried information across the sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.tasks.base import InputSpec, SyntheticTask, add_noise, mse

BASELINE_MSE = 1.0 / 6.0


def adding_batch(key, batch: int, seq_len: int, dtype=jnp.float32):
    """(x_BxTx2, y_B): one batch of the adding problem, generated from ``key``."""
    if not isinstance(seq_len, int) or seq_len < 2:
        raise ValueError(f"adding problem needs seq_len >= 2 (one marker per half), got {seq_len!r}")
    if not isinstance(batch, int) or batch <= 0:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    k_val, k_first, k_second = jax.random.split(key, 3)
    half = seq_len // 2
    values = jax.random.uniform(k_val, (batch, seq_len), dtype)
    first = jax.random.randint(k_first, (batch,), 0, half)
    second = jax.random.randint(k_second, (batch,), half, seq_len)
    t = jnp.arange(seq_len)[None, :]
    markers = ((t == first[:, None]) | (t == second[:, None])).astype(dtype)
    x = jnp.stack([values, markers], axis=-1)
    y = jnp.sum(values * markers, axis=1)
    return x, y


class AddingTask(SyntheticTask):
    """Many-to-one regression: read the sequence, output the sum of the two marked values.

    Metric ``mse`` (eval MSE); trivial baseline ``mse`` = 1/6 (always predict 1.0).
    """

    name = "adding"
    success = {"mse": ("<", 0.05)}

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="features", dim=2, output_dim=1, readout="last",
                         seq_len=self.settings.seq_len)

    def make_batch(self, key, batch_size: int) -> dict:
        k_data, k_noise = jax.random.split(key)
        x, y = adding_batch(k_data, batch_size, self.settings.seq_len)
        return {"inputs": add_noise(k_noise, x, self.settings.noise_std), "targets": y}

    def loss(self, outputs, batch):
        err = mse(outputs[:, 0], batch["targets"])
        return err, {"mse": err}

    def baseline(self):
        return {"mse": BASELINE_MSE}
