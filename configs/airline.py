r"""Forecasting airline passengers (Box & Jenkins series G, monthly, 1949–1960) one month ahead.

    python -m experiments.main --config=configs/airline.py --workdir=runs/airline \
        --config.data.raw_dir=../shared/data/airline_passengers
    python -m experiments.export_examples runs/airline    # runs/airline/figures/forecast.png

An LSTM reads the last 12 months of log(passengers), each window shifted by its last value
and divided by the std of the training part, and predicts the change to the next month
(``task.log``, ``task.relative_inputs``, ``task.predict="difference"``). Chronological split:
the first 96 months (2/3) train, the last 48 test. On a machine with internet leave out
``--config.data.raw_dir`` and TFDS downloads the CSV.
Variants: ``:smoke`` (tests), ``:cpu`` (default; H=16, 1,500 steps of 16 windows, ≈ 1 min on
2 CPU cores), ``:gpu``/``:tpu`` (the same: the series is tiny), ``:tutorial`` (the published
Keras tutorial's setup: window 1, LSTM of 4 units, batch 1, 100 epochs, predict the value,
min-max scaled over the whole series as the tutorial did — test part included).
Measured (docs/real_data.md): test RMSE 22.6 thousand passengers (seeds 0–4: 20.8–28.6),
against 41.85 for the seasonal-naive forecast (value 12 months earlier), 48.0 for persistence
and the tutorial's published 47.5; ``:tutorial`` scores 52.7 (62.6 with
``--config.task.scaling=minmax``, i.e. without the test part in the scaling).
"""

from configs.adding import apply_variant
from seqjax.config import base_config


def forecast_config(dataset: str, window: int, season: int, variant: str, *, log: bool = False,
                    relative_inputs: bool = False, hidden: int = 32, num_steps: int = 3000):
    """The shared setup of configs/airline.py, temperatures.py and sunspots.py."""
    variant = variant or "cpu"
    c = base_config()
    c.task.name = "forecast"
    c.task.dataset = dataset
    c.task.seq_len = window
    c.task.season = season
    c.task.train_fraction = 2 / 3
    c.task.predict = "difference"
    c.task.log = log
    c.task.relative_inputs = relative_inputs
    c.task.scaling = "standard"       # mean and std of the training part only
    c.data.data_dir = ""              # default: $TFDS_DATA_DIR, else <clone>/data/tfds
    c.model.cell = "lstm"
    c.model.hidden = hidden
    c.train.optimizer = "adam"
    c.train.learning_rate = 3e-3
    c.train.schedule = "cosine"
    c.train.grad_clip = 1.0
    c.train.batch_size = 16
    c.train.num_steps = num_steps
    c.train.eval_every = 500
    c.train.diagnostics_every = 500
    c.train.checkpoint_every = 1000
    c.train.log_every = 250
    if variant == "smoke":
        apply_variant(c, "smoke")
        c.task.seq_len = window
        c.model.hidden = 4
        c.train.batch_size = 8
        c.train.num_steps = 4
        c.train.eval_every = 0        # evaluate once, at the end
    elif variant not in ("cpu", "gpu", "tpu"):
        raise ValueError(f"unknown variant {variant!r}; choose one of: smoke, cpu, gpu, tpu")
    return c


VARIANTS = ("smoke", "cpu", "gpu", "tpu", "tutorial")


def get_config(variant: str = "cpu"):
    if variant == "tutorial":
        c = forecast_config("airline_passengers", 1, 12, "cpu")
        c.task.predict = "value"
        c.task.scaling = "minmax_all"  # the tutorial min-max scaled the whole series (a leak of
                                       # the test part); --config.task.scaling=minmax removes it
        c.model.hidden = 4
        c.train.batch_size = 1
        c.train.num_steps = 9500          # 100 epochs of the 95 training windows
        c.train.learning_rate = 1e-3      # Keras Adam's default
        c.train.schedule = "constant"
        c.train.grad_clip = 0.0
        c.train.eval_every = 2300
        c.train.log_every = 1000
        return c
    return forecast_config("airline_passengers", 12, 12, variant, log=True, relative_inputs=True,
                           hidden=16, num_steps=1500)
