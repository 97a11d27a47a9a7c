r"""Forecasting Zurich monthly sunspot numbers (1749–1983) one month ahead.

    python -m experiments.main --config=configs/sunspots.py --workdir=runs/sunspots \
        --config.data.raw_dir=../shared/data/monthly_sunspots
    python -m experiments.export_examples runs/sunspots       # figures/forecast.png

An LSTM reads the last 36 months (scaled with the training part's mean and std) and
predicts the next month's change. Chronological split: the first 1,880 months (2/3) train,
the last 940 test. The seasonal-naive baseline uses 12 months, as for the other monthly
series, although sunspots have no yearly season (their cycle is ≈ 11 years); persistence
(last month's value) is the stronger baseline and is reported beside it.
Variants: ``:smoke`` (tests), ``:cpu`` (default; H=32, 3,000 steps of 16 windows, ≈ 1 min on
2 CPU cores), ``:gpu``/``:tpu`` (the same; the series is small).
Measured (docs/real_data.md): test RMSE 17.8, below seasonal naive (36.5) and a little below
persistence (18.5).
"""

from configs.airline import forecast_config


def get_config(variant: str = "cpu"):
    return forecast_config("monthly_sunspots", 36, 12, variant)
