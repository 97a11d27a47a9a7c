"""Init presets (torch, Keras, flax.linen defaults in seqjax's layout) and chrono gate biases.

Distributions are checked against what each library's source does (torch/nn/modules/rnn.py
``reset_parameters``; keras/src/layers/rnn/{lstm,gru,simple_rnn}.py with keras/src/initializers;
flax/linen/recurrent.py) at H=64, and at H=512 with ``-m slow`` (orthogonal inits are QR
factorisations, seconds each at that size on a busy 2-core CPU); flax's is checked for equality
with flax.linen's own cells. Keys are fixed, so every statistic here is a fixed number: the
moment and KS thresholds cannot flake.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from seqjax import cells, config as config_lib, convert, models
from seqjax.cells import presets

D, H = 64, 64  # every test at this size (JAX compiles each op once per shape)
# The distribution tests: the LSTM at H=64 by default; every cell, and H=512, with -m slow.
CASES = [("lstm", H)] + [pytest.param(c, size, marks=pytest.mark.slow)
                         for c, size in [("rnn", H), ("gru", H), ("rnn", 512), ("lstm", 512),
                                         ("gru", 512)]]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
KEY = jax.random.key(0)


def init(cell_name, preset, hidden=H, key=KEY, **options):
    params = cells.get_cell(cell_name).init(key, D, hidden, init_preset=preset, **options)
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def assert_moments(x, mean, var, kurtosis):
    """Sample mean and variance within 5 standard errors of ``mean`` and ``var`` (the
    distribution's kurtosis sets the variance's standard error)."""
    x = np.ravel(x)
    n = x.size
    assert abs(x.mean() - mean) <= 5 * math.sqrt(var / n)
    assert abs(x.var() - var) <= 5 * var * math.sqrt((kurtosis - 1) / n)


def ks_p(x, dist) -> float:
    return stats.kstest(np.ravel(x), dist.cdf).pvalue


def uniform(bound):
    return stats.uniform(loc=-bound, scale=2 * bound)


def sum_of_two_uniforms(bound):
    """U(−k, k) + U(−k, k): triangular on [−2k, 2k] with its mode at 0."""
    return stats.triang(c=0.5, loc=-2 * bound, scale=4 * bound)


@pytest.fixture(scope="module", params=["rnn", "lstm", "gru"])
def cell_name(request):
    return request.param


# ----------------------------------------------------------------- every preset, every cell


def test_every_preset_gives_the_cells_names_shapes_and_dtypes(cell_name):
    """Traced only (jax.eval_shape): the values are the other tests' business."""
    cell = cells.get_cell(cell_name)
    own = jax.eval_shape(lambda k: cell.init(k, D, H), KEY)
    for preset in cells.PRESETS:
        p = jax.eval_shape(lambda k: cell.init(k, D, H, init_preset=preset), KEY)
        assert p == own, preset


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "mingru", "minlstm"])
def test_seqjax_preset_is_bit_identical_to_the_default_init(name):
    """The cells whose init gained options; every cell passes "seqjax" through CellBase.init
    alike."""
    cell = cells.get_cell(name)
    default = cell.init(KEY, D, H)
    p = cell.init(KEY, D, H, init_preset="seqjax")
    assert default.keys() == p.keys()
    for k in default:
        np.testing.assert_array_equal(p[k], default[k])


def test_the_models_options_reach_the_cell_init():
    c = config_lib.base_config()
    c.model.cell, c.model.init_preset, c.model.forget_bias = "lstm", "keras", "chrono"
    c.model.chrono_tmax = 30.0
    _, init_options = models.cell_options(c.model)
    assert init_options["init_preset"] == "keras" and init_options["forget_bias"] == "chrono"
    assert init_options["chrono_tmax"] == 30.0
    for name in cells.CELLS:  # every cell takes init_preset; the uncovered ones refuse keras
        c.model.cell = name
        assert models.cell_options(c.model)[1]["init_preset"] == "keras"


def test_a_model_built_from_the_config_starts_from_the_preset():
    """The flax model's recurrent layer is the preset (here flax's own LSTMCell init, per-gate
    orthogonal blocks) with chrono biases on top."""
    c = config_lib.base_config()
    c.model.update(cell="lstm", hidden=H, init_preset="flax", forget_bias="chrono")
    config_lib.validate(c)
    spec = models.InputSpec(kind="features", dim=D, output_dim=1, readout="last", seq_len=5)
    model = models.build_model(ml_collections.FrozenConfigDict(c.model), spec)
    layer = model.init(jax.random.key(1), {"inputs": jnp.zeros((2, 5, D))})["params"]["core"][
        "layer0"]
    b = np.asarray(layer["b"])
    np.testing.assert_array_equal(b[:H], -b[H:2 * H])
    assert np.all(b[H:2 * H] >= 0) and np.all(b[2 * H:] == 0)
    W_h = np.asarray(layer["W_h"])
    np.testing.assert_allclose(W_h[:, :H] @ W_h[:, :H].T, np.eye(H), atol=1e-5)


