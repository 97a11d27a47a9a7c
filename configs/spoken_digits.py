r"""Spoken digits (FSDD): 40-band log-mel frames → LSTM → linear head on the last state.

    python -m experiments.main --config=configs/spoken_digits.py --workdir=runs/spoken_digits/lstm \
        --config.data.raw_dir=../shared/data/fsdd
    python -m experiments.main --config=configs/spoken_digits.py --workdir=runs/spoken_digits/holdout_lstm \
        --config.data.raw_dir=../shared/data/fsdd --config.task.split=speaker_holdout
    python -m experiments.spoken_digits_figures runs/spoken_digits   # docs/figures/spoken_digits/

Other cells: ``--config.model.cell=gru`` / ``rnn`` (tanh). ``task.split``: ``official`` (the
dataset's split: repetitions 0–4 test, 300 recordings; 5–49 train, 2,700) or
``speaker_holdout`` (``task.test_speaker``, default theo, is the test set: 500 recordings,
the other five speakers train). Recordings are padded to 230 frames (the longest has 229)
with per-recording lengths that the recurrent core masks. The first run prepares the
log-mel frames into ``data.data_dir`` (≈ 10 s, once); on a machine with internet leave out
``--config.data.raw_dir`` and TFDS downloads the recordings from GitHub.
Variants: ``:smoke`` (tests, seconds), ``:cpu`` (default: LSTM 128 reading two stacked frames
per step, 115 steps, batch 32, 2,000 steps ≈ 24 epochs, cosine from 3e-3; 2 min 44 s for the
whole command on 2 CPU cores shared with other work, load ≈ 7), ``:gpu``/``:tpu`` (one frame per step, 230 steps, LSTM 128, batch 64, 4,000
steps).
Published anchor: small MFCC/log-mel + LSTM or CNN models reach ≈ 95–99% on the official
split. Measured here (docs/real_data.md, "Spoken digits (audio)"), test accuracy, official /
speaker_holdout (theo): LSTM 99.0% / 67.0%, GRU 99.3% / 70.8%, tanh RNN 94.7% / 66.2%; the
constant predictor scores 10%.
"""

from configs.adding import apply_variant
from seqjax.config import base_config


def get_config(variant: str = "cpu"):
    variant = variant or "cpu"
    c = base_config()
    c.task.name = "spoken_digits"
    c.task.split = "official"        # or "speaker_holdout"
    c.task.test_speaker = "theo"     # speaker_holdout only
    c.task.seq_len = 230             # frames (10 ms each) every recording is padded to
    c.task.frame_stack = 2           # frames joined into one step: 115 steps of 80 numbers
    c.task.eval_size = 3000          # capped at the test split: all of it
    c.task.eval_batch_size = 500     # one batch: the confusion matrix covers the whole test set
    c.task.eval_seed = 1234
    c.data.data_dir = ""             # default: $TFDS_DATA_DIR, else <clone>/data/tfds
    c.model.cell = "lstm"
    c.model.hidden = 128
    c.train.optimizer = "adam"
    c.train.learning_rate = 3e-3
    c.train.schedule = "cosine"
    c.train.grad_clip = 1.0
    c.train.batch_size = 32
    c.train.num_steps = 2000         # 2,700 / 32 = 84 steps per epoch: ≈ 24 epochs
    c.train.eval_every = 500
    c.train.diagnostics_every = 500
    c.train.checkpoint_every = 500
    c.train.log_every = 100
    if variant == "smoke":
        apply_variant(c, "smoke")
        c.task.seq_len = 40
        c.task.eval_batch_size = 32
        c.train.batch_size = 8
        c.train.num_steps = 4
        c.train.eval_every = 0        # evaluate once, at the end
    elif variant in ("gpu", "tpu"):
        c.model.impl = "auto"
        c.task.frame_stack = 1
        c.train.batch_size = 64
        c.train.learning_rate = 2e-3
        c.train.num_steps = 4000     # ≈ 95 epochs
        c.train.eval_every = 500
    elif variant != "cpu":
        raise ValueError(f"unknown variant {variant!r}; choose one of: smoke, cpu, gpu, tpu")
    return c
