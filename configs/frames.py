r"""Frame-level labelling: an MNIST digit slides behind an occluder; label every frame.
RNN vs LSTM (a sweep over ``model.cell``; two runs, one after the other).

    python -m experiments.main --config=configs/frames.py --workdir=runs/frames

T = 40 frames of 14×55 px; the occluder (36 columns, centred) hides the digit completely for
about 23 consecutive frames, which can then only be labelled from memory of the first ~8.
Variants: ``:smoke`` (tests), ``:cpu`` (default: H=64, batch 32, 1500 steps; about 4 min per
cell on 2 shared CPU cores), ``:gpu`` (T=80 with a 76-column occluder, H=128, batch 256).
Expected (``:cpu``; measured numbers in README "Captioning, translation, frames"): both cells
label visible frames well (≥ 0.9); on occluded frames the LSTM stays far above chance (0.1)
while the tanh RNN's accuracy falls the longer the digit has been hidden.
"""

from configs.adding import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    c = base_config()
    c.task.name = "mnist_frames"
    c.task.seq_len = 40
    c.task.occluder_width = 36
    c.task.eval_size = 1024
    c.model.cell = "lstm"
    c.model.hidden = 64
    c.train.num_steps = 1500
    c.train.batch_size = 32
    c.train.learning_rate = 2e-3
    c.train.grad_clip = 1.0
    c.train.eval_every = 250
    c.train.checkpoint_every = 500
    c.train.diagnostics_every = 250
    c.train.log_every = 50
    c.sweep.model = {"cell": ["rnn", "lstm"]}
    variant = variant or "cpu"
    apply_variant(c, variant)
    if variant == "smoke":
        c.task.occluder_width = 18   # seq_len 12: W = 27, the digit hidden for 5 frames
        c.train.eval_every = c.train.checkpoint_every = c.train.diagnostics_every = 6
    elif variant in ("gpu", "tpu"):
        c.task.seq_len = 80
        c.task.occluder_width = 76
    return c
