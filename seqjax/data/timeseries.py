"""Three classic univariate series from CSV files (jbrownlee/Datasets, from Hyndman's TSDL).

| builder | raw file (``config.data.raw_dir``) | rows | unit |
|---|---|---|---|
| ``airline_passengers`` | ``airline-passengers.csv`` (Box & Jenkins series G, 1949-01…1960-12) | 144 | thousands of passengers / month |
| ``daily_min_temperatures`` | ``daily-min-temperatures.csv`` (Melbourne, 1981-01-01…1990-12-31) | 3650 | °C |
| ``monthly_sunspots`` | ``monthly-sunspots.csv`` (Zurich, 1749-01…1983-12) | 2820 | sunspot number |

Each file is a CSV with a quoted two-column header (e.g. ``"Month","Passengers"``) and one
``date,value`` row per period, checked against its published sha256. Without ``raw_dir``
it is downloaded from GitHub (jbrownlee/Datasets). Prepared dataset (array_record): one
split ``full`` with the rows in file (chronological) order, features ``date`` (text, as in
the file) and ``value`` (float64). Tasks cut train and test parts from it in time order.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import raw as raw_lib
from seqjax.data.raw import RawDataError, RawFile

_GITHUB = "https://raw.githubusercontent.com/jbrownlee/Datasets/master/"
SPLIT = "full"


def read_series_csv(path: str, header: tuple[str, str], dataset: str) -> tuple[list[str], np.ndarray]:
    """(dates, values float64) of a two-column CSV; errors name the file and the line."""
    with open(path, "rb") as f:
        try:
            text = f.read().decode("utf-8")
        except UnicodeDecodeError as e:
            raise RawDataError(f"{dataset}: {path} is not UTF-8 text ({e})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != header:
        raise RawDataError(f"{dataset}: {path} should start with the header "
                           f"{','.join(repr(h) for h in header)}, got {rows[0] if rows else 'nothing'}")
    dates, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            date, value = row
            values.append(float(value))
        except ValueError:
            raise RawDataError(f"{dataset}: {path} line {line}: expected 'date,number', got "
                               f"{','.join(row)!r}") from None
        dates.append(date)
    return dates, np.asarray(values, np.float64)


class _SeriesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One CSV series → one split ``full`` in time order. Subclasses set the class fields."""

    VERSION = tfds.core.Version("1.0.0")
    RAW: RawFile
    HEADER: tuple[str, str]
    ROWS: int
    DESCRIPTION: str

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "date": tfds.features.Text(),
                # raw float64 bytes: a Scalar would go through float32 (tf.train.Example)
                "value": tfds.features.Tensor(shape=(), dtype=np.float64,
                                              encoding=tfds.features.Encoding.BYTES),
            }),
            homepage="https://github.com/jbrownlee/Datasets",
            disable_shuffling=True)

    def _split_generators(self, dl_manager):
        path = raw_lib.fetch(self.name, dl_manager, [self.RAW])[self.RAW.name]
        dates, values = read_series_csv(path, self.HEADER, self.name)
        if len(values) != self.ROWS:
            raise RawDataError(f"{self.name}: {path} has {len(values)} rows, expected {self.ROWS}")
        return {SPLIT: self._generate_examples(dates, values)}

    def _generate_examples(self, dates, values):
        for i, (d, v) in enumerate(zip(dates, values)):
            yield i, {"date": d, "value": v}


def _instructions(raw: RawFile) -> str:
    return f"Put {raw_lib.describe(raw)} in the manual directory (config.data.raw_dir): {raw.url}"


class AirlinePassengers(_SeriesBuilder, skip_registration=True):
    RAW = RawFile("airline-passengers.csv", 2180,
                  "8cb51be753a718d9be5d76d7e238cc224792754676adc21faa59e954b0201621",
                  _GITHUB + "airline-passengers.csv")
    HEADER, ROWS = ("Month", "Passengers"), 144
    DESCRIPTION = "Monthly international airline passengers (thousands), 1949-1960 (Box & Jenkins)."
    MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(RAW)


class DailyMinTemperatures(_SeriesBuilder, skip_registration=True):
    RAW = RawFile("daily-min-temperatures.csv", 67921,
                  "8b9de63ed6789492bf497625e7f9beb96a63d367b4b0a21754006f749fa5e5da",
                  _GITHUB + "daily-min-temperatures.csv")
    HEADER, ROWS = ("Date", "Temp"), 3650
    DESCRIPTION = "Daily minimum temperature in Melbourne (deg C), 1981-1990."
    MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(RAW)


class MonthlySunspots(_SeriesBuilder, skip_registration=True):
    RAW = RawFile("monthly-sunspots.csv", 45039,
                  "c4ec8cc57d9f6fb6ecdb3e1f37f25b6f4badd5124c55931052b0cd2fc3bc71f3",
                  _GITHUB + "monthly-sunspots.csv")
    HEADER, ROWS = ("Month", "Sunspots"), 2820
    DESCRIPTION = "Zurich monthly sunspot numbers, 1749-1983."
    MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(RAW)


SERIES = {b.name: b for b in (AirlinePassengers, DailyMinTemperatures, MonthlySunspots)}


def load_series(builder) -> tuple[list[str], np.ndarray]:
    """(dates, values float64) of a prepared series, in time order."""
    source = builder.as_data_source(split=SPLIT)
    records = source.__getitems__(list(range(len(source))))
    dates = [r["date"].decode("utf-8") if isinstance(r["date"], bytes) else r["date"]
             for r in records]
    return dates, np.asarray([r["value"] for r in records], np.float64)
