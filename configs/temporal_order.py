r"""Temporal order (Hochreiter & Schmidhuber 1997, task 6a): 4 classes, chance 25%.

    python -m experiments.main --config=configs/temporal_order.py --workdir=runs/order \
        --config.model.cell=lstm

Variants ``:smoke``, ``:cpu`` (default: T=100, H=64, 2000 steps, ≈ 1–2 min per cell on 2 cores),
``:gpu``/``:tpu`` (T=400, H=128, batch 256).
Expected on CPU: the LSTM climbs far above chance; the tanh RNN stays near 25% at T=100
(numbers in docs/vanishing_gradients.md, "Reproduces").
"""

from configs.adding import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "temporal_order"
    c.task.seq_len = 100
    c.model.cell = "lstm"
    c.model.hidden = 64
    c.train.num_steps = 2000
    c.train.batch_size = 64
    c.train.learning_rate = 3e-3
    c.train.grad_clip = 1.0
    c.train.eval_every = 200
    c.train.diagnostics_every = 200
    c.train.log_every = 100
    return apply_variant(c, variant)