# ----------------------------------------------------------------- torch


@pytest.mark.parametrize("cell_name, H_", CASES)
def test_torch_uniform_weights_and_summed_biases(cell_name, H_):
    """Weights U(−k, k), k = 1/√H: variance 1/(3H). One seqjax bias stands for torch's
    b_ih + b_hh: triangular on ±2k, variance 2/(3H); the GRU's n gate keeps b_in alone in b
    and b_hh's n part as b_hn (both uniform). Biases pooled over 8 keys."""
    k = 1 / math.sqrt(H_)
    ps = [init(cell_name, "torch", hidden=H_, key=jax.random.key(seed)) for seed in range(8)]
    for name in ("W_x", "W_h"):
        w = ps[0][name]
        assert w.shape[1] == GATES[cell_name] * H_
        assert np.abs(w).max() <= k
        assert_moments(w, 0.0, 1 / (3 * H_), kurtosis=1.8)
        assert ks_p(w, uniform(k)) > 0.01
    summed = np.concatenate([p["b"][:2 * H_] if cell_name == "gru" else p["b"] for p in ps])
    assert np.abs(summed).max() <= 2 * k
    assert_moments(summed, 0.0, 2 / (3 * H_), kurtosis=2.4)
    assert ks_p(summed, sum_of_two_uniforms(k)) > 0.01
    assert ks_p(summed, uniform(k)) < 1e-3        # not one uniform
    if cell_name == "gru":
        single = np.concatenate([np.concatenate([p["b"][2 * H_:], p["b_hn"]]) for p in ps])
        assert np.abs(single).max() <= k
        assert_moments(single, 0.0, 1 / (3 * H_), kurtosis=1.8)
        assert ks_p(single, uniform(k)) > 0.01


def test_from_torch_transposes_and_sums_and_keeps_the_grus_b_hn():
    t = {"weight_ih": jnp.arange(18.0).reshape(6, 3), "weight_hh": jnp.arange(12.0).reshape(6, 2),
         "bias_ih": jnp.arange(6.0), "bias_hh": 10 * jnp.arange(6.0)}
    p = presets.from_torch("gru", t)
    np.testing.assert_array_equal(p["W_x"], t["weight_ih"].T)
    np.testing.assert_array_equal(p["W_h"], t["weight_hh"].T)
    np.testing.assert_array_equal(p["b"], [0, 11, 22, 33, 4, 5])    # r, z summed; n = b_in
    np.testing.assert_array_equal(p["b_hn"], [40, 50])
    np.testing.assert_array_equal(presets.from_torch("lstm", t)["b"], 11 * jnp.arange(6.0))


# ----------------------------------------------------------------- Keras


@pytest.mark.parametrize("cell_name, H_", CASES)
def test_keras_glorot_kernel_orthogonal_recurrent_kernel_and_biases(cell_name, H_):
    """kernel: glorot_uniform over the fused (D, G·H) matrix, U(±√(6/(D + G·H))).
    recurrent_kernel: (H, G·H) with orthonormal rows, W_h W_hᵀ = I_H; for G > 1, W_hᵀ W_h is a
    rank-H projection, not I, and a gate's (H, H) block is not orthogonal on its own (what
    tells it apart from flax's and seqjax's per-gate blocks). Biases zero but the LSTM's
    unit forget bias."""
    G, p = GATES[cell_name], init(cell_name, "keras", hidden=H_)
    w, limit = p["W_x"], math.sqrt(6 / (D + G * H_))
    assert np.abs(w).max() <= limit
    assert_moments(w, 0.0, limit ** 2 / 3, kurtosis=1.8)
    assert ks_p(w, uniform(limit)) > 0.01
    W = p["W_h"]
    np.testing.assert_allclose(W @ W.T, np.eye(H_), atol=1e-5)
    if G == 1:
        np.testing.assert_allclose(W.T @ W, np.eye(H_), atol=1e-5)
    else:
        P = W.T @ W
        np.testing.assert_allclose(P @ P, P, atol=1e-5)
        assert np.trace(P) == pytest.approx(H_, rel=1e-5)
        assert np.abs(W[:, :H_] @ W[:, :H_].T - np.eye(H_)).max() > 0.3
    expected = np.zeros(G * H_)
    if cell_name == "lstm":
        expected[H_:2 * H_] = 1.0  # gate blocks (i, f, g, o)
    np.testing.assert_array_equal(p["b"], expected)
    if cell_name == "gru":
        np.testing.assert_array_equal(p["b_hn"], np.zeros(H_))


