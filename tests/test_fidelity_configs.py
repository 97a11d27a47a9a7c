"""configs/irnn_adding.py and configs/chrono_adding.py: their settings, and :smoke end to end."""

import math

import pytest

from configs import chrono_adding, irnn_adding
from seqjax import sweep, train


def test_irnn_is_the_papers_network_with_their_sgd_or_adam():
    c = irnn_adding.get_config("le2015:300")
    m, t = c.model, c.train
    assert (m.cell, m.activation, m.recurrent_init, m.hidden) == ("rnn", "relu", "identity", 100)
    # model.input_init="normal" draws N(0, (scale/√D)²): the paper's std 0.001 for D = 2
    assert m.input_init == "normal" and m.input_scale / math.sqrt(2) == pytest.approx(1e-3)
    assert (t.optimizer, t.momentum, t.learning_rate, t.grad_clip, t.batch_size) == (
        "sgd", 0.0, 1e-2, 10.0, 16)
    assert c.task.seq_len == 300 and list(c.sweep.seed) == [0, 1, 2, 3, 4]
    assert irnn_adding.get_config("150").train.optimizer == "adam"


@pytest.mark.parametrize("bad", ["200", "150:big", "sgd:150"])
def test_irnn_bad_variant_names_the_allowed_form(bad):
    with pytest.raises(ValueError, match=r"use \[le2015:\]<T>\[:smoke\] with T one of 150, 300"):
        irnn_adding.get_config(bad)


def test_chrono_arms_set_tmax_to_the_sequence_length():
    c = chrono_adding.get_config("400")
    members = dict(sweep.sweep_members(c))
    chrono = [m for name, m in members.items() if "chrono" in name]
    assert len(members) == 15 and len(chrono) == 5
    assert all(m.model.forget_bias == "chrono" and m.model.chrono_tmax == 400.0 for m in chrono)
    assert {m.model.forget_bias for m in members.values()} == {1.0, 2.0, "chrono"}


@pytest.mark.parametrize("module,variant", [
    (irnn_adding, "150:smoke"),
    pytest.param(chrono_adding, "smoke", marks=pytest.mark.slow)])  # three arms: 18 s
def test_smoke_variants_train_end_to_end(tmp_path, module, variant):
    out = train.train_and_evaluate(module.get_config(variant), str(tmp_path))
    finals = [s["final_eval"]["mse"] for s in out["members"].values()]
    assert finals and all(math.isfinite(f) for f in finals)
