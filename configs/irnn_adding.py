r"""The IRNN (Le, Jaitly & Hinton 2015) on the adding problem, five seeds, T = 150 or 300.

    python -m experiments.main --config=configs/irnn_adding.py:150 --workdir=runs/irnn_150
    python -m experiments.main --config=configs/irnn_adding.py:300 --workdir=runs/irnn_300
    # the paper's own optimiser: plain SGD, learning rate 0.01, clipping 10, batch 16
    python -m experiments.main --config=configs/irnn_adding.py:le2015:150 --workdir=runs/irnn_sgd

Variant ``[le2015:]<T>[:smoke]``. The network is the paper's: 100 ReLU units, recurrent
matrix the identity, biases zero, input weights N(0, 0.001²) (model.input_init="normal"
scales by 1/√D, D = 2, hence input_scale = 0.001·√2), a linear read-out of h_T, MSE.
The paper trains with plain SGD at learning rate 10⁻² with gradient clipping (chosen from
1, 10, 100), batch 16, for up to ~10⁶ steps. That is beyond a 2-core CPU (about 140 steps/s
at T = 150, so 10⁶ steps take two hours per seed); the default variant keeps the network and
changes the optimiser to Adam 10⁻³ with clipping at global norm 1, batch 32, which leaves the
plateau within a few thousand steps. Adam at 3·10⁻³ (configs/cells.py) solves T = 100 and then
overflows: ReLU units on an identity recurrence have no saturation, so once the recurrent
matrix's spectral radius drifts above 1 the state grows as ρ^T.
The seeds train as one vmapped program (train.vmap_sweep="on"), so one seed's overflow stops
all five. Success: eval MSE < 0.05 (baseline 0.167). Measured: T = 150 solved by 5/5 seeds;
T = 300 by 1/5 before one seed overflowed at step 18,929 (docs/vanishing_gradients.md,
"The IRNN as Le et al. ran it").
"""

import math

from configs.adding import get_config as adding_config

SEQ_LENS = (150, 300)
VARIANTS = ("150", "300", "le2015:150", "le2015:300", "150:smoke", "le2015:150:smoke")


def parse_variant(variant: str) -> tuple[bool, int, bool]:
    """(the paper's SGD?, T, smoke?) from ``[le2015:]<T>[:smoke]``."""
    parts = [p for p in (variant or "150").split(":") if p]
    le2015 = bool(parts) and parts[0] == "le2015"
    parts = parts[1:] if le2015 else parts
    smoke = bool(parts) and parts[-1] == "smoke"
    parts = parts[:-1] if smoke else parts
    if len(parts) > 1 or (parts and parts[0] not in map(str, SEQ_LENS)):
        raise ValueError(f"unknown variant {variant!r}; use [le2015:]<T>[:smoke] with T one of "
                         f"{', '.join(map(str, SEQ_LENS))}")
    return le2015, int(parts[0]) if parts else SEQ_LENS[0], smoke


def get_config(variant: str = "150"):
    le2015, seq_len, smoke = parse_variant(variant)
    c = adding_config("smoke" if smoke else "cpu")
    c.task.seq_len = 12 if smoke else seq_len
    c.model.cell, c.model.activation = "rnn", "relu"
    c.model.recurrent_init, c.model.recurrent_scale = "identity", 1.0
    c.model.input_init, c.model.input_scale = "normal", 0.001 * math.sqrt(2)
    c.model.hidden = 8 if smoke else 100
    if le2015:
        c.train.optimizer, c.train.momentum = "sgd", 0.0
        c.train.learning_rate, c.train.grad_clip, c.train.batch_size = 1e-2, 10.0, 16
    else:
        c.train.optimizer, c.train.learning_rate, c.train.grad_clip = "adam", 1e-3, 1.0
        c.train.batch_size = 32
    c.sweep.seed = [0] if smoke else [0, 1, 2, 3, 4]
    c.train.vmap_sweep = "on"
    if not smoke:
        c.train.num_steps = {150: 10000, 300: 30000}[seq_len]
        c.train.log_every, c.train.eval_every = 500, 1000
        c.train.diagnostics_every, c.train.checkpoint_every = 5000, 5000
    return c
