r"""The adding problem (Hochreiter & Schmidhuber 1997): one cell, one run.

    python -m experiments.main --config=configs/adding.py --workdir=runs/adding \
        --config.model.cell=lstm

Variants: ``:smoke`` (seconds; tests), ``:cpu`` (default), ``:gpu``/``:tpu`` (T=400, H=128,
batch 256). Baseline: predicting the mean scores MSE 1/6 ≈ 0.167.
Expected on a 2-core CPU (``:cpu``, T=100, H=64, 2000 steps, ≈ 1 min): LSTM eval MSE
well below 0.05; tanh RNN stays at the 0.167 baseline (see docs/vanishing_gradients.md,
"Reproduces").
"""

from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "adding"
    c.task.seq_len = 100
    c.model.cell = "lstm"
    c.model.hidden = 64
    c.train.num_steps = 2000
    c.train.batch_size = 64
    c.train.optimizer = "adam"
    c.train.learning_rate = 3e-3
    c.train.grad_clip = 1.0
    c.train.eval_every = 100
    c.train.diagnostics_every = 100
    c.train.checkpoint_every = 500
    c.train.log_every = 100
    return apply_variant(c, variant)


def apply_variant(c, variant: str):
    """Shared by the synthetic-task configs: smoke / cpu / gpu / tpu."""
    variant = variant or "cpu"
    if variant == "smoke":
        c.task.seq_len = min(c.task.seq_len, 12)
        c.task.eval_size = 64
        c.model.hidden = 8
        c.train.num_steps = 6
        c.train.batch_size = 8
        c.train.eval_every = 3
        c.train.diagnostics_every = 3
        c.train.checkpoint_every = 3
        c.train.log_every = 2
    elif variant in ("gpu", "tpu"):
        c.task.seq_len = 4 * c.task.seq_len
        c.model.hidden = 128
        c.train.batch_size = 256
        c.model.impl = "auto"
    elif variant != "cpu":
        raise ValueError(f"unknown variant {variant!r}; choose one of: smoke, cpu, gpu, tpu")
    return c
