"""experiments.init_presets: the float64 ratio, its rows and its table, at small sizes."""

import math

import jax
import jax.numpy as jnp
import pytest

from experiments import gradient_flow, init_presets


def test_ratio_in_float64_equals_the_float32_diagnostic_where_float32_does_not_underflow():
    # gradient_flow.measure computes the same quantity in float32 with the seqjax init
    got = init_presets.ratio("lstm", {"forget_bias": 1.0}, 20, 16, 4, seed=0)
    spec = (("LSTM", "lstm", {}, {"forget_bias": 1.0}),)
    norms = gradient_flow.measure(seq_len=20, hidden=16, batch=4, seed=0, specs=spec)["LSTM"]
    assert got == pytest.approx(float(norms[0] / norms[20]), rel=1e-4)


def test_ratio_below_float32_range_is_still_positive_and_finite():
    r = init_presets.ratio("lstm", {"init_preset": "torch"}, 400, 16, 2, seed=0)
    assert 0.0 < r < float(jnp.finfo(jnp.float32).tiny) and math.isfinite(r)


def test_rows_cover_every_preset_and_cell_and_chrono_uses_T():
    rows = init_presets.rows(300)
    labels = [label for label, _, _ in rows]
    for cell in ("tanh RNN", "LSTM", "GRU"):
        for preset in init_presets.PRESETS:
            assert f"{cell} {preset}" in labels
    chrono = {label: opts for label, _, opts in rows if "chrono" in label}
    assert chrono["LSTM chrono"] == {"forget_bias": "chrono", "chrono_tmax": 300.0}
    assert chrono["GRU chrono"]["update_bias"] == "chrono"


def test_chrono_keeps_more_gradient_than_the_default_gru():
    gru = init_presets.ratio("gru", {}, 60, 8, 2, seed=0)
    chrono = init_presets.ratio("gru", {"update_bias": "chrono", "chrono_tmax": 60.0}, 60, 8, 2,
                                seed=0)
    assert chrono > 1e3 * gru


def test_table_gives_geometric_mean_and_range_and_marks_underflow():
    table = init_presets.format_table({"100": {"a": [1e-2, 1e-4], "b": [0.0, 1.0]}})
    lines = table.splitlines()
    assert lines[0] == "| cell, init | T = 100 |" and len(lines) == 4
    assert lines[2] == "| a | 1.0e-03 (1e-04–1e-02) |"
    assert "underflow" in lines[3]
