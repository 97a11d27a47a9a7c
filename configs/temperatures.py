r"""Forecasting Melbourne's daily minimum temperature (1981–1990) one day ahead.

    python -m experiments.main --config=configs/temperatures.py --workdir=runs/temperatures \
        --config.data.raw_dir=../shared/data/daily_min_temperatures
    python -m experiments.export_examples runs/temperatures   # figures/forecast.png

An LSTM reads the last 30 days (scaled with the training part's mean and std) and predicts
the next day's change. Chronological split: the first 2,433 days (2/3) train, the last 1,217
test. Seasonal period: 365 days (the seasonal-naive forecast is the value one year — 365
rows — earlier; the file has no 31 December in leap years, so a year is always 365 rows).
Variants: ``:smoke`` (tests), ``:cpu`` (default; H=32, 3,000 steps of 16 windows, ≈ 1 min on
2 CPU cores), ``:gpu``/``:tpu`` (the same; the series is small).
Measured (docs/real_data.md): test RMSE 2.31 °C, below both the seasonal-naive forecast
(3.85 °C) and persistence (yesterday's value, 2.62 °C).
"""

from configs.airline import forecast_config


def get_config(variant: str = "cpu"):
    return forecast_config("daily_min_temperatures", 30, 365, variant)
