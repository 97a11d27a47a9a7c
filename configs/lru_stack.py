r"""The LRU network of Orvieto et al. (2023, "Resurrecting Recurrent Neural Networks for Long
Sequences"): stacked pre-norm residual blocks (LayerNorm → LRU → Re(Cx) + Du → GELU → GLU),
``model.kind="lru_stack"`` (seqjax.models.LRUStack), on the adding problem and copy memory.

    python -m experiments.main --config=configs/lru_stack.py:adding --workdir=runs/lru_stack_adding
    python -m experiments.main --config=configs/lru_stack.py:copy --workdir=runs/lru_stack_copy
    # the LSTM of about the same number of parameters, same data and training
    python -m experiments.main --config=configs/lru_stack.py:adding:lstm --workdir=runs/lstm_adding

Variant ``<task>[:<size>][:lstm]``: task ``adding`` (default; T=200, where one LRU layer stays
at the 0.167 baseline, docs/cells.md) or ``copy`` (delay T=50, as configs/copy.py); size
``smoke`` (tests, seconds) or ``cpu`` (default); ``lstm``: the baseline arm, model.kind=
"recurrent" with an LSTM whose parameter count is close to the LRU stack's
(``seqjax.models.param_count``). The blocks' LRU runs as a parallel associative scan
(``model.impl="parallel"``); ``--config.model.impl=scan`` computes the same model step by step
(equal up to float rounding, tests/test_lru_stack.py), faster on a CPU.

Sizes (``seqjax.models.param_count``): d_model 32, N = 32 complex states (hidden 64), 2 blocks:
12,929 parameters on adding (LSTM arm H=56: 13,273), 13,449 on copy (LSTM H=52: 13,581).
Training: Adam 6e-3, 100 warmup steps then cosine, clip 1, batch 64; 1,200 steps (adding), 500
(copy). ``model.pool="last"`` reads the last step, so the recurrence must carry the two marked
values across the sequence (``"mean"``, the paper's pooling, would let a per-step MLP add them).
The ν, θ, γ of the LRU train at the same rate as the rest (the paper halves it; the optimizer
config has no per-parameter rates).

Expected (measured, seed 0, pinned to one core of a 2-core CPU that other jobs shared, load average
3.6–5.7; wall = the run's wall_time_s; docs/cells.md, "The LRU as its paper built it"):
* ``adding``: eval MSE 0.0097 (solved: < 0.05; 0.020 at step 750) at step 1,200, 7 min 56 s
  (about 4 steps/s); with ``--config.model.impl=scan`` 0.020 in 5 min 58 s (rounding differences
  grow over training into another trajectory). ``adding:lstm``: 0.162 in 1 min 46 s (14 steps/s);
  the same LSTM with configs/adding.py's training (3e-3 constant, 2,000 steps) reaches 0.0013
  in 5 min 13 s.
* ``copy``: recall accuracy 100% (solved: ≥ 90%; 99.8% at step 250), cross entropy 1.9e-5, 47 s.
  ``copy:lstm``: 13.5% (chance 12.5%), cross entropy 0.302, 44 s.
"""

from configs import adding, copy
from seqjax.config import base_config

TASKS = {"adding": adding, "copy": copy}
SIZES = ("smoke", "cpu")
# model sizes: (d_model, hidden = 2N, blocks) for the LRU stack; the LSTM's hidden
LRU_SIZES = {"adding": (32, 64, 2), "copy": (32, 64, 2)}
LSTM_HIDDEN = {"adding": 56, "copy": 52}
STEPS = {"adding": 1200, "copy": 500}

VARIANTS = tuple(f"{t}{s}{a}" for t in TASKS for s in ("", ":smoke") for a in ("", ":lstm"))


def parse_variant(variant: str) -> tuple[str, str, bool]:
    """(task, size, lstm arm) from ``<task>[:<size>][:lstm]``."""
    parts = [p for p in (variant or "").split(":") if p]
    task = parts.pop(0) if parts and parts[0] in TASKS else "adding"
    size = parts.pop(0) if parts and parts[0] in SIZES else "cpu"
    lstm = bool(parts) and parts[0] == "lstm"
    if lstm:
        parts.pop(0)
    if parts:
        raise ValueError(f"unknown variant {variant!r}; use <task>[:<size>][:lstm] with task one "
                         f"of: {', '.join(TASKS)} and size one of: {', '.join(SIZES)}")
    return task, size, lstm


def get_config(variant: str = "adding"):
    task, size, lstm = parse_variant(variant)
    c = base_config()
    c.task.name = task
    c.task.seq_len = 200 if task == "adding" else 50
    c.model.kind, c.model.cell = "lru_stack", "lru"
    c.model.d_model, c.model.hidden, c.model.layers = LRU_SIZES[task]
    c.model.impl = "parallel"
    c.model.pool = "last"
    c.train.optimizer = "adam"
    c.train.schedule = "warmup_cosine"
    c.train.warmup_steps = 100
    c.train.learning_rate = 6e-3
    c.train.grad_clip = 1.0
    c.train.batch_size = 64
    c.train.num_steps = STEPS[task]
    c.train.eval_every = c.train.diagnostics_every = 250
    c.train.checkpoint_every = 500
    c.train.log_every = 100
    if lstm:
        c.model.kind, c.model.cell, c.model.impl = "recurrent", "lstm", "auto"
        c.model.hidden, c.model.layers = LSTM_HIDDEN[task], 1
    if size == "smoke":
        adding.apply_variant(c, "smoke")
        c.model.d_model, c.model.hidden, c.model.layers = 8, 8, 1   # one block: a shorter compile
        c.train.warmup_steps = 2
        c.train.eval_every = c.train.checkpoint_every = 0   # once, at the end
    return c
