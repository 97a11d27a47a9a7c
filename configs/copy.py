r"""The copy memory task (Arjovsky et al. 2016): recall 10 symbols after a delay of T steps.

    python -m experiments.main --config=configs/copy.py --workdir=runs/copy --config.model.cell=lstm

Variants ``:smoke``, ``:cpu`` (default: T=50, H=64, 2000 steps, ≈ 2 min on 2 cores),
``:gpu``/``:tpu`` (T=200, H=128, batch 256).
Memoryless baseline cross entropy 10·ln8/(T+20) = 0.297 at T=50; recall accuracy 1/8 by chance.
"""

from configs.adding import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "copy"
    c.task.seq_len = 50
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