def test_from_keras_reorders_the_grus_z_r_h_blocks_and_splits_its_bias():
    blocks = lambda *v: jnp.concatenate([jnp.full((2,), x, jnp.float32) for x in v])
    kernel = jnp.stack([blocks(1, 2, 3)] * 3)                 # keras (z, r, h) = (1, 2, 3)
    bias = jnp.stack([blocks(1, 2, 3), 10 * blocks(1, 2, 3)])  # input row, recurrent row
    p = presets.from_keras("gru", kernel, kernel[:2], bias)
    np.testing.assert_array_equal(p["W_x"][0], blocks(2, 1, 3))  # seqjax (r, z, n)
    np.testing.assert_array_equal(p["W_h"][0], blocks(2, 1, 3))
    np.testing.assert_array_equal(p["b"], blocks(22, 11, 3))
    np.testing.assert_array_equal(p["b_hn"], jnp.full((2,), 30.0))


# ----------------------------------------------------------------- flax.linen


FLAX_CELLS = {"lstm": (nn.LSTMCell, lambda: (jnp.zeros((1, H)), jnp.zeros((1, H)))),
              "gru": (nn.GRUCell, lambda: jnp.zeros((1, H))),
              "rnn": (nn.SimpleCell, lambda: jnp.zeros((1, H)))}


def test_flax_preset_equals_flax_linens_own_cell_init(cell_name):
    """Bit for bit: the preset draws each kernel with the key flax derives for it."""
    flax_cls, carry = FLAX_CELLS[cell_name]
    theirs = flax_cls(features=H).init(KEY, carry(), jnp.zeros((1, D)))["params"]
    ours = cells.get_cell(cell_name).init(KEY, D, H, init_preset="flax")
    expected = convert.from_flax(cell_name, theirs)
    assert ours.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(ours[k], expected[k])


@pytest.mark.slow
def test_flax_kernels_are_lecun_normal_and_recurrent_blocks_orthogonal(cell_name):
    """What the equality above implies, at H=512: lecun_normal (variance 1/D, truncated at
    2σ of the untruncated normal), orthogonal (H, H) blocks, zero biases."""
    H_ = 512
    p, G = init(cell_name, "flax", hidden=H_), GATES[cell_name]
    assert_moments(p["W_x"], 0.0, 1 / D, kurtosis=3.0)  # truncated at ±2σ: kurtosis < 3
    assert np.abs(p["W_x"]).max() <= 2 / math.sqrt(D) / 0.87962566103423978 + 1e-6
    for g in range(G):
        block = p["W_h"][:, g * H_:(g + 1) * H_]
        np.testing.assert_allclose(block.T @ block, np.eye(H_), atol=1e-5)
    assert np.all(p["b"] == 0)


# ----------------------------------------------------------------- chrono


def chrono_check(b, tmax):
    """b = log u, u ~ U(1, T_max − 1): range, and a KS test of e^b."""
    assert b.min() >= 0 and b.max() <= math.log(tmax - 1) + 1e-6
    assert ks_p(np.exp(b), stats.uniform(loc=1, scale=tmax - 2)) > 0.01


@pytest.mark.parametrize("tmax", [3.0, 100.0, 1000.0])
def test_chrono_bias_is_the_log_of_a_uniform_on_1_to_tmax_minus_1(tmax):
    b = np.asarray(cells.chrono_bias(KEY, 8192, tmax, jnp.float32), np.float64)
    chrono_check(b, tmax)
    assert ks_p(b, stats.uniform(loc=0, scale=math.log(tmax - 1))) < 1e-3  # b itself is not U


@pytest.mark.parametrize("preset", cells.PRESETS)
@pytest.mark.parametrize("h_", [H, pytest.param(512, marks=pytest.mark.slow)])
def test_lstm_chrono_forget_and_input_gates_on_any_preset(preset, h_):
    tmax = 100.0
    plain = init("lstm", preset, hidden=h_)
    p = init("lstm", preset, hidden=h_, forget_bias="chrono", chrono_tmax=tmax)
    b_i, b_f = p["b"][:h_], p["b"][h_:2 * h_]
    chrono_check(b_f, tmax)
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(p["b"][2 * h_:], plain["b"][2 * h_:])  # g, o as the preset
    for k in ("W_x", "W_h"):  # chrono draws from its own stream: the weights do not move
        np.testing.assert_array_equal(p[k], plain[k])


def test_gru_chrono_update_gate_keeps_h():
    """seqjax's z multiplies h_{t−1}: it plays the forget gate, so b_z = +log u."""
    tmax = 40.0
    p = init("gru", "seqjax", update_bias="chrono", chrono_tmax=tmax)
    chrono_check(p["b"][H:2 * H], tmax)
    assert np.all(p["b"][:H] == 0) and np.all(p["b"][2 * H:] == 0) and np.all(p["b_hn"] == 0)


