"""One-step-ahead forecasting of a univariate series (many-to-one regression).

The series (``task.dataset``: airline_passengers, daily_min_temperatures or
monthly_sunspots; see seqjax.data.timeseries) is split in time order: the first
``task.train_fraction`` of the N values (⌊N·fraction⌋ of them) is the training part, the rest
the test part. An example is a window of ``task.seq_len`` = W consecutive values; its target
is the value right after it. Training windows end before the test part begins; test
examples are the windows whose target lies in the test part (their inputs may reach back
into the training part, as in the published tutorial).

Transform and scaling: with ``task.log`` the model works on log(x) (series with a
multiplicative season, like the airline's); the result is x' = (x − center) / scale with
statistics of the (transformed) training part only: ``task.scaling="standard"`` (mean, std)
or ``"minmax"`` (min, max − min: the training part maps to [0, 1]). ``"minmax_all"`` takes
min and max over the whole series, test part included — a leak, there only to reproduce
the published Keras tutorial, which scaled this way. ``task.predict`` = "value": the
model outputs the next value (scaled); "difference": the change from the window's last
value (divided by the same scale), which lets it follow a trend beyond the range seen in
training. ``task.relative_inputs``: each window is shifted by its own last value (inputs
(x − x_last) / scale), so the model sees only the shape of the recent past, not its level.
Loss: MSE in scaled units. Metrics ``rmse`` and ``mae`` of the one-step forecasts in the
series' own units (back-transformed). The evaluation set is one batch: every test window,
in time order.

Baselines (test part, same units): ``rmse``/``mae`` of the seasonal-naive forecast, the
value ``task.season`` steps earlier (12 for the monthly series, 365 for the daily
temperatures), and ``persistence_rmse`` (the previous value). Each evaluation logs
``image/forecast``: the series, the train/test boundary and the forecasts over the test part.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from seqjax.data import pipeline
from seqjax.tasks.base import InputSpec, Task
from seqjax.tasks.realdata import figure_rgb, no_input_noise, pyplot

PREDICT = ("value", "difference")
SCALING = ("standard", "minmax", "minmax_all")
UNITS = {"airline_passengers": "thousand passengers", "daily_min_temperatures": "°C",
         "monthly_sunspots": "sunspot number"}


class ForecastTask(Task):
    name = "forecast"
    config_defaults = {"dataset": "airline_passengers", "train_fraction": 2 / 3, "season": 12,
                       "predict": "value", "log": False, "relative_inputs": False,
                       "scaling": "standard"}

    def __init__(self, config):
        super().__init__(config)
        t = self.settings
        from seqjax.data import timeseries  # imports tensorflow_datasets (≈0.5 s): real runs only
        if t.dataset not in timeseries.SERIES:
            raise ValueError(f"task.dataset={t.dataset!r} is not allowed; choose one of: "
                             f"{', '.join(timeseries.SERIES)}")
        if t.predict not in PREDICT:
            raise ValueError(f"task.predict={t.predict!r} is not allowed; choose one of: "
                             f"{', '.join(PREDICT)}")
        if t.scaling not in SCALING:
            raise ValueError(f"task.scaling={t.scaling!r} is not allowed; choose one of: "
                             f"{', '.join(SCALING)}")
        if not 0.0 < t.train_fraction < 1.0:
            raise ValueError(f"task.train_fraction must lie in (0, 1), got {t.train_fraction!r}")
        if not isinstance(t.season, int) or t.season < 1:
            raise ValueError(f"task.season must be a positive integer, got {t.season!r}")
        no_input_noise(t, self.name)
        self._series = None

    # ---- the series and its windows

    def series(self) -> dict:
        """{dates, values, level, n_train, center, scale}: loaded (and prepared) once."""
        if self._series is None:
            from seqjax.data import timeseries  # imports tensorflow_datasets: real runs only
            t = self.settings
            builder = pipeline.prepare(timeseries.SERIES[t.dataset], self.config.data)
            dates, values = timeseries.load_series(builder)
            n_train = int(len(values) * t.train_fraction)
            W = t.seq_len
            if not W < n_train:
                raise ValueError(f"task.seq_len={W} (the window) must be shorter than the "
                                 f"training part ({n_train} of {len(values)} values)")
            if t.season > n_train:
                raise ValueError(f"task.season={t.season} exceeds the training part "
                                 f"({n_train} values)")
            if t.log and not values.min() > 0:
                raise ValueError(f"task.log=True needs a positive series; {t.dataset} has values "
                                 f"down to {values.min()}")
            level = np.log(values) if t.log else values
            ref = level if t.scaling == "minmax_all" else level[:n_train]
            center, scale = ((ref.mean(), ref.std()) if t.scaling == "standard"
                             else (ref.min(), ref.max() - ref.min()))
            self._series = {"dates": dates, "values": values, "level": level, "n_train": n_train,
                            "center": float(center), "scale": float(scale)}
        return self._series

    def windows(self, targets_t: np.ndarray) -> dict:
        """The batch whose targets are the values at time indices ``targets_t``.

        ``targets``: the scaled target; ``offset``: what the scaled output is added to
        (after × scale) to give the forecast's (transformed) level; ``value``: the true value
        in the series' units; ``t``: the time index of the target.
        """
        s, W, task = self.series(), self.settings.seq_len, self.settings
        lv, center, scale = s["level"], s["center"], s["scale"]
        t = np.asarray(targets_t, np.int64)
        last = lv[t - 1]
        x = lv[t[:, None] + np.arange(-W, 0)[None, :]]
        x = (x - (last[:, None] if task.relative_inputs else center)) / scale
        offset = np.full(len(t), center) if task.predict == "value" else last
        return {"inputs": x[:, :, None].astype(np.float32),
                "targets": ((lv[t] - offset) / scale).astype(np.float32),
                "offset": offset.astype(np.float32),
                "value": s["values"][t].astype(np.float32),
                "t": t.astype(np.int32)}

    def to_units(self, outputs_B, offset_B, xp=np):
        """Model outputs → forecasts in the series' units (``xp``: numpy or jax.numpy)."""
        level = offset_B + outputs_B * self.series()["scale"]
        return xp.exp(level) if self.settings.log else level

    def input_spec(self) -> InputSpec:
        return InputSpec(kind="features", dim=1, output_dim=1, readout="last",
                         seq_len=self.settings.seq_len)

    def train_iterator(self, seed: int):
        s, W = self.series(), self.settings.seq_len
        first = W  # the first target with a full window
        return pipeline.GrainIterator(
            s["n_train"] - first, pipeline.per_host_batch(self.config.train.batch_size), seed,
            lambda idx: self.windows(first + np.asarray(idx)))

    def test_targets(self) -> np.ndarray:
        s = self.series()
        return np.arange(s["n_train"], len(s["values"]))

    def eval_batches(self):
        return iter([self.windows(self.test_targets())])

    # ---- objective

    def loss(self, outputs, batch):
        mse = jnp.mean((outputs[:, 0] - batch["targets"]) ** 2)
        err = self.to_units(outputs[:, 0], batch["offset"], jnp) - batch["value"]
        return mse, {"mse_scaled": mse, "rmse": jnp.sqrt(jnp.mean(err ** 2)),
                     "mae": jnp.mean(jnp.abs(err))}

    def baseline(self):
        s, season = self.series(), self.settings.season
        v, t = s["values"], self.test_targets()
        rmse = lambda pred: math.sqrt(float(np.mean((pred - v[t]) ** 2)))
        return {"rmse": rmse(v[t - season]), "mae": float(np.mean(np.abs(v[t - season] - v[t]))),
                "persistence_rmse": rmse(v[t - 1])}

    def examples(self, outputs, batch):
        s, t = self.series(), np.asarray(batch["t"])
        forecast = self.to_units(np.asarray(outputs[:, 0], np.float64),
                                 np.asarray(batch["offset"], np.float64))
        return {"image/forecast": self.forecast_figure(t, forecast)}

    def forecast_figure(self, t: np.ndarray, forecast: np.ndarray, zoom: int = 150) -> np.ndarray:
        """Top: the whole series, the train/test boundary and the forecasts over the test
        part. Bottom: the last ``zoom`` test steps (all of them when fewer), close up."""
        s, task = self.series(), self.settings
        v, season = s["values"], task.season
        rmse = math.sqrt(float(np.mean((forecast - v[t]) ** 2)))
        base = self.baseline()
        plt = pyplot()
        fig, (ax, az) = plt.subplots(2, 1, figsize=(10, 7.0), height_ratios=(1.1, 1))
        x = np.arange(len(v))
        ax.plot(x, v, color="black", lw=0.8, label="series")
        z = t[-zoom:]
        for a, tt, lw in ((ax, t, 1.0), (az, z, 1.3)):
            a.plot(tt, v[tt - season], color="tab:gray", lw=lw, ls="--",
                   label=f"seasonal naive (t−{season}): RMSE {base['rmse']:.2f}")
            a.plot(tt, forecast[-len(tt):], color="tab:red", lw=lw + 0.3,
                   label=f"model, one step ahead: RMSE {rmse:.2f}")
        az.plot(z, v[z], color="black", lw=1.0, marker=".", ms=4, label="series")
        ax.axvline(s["n_train"] - 0.5, color="tab:blue", lw=1, ls=":")
        ax.text(s["n_train"], ax.get_ylim()[1], " test →", va="top", color="tab:blue")
        ax.axvspan(z[0] - 0.5, z[-1] + 0.5, color="tab:orange", alpha=0.12, lw=0)
        for a, lo, hi in ((ax, 0, len(v) - 1), (az, int(z[0]), int(z[-1]))):
            ticks = np.linspace(lo, hi, 7).astype(int)
            a.set_xticks(ticks, [s["dates"][i] for i in ticks])
            a.set_ylabel(UNITS[task.dataset])
        ax.set_title(f"{task.dataset}: window {task.seq_len}, predict {task.predict}"
                     f"{' of log' if task.log else ''}, "
                     f"first {s['n_train']} of {len(v)} values for training")
        az.set_title(f"close-up: the last {len(z)} test steps (shaded above)", fontsize=10)
        ax.legend(loc="upper left", fontsize=9)
        az.legend(loc="upper left", fontsize=9)
        fig.tight_layout()
        return figure_rgb(fig)