def test_mingru_chrono_is_negative_since_one_minus_z_keeps_h():
    p = init("mingru", "seqjax", update_bias="chrono", chrono_tmax=100.0)
    chrono_check(-p["b"][:H], 100.0)
    assert np.all(p["b"][H:] == 0)


def test_minlstm_chrono_gives_the_lstms_forget_gate():
    """b_i = −b_f makes f' = σ(b_f)/(σ(b_f) + σ(−b_f)) = σ(b_f) at zero input."""
    p = init("minlstm", "seqjax", forget_bias="chrono", chrono_tmax=100.0)
    b_f, b_i = p["b"][:H], p["b"][H:2 * H]
    chrono_check(b_f, 100.0)
    np.testing.assert_array_equal(b_i, -b_f)
    a, _ = cells.get_cell("minlstm", log_space=False)._coefficients(
        {}, jnp.asarray(p["b"], jnp.float32)[None])
    np.testing.assert_allclose(a[0], 1 / (1 + np.exp(-b_f)), rtol=1e-5)


def test_numeric_gate_biases_keep_their_meaning():
    assert np.all(init("lstm", "seqjax")["b"][H:2 * H] == 1.0)
    p = cells.get_cell("gru").init(KEY, D, H, update_bias=-1.5)
    np.testing.assert_array_equal(p["b"], [0] * H + [-1.5] * H + [0] * H)


# ----------------------------------------------------------------- errors


def test_errors_name_the_value_and_the_choices():
    lstm = cells.get_cell("lstm")
    with pytest.raises(ValueError, match=r"unknown init_preset 'pytorch'; allowed: flax, keras, "
                                         r"seqjax, torch"):
        lstm.init(KEY, 2, 3, init_preset="pytorch")
    for name in ("mingru", "minlstm", "lru", "lif"):
        with pytest.raises(ValueError, match=rf"init_preset 'keras' covers the cells gru, lstm, "
                                             rf"rnn, not '{name}'; the one preset of '{name}' "
                                             rf"is 'seqjax'"):
            cells.get_cell(name).init(KEY, 2, 4, init_preset="keras")
    with pytest.raises(ValueError, match=r"forget_bias must be a number or 'chrono', got 'crono'"):
        lstm.init(KEY, 2, 3, forget_bias="crono")
    with pytest.raises(ValueError, match=r"update_bias must be a number or 'chrono', got None"):
        cells.get_cell("gru").init(KEY, 2, 3, update_bias=None)
    with pytest.raises(ValueError, match=r"chrono_tmax must be a number >= 2 .* got 1.5"):
        cells.get_cell("mingru").init(KEY, 2, 3, update_bias="chrono", chrono_tmax=1.5)
    with pytest.raises(ValueError, match=r"unknown library preset 'seqjax'"):
        presets.library_params("seqjax", "lstm", KEY, 2, 3)


@pytest.mark.parametrize("fields, message", [
    ({"init_preset": "tf"}, r"unknown model.init_preset 'tf'; allowed: flax, keras, seqjax, torch"),
    ({"init_preset": "torch", "cell": "lru"}, r"model.init_preset 'torch' covers the cells"),
    ({"forget_bias": "chrono!"}, r"model.forget_bias must be a number or 'chrono'"),
    ({"update_bias": [1.0]}, r"model.update_bias must be a number or 'chrono'"),
    ({"chrono_tmax": 0}, r"model.chrono_tmax must be a number >= 2"),
    ({"init_preset": "torch", "recurrent_init": "identity", "forget_bias": 2.0},
     r"model.init_preset='torch' sets the cell's weights and biases itself, so "
     r"model.forget_bias=2.0, model.recurrent_init='identity' would not be used"),
    ({"cell": "minlstm", "forget_bias": "chrono", "input_bias": -1.0},
     r"model.input_bias=-1.0 would not be used"),
])
def test_config_validation(fields, message):
    c = config_lib.base_config()
    c.model.update(fields)
    with pytest.raises(ValueError, match=message):
        config_lib.validate(c)


def test_config_takes_chrono_and_presets_and_what_they_leave_unused_at_defaults():
    c = config_lib.base_config()
    c.model.update(init_preset="keras", forget_bias="chrono", update_bias="chrono",
                   chrono_tmax=50.0)
    config_lib.validate(c)
    c.model.update(cell="gru", forget_bias=3.0)  # the gru does not use forget_bias
    config_lib.validate(c)
    c.model.update(init_preset="seqjax", forget_bias=2.5, update_bias=-1)  # numbers again
    config_lib.validate(c)
