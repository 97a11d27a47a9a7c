"""The newer cells (minGRU, minLSTM, LRU, LIF) and the parallel (associative-scan) unroll.

References: each step against its equations in numpy; lax.scan against the Python loop
(``unroll_reference``); the parallel unroll against lax.scan; finite differences in float64;
closed forms (the surrogate derivative, the LRU ring).

Compile budget (the whole file ≲ 60 s on 2 cores): a reduced product — two unroll variants
per cell, (forward, full lengths, no remat, unroll 1) and (reverse, ragged lengths, remat,
unroll 2), which between them cover every value of each knob; scan results are cached and
shared by the loop and the parallel comparisons.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells, diagnostics
from seqjax import unroll as U
from tests.helpers import RAGGED

# label -> (cell name, step options). LIF gets a low threshold so that spikes happen.
CASES = {
    "mingru": ("mingru", {}),
    "minlstm": ("minlstm", {}),
    "lru": ("lru", {}),
    "lif": ("lif", {"beta": 0.8, "threshold": 0.5, "slope": 5.0}),
}
SUITE = ("mingru", "minlstm", "lru", "lif")  # one case per new cell
# (reverse, lengths, remat, unroll): between them every value of each knob.
VARIANTS = {"fwd": (False, None, False, 1), "rev_ragged_remat": (True, tuple(RAGGED), True, 2)}


def random_params(cell, D, H, rng):
    """Params of the shapes ``cell.init`` gives, entries 0.5·N(0, 1) from numpy's ``rng``."""
    shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), D, H))
    return jax.tree.map(
        lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), jnp.float32), shapes)


def make_problem(label, *, B=3, T=6, D=3, H=4, seed=0):
    """A cell with every parameter random (numpy's RNG: no JAX compiles), inputs, a carry."""
    name, step_opts = CASES[label]
    cell = cells.get_cell(name, **step_opts)
    rng = np.random.default_rng(seed)
    normal = lambda shape, scale: jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)
    params = random_params(cell, D, H, rng)
    xs = normal((B, T, D), 1.0)
    carry = jax.tree.map(lambda z: normal(z.shape, 0.3),
                         jax.eval_shape(lambda: cell.initial_carry(B, H)))
    return cell, params, xs, carry


def loss_and_outputs(run, params, xs, carry):
    final, hs = run(params, xs, carry)
    w_h = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    w_c = sum(jnp.sum(jnp.sin(leaf) * (i + 1.0)) for i, leaf in enumerate(jax.tree.leaves(final)))
    return jnp.sum(hs * w_h) + w_c, (final, hs)


def outputs_and_grads(run, params, xs, carry, *, jit=True):
    f = jax.value_and_grad(functools.partial(loss_and_outputs, run), argnums=(0, 1, 2),
                           has_aux=True)
    (_, out), grads = (jax.jit(f) if jit else f)(params, xs, carry)
    return out, grads


class JittedStep:
    """The cell, with ``step`` jitted (for the Python-loop reference)."""

    def __init__(self, cell):
        self._cell, self.step = cell, jax.jit(cell.step)

    def __getattr__(self, name):
        return getattr(self._cell, name)


def unroll_kw(variant):
    reverse, lengths, remat, unroll = VARIANTS[variant]
    return dict(reverse=reverse, remat=remat, unroll=unroll,
                lengths=None if lengths is None else jnp.array(lengths))


@functools.lru_cache(maxsize=None)
def run_impl(label, impl, variant):
    """(outputs, grads) of ``unroll(..., impl=impl)``; impl="loop" is ``unroll_reference``.

    The loop stays in Python and is not compiled as a whole (that is several times slower
    for these tiny shapes); only the cell's step is jitted, once per cell.
    """
    cell, params, xs, carry = make_problem(label)
    kw = unroll_kw(variant)
    if impl == "loop":
        lengths = None if kw["lengths"] is None else np.asarray(kw["lengths"])
        run = lambda p, x, c: U.unroll_reference(JittedStep(cell), p, x, c, lengths=lengths,
                                                 reverse=kw["reverse"])
        return outputs_and_grads(run, params, xs, carry, jit=False)
    run = lambda p, x, c: U.unroll(cell, p, x, c, impl=impl, **kw)
    return outputs_and_grads(run, params, xs, carry)


def assert_trees_close(a, b, **tol):
    tol = {"rtol": 2e-5, "atol": 2e-6} | tol
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


# ----------------------------------------------------------------- the common suite


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("label", SUITE)
def test_scan_equals_python_loop(label, variant):
    out, grads = run_impl(label, "scan", variant)
    ref_out, ref_grads = run_impl(label, "loop", variant)
    assert_trees_close(out, ref_out)
    assert_trees_close(grads, ref_grads, rtol=1e-4, atol=1e-5)
    if variant != "fwd":  # padded steps emit zeros; the empty example keeps its carry
        hs = np.asarray(out[1])
        assert np.all(hs[1] == 0.0) and np.all(hs[2, 3:] == 0.0)
        _, _, _, carry = make_problem(label)
        jax.tree.map(lambda f, c: np.testing.assert_array_equal(f[1], c[1]), out[0], carry)


# ----------------------------------------------------------------- parallel scan

# The parallel code is cell-agnostic given (a, b): minLSTM runs one variant (its log-space
# coefficients are checked against its linear ones below).
PARALLEL_CASES = [(label, impl, v) for label, impl in
                  (("mingru", "parallel"), ("lru", "parallel"), ("mingru", "parallel_log"))
                  for v in sorted(VARIANTS)] + [("minlstm", "parallel", "rev_ragged_remat")]


@pytest.mark.parametrize("label,impl,variant", PARALLEL_CASES)
def test_parallel_equals_sequential_scan(label, impl, variant):
    out, grads = run_impl(label, impl, variant)
    ref_out, ref_grads = run_impl(label, "scan", variant)
    assert_trees_close(out, ref_out)
    assert_trees_close(grads, ref_grads, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("label,impl", [("lru", "parallel"), ("mingru", "parallel_log")])
def test_parallel_probes_give_the_scans_hidden_grads(label, impl):
    cell, params, xs, carry = make_problem(label)
    loss = lambda final, hs: jnp.sum(jnp.sin(hs)) + jnp.sum(cell.hidden(final) ** 2)
    kw = dict(lengths=jnp.array(RAGGED), reverse=True)
    g_par = jax.jit(lambda p: diagnostics.hidden_grads(cell, p, xs, loss, carry, impl=impl,
                                                       **kw))(params)
    g_seq = jax.jit(lambda p: diagnostics.hidden_grads(cell, p, xs, loss, carry, **kw))(params)
    assert float(jnp.max(jnp.abs(g_seq))) > 0.1
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-4, atol=1e-6)


def test_parallel_gradients_against_finite_differences():
    """LRU (complex state), reverse, ragged, float64: ⟨∇L, v⟩ against central differences
    of L along random directions v, all from one compiled function (check_grads would
    compile the parallel graph three times, and it compiles slowly on CPU)."""
    rng = np.random.default_rng(0)
    as64 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float64), tree)
    with jax.enable_x64(True):
        cell, *args = make_problem("lru")
        args = as64(tuple(args))  # (params, xs, carry)
        kw = dict(lengths=jnp.array(RAGGED), reverse=True)
        loss = lambda a: loss_and_outputs(
            lambda p, x, c: U.unroll(cell, p, x, c, impl="parallel", **kw), *a)[0]

        @jax.jit
        def shifted_loss_and_slope(a, v, t):
            grad = jax.grad(loss)(a)
            slope = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(v)))
            return loss(jax.tree.map(lambda x, d: x + t * d, a, v)), slope

        eps = 1e-6
        for _ in range(3):
            v = jax.tree.map(lambda a: rng.standard_normal(a.shape), args)
            (up, slope), (down, _) = [shifted_loss_and_slope(args, v, t) for t in (eps, -eps)]
            np.testing.assert_allclose(slope, (up - down) / (2 * eps), rtol=1e-6)


def test_parallel_is_finite_and_exact_when_gate_products_underflow():
    """Gates that keep ~3e-4 per step: products of 16 gates (~1e-56) underflow float32."""
    cell = cells.get_cell("mingru")
    params = cell.init(jax.random.key(0), 2, 8, update_bias=8.0)
    xs = jax.random.normal(jax.random.key(1), (2, 16, 2))

    def values_and_grads(p):
        loss = lambda q, impl: jnp.sum(U.unroll(cell, q, xs, impl=impl)[1] ** 2)
        return [jax.value_and_grad(loss)(p, impl) for impl in ("scan", "parallel")]

    (v_seq, g_seq), (v_par, g_par) = jax.jit(values_and_grads)(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(g_par))
    np.testing.assert_allclose(v_par, v_seq, rtol=1e-5)
    assert_trees_close(g_par, g_seq, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ("lstm", "lif"))
def test_parallel_rejects_nonlinear_cells(name):
    cell = cells.get_cell(name)
    params = random_params(cell, 2, 4, np.random.default_rng(0))
    for impl in ("parallel", "parallel_log"):
        with pytest.raises(ValueError, match=rf"impl='{impl}' needs a cell whose recurrence is "
                                             rf"linear.*cell '{name}' is not\. Cells it runs: "
                                             r"lru, mingru, minlstm; use impl='scan'"):
            U.unroll(cell, params, jnp.ones((1, 3, 2)), impl=impl)


def test_parallel_log_rejects_cells_without_log_space():
    for name, opts in (("lru", {}), ("mingru", {"log_space": False})):
        cell = cells.get_cell(name, **opts)
        params = random_params(cell, 2, 4, np.random.default_rng(0))
        with pytest.raises(ValueError, match=rf"impl='parallel_log' needs a cell built with "
                                             rf"log_space=True.*cell '{name}' has log_space=False"):
            U.unroll(cell, params, jnp.ones((1, 3, 2)), impl="parallel_log")
    with pytest.raises(ValueError, match=r"impl='parallel' needs at least one timestep"):
        U.unroll(cell, params, jnp.ones((1, 0, 2)), impl="parallel")


def test_log_space_coefficients_equal_linear_ones():
    for name in ("mingru", "minlstm"):
        cell, params, xs, _ = make_problem(name)
        xs = 4.0 * xs  # reach both branches of g and saturated gates
        a, b = cell.recurrence(params, xs)
        la, lb = cell.log_recurrence(params, xs)
        np.testing.assert_allclose(jnp.exp(la), a, rtol=1e-6)
        np.testing.assert_allclose(jnp.exp(lb), b, rtol=1e-5)
    with pytest.raises(ValueError, match="log_space=False"):
        cells.get_cell("mingru", log_space=False).log_recurrence(params, xs)


# ----------------------------------------------------------------- steps against equations


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_g(z):
    return np.where(z >= 0, z + 0.5, sigmoid(z))


@pytest.mark.parametrize("log_space", [True, False])
def test_mingru_and_minlstm_steps_match_their_equations(log_space):
    phi = np_g if log_space else (lambda z: z)
    for name, n in (("mingru", 2), ("minlstm", 3)):
        cell, params, xs, h = make_problem(name)
        cell = cells.get_cell(name, log_space=log_space)
        x, h = 3.0 * np.asarray(xs[:, 0], np.float64), np.asarray(h, np.float64)
        z = x @ np.asarray(params["W_x"], np.float64) + np.asarray(params["b"], np.float64)
        blocks = np.split(z, n, axis=-1)
        if name == "mingru":
            k, c = blocks
            expected = (1 - sigmoid(k)) * h + sigmoid(k) * phi(c)
        else:
            f, i, c = sigmoid(blocks[0]), sigmoid(blocks[1]), blocks[2]
            expected = f / (f + i) * h + i / (f + i) * phi(c)
        new, out = cell.step(params, jnp.asarray(h, jnp.float32), jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(new, out)


def test_lru_step_and_output_match_complex_equations():
    cell, params, xs, h = make_problem("lru")
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    N = p["nu_log"].shape[0]
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    B_NxD = (p["W_x"][:, :N] + 1j * p["W_x"][:, N:]).T
    x_state = np.asarray(h[:, :N]) + 1j * np.asarray(h[:, N:])
    u = np.asarray(xs[:, 0], np.float64)
    x_new = lam * x_state + np.exp(p["gamma_log"]) * (u @ B_NxD.T)
    new, out = cell.step(params, h, xs[:, 0])
    np.testing.assert_allclose(new, np.concatenate([x_new.real, x_new.imag], -1), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(new, out)
    C = (p["C_re"] + 1j * p["C_im"]).T  # (D, N): y = Re(C x) + D u
    y = cell.output(params, out[:, None], xs[:, :1])[:, 0]
    np.testing.assert_allclose(y, (x_new @ C.T).real + p["D"] * u, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_lif_step_matches_its_equations(reset):
    cell, params, xs, carry = make_problem("lif")
    cell = cells.get_cell("lif", beta=0.8, threshold=0.5, slope=5.0, reset=reset)
    carry = cells.LIFCarry(v=carry.v, s=(carry.s > 0).astype(jnp.float32))  # real spikes
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    v0, s0, x = (np.asarray(a, np.float64) for a in (carry.v, carry.s, xs[:, 0]))
    current = x @ p["W_x"] + s0 @ p["W_h"] + p["b"]
    v = 0.8 * v0 + current - 0.5 * s0 if reset == "subtract" else 0.8 * (1 - s0) * v0 + current
    new, out = cell.step(params, carry, xs[:, 0])
    np.testing.assert_allclose(new.v, v, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out, (v > 0.5).astype(np.float32))


# ----------------------------------------------------------------- LRU ring, LIF spikes


@pytest.mark.parametrize("r_min,r_max,max_phase", [(0.9, 0.999, 2 * math.pi), (0.0, 0.5, 0.3)])
def test_lru_init_puts_eigenvalues_on_the_ring(r_min, r_max, max_phase):
    cell = cells.get_cell("lru")
    params = cell.init(jax.random.key(0), 3, 8192, r_min=r_min, r_max=r_max, max_phase=max_phase)
    lam = np.asarray(cell.eigenvalues(params))
    modulus = np.abs(lam)
    assert lam.shape == (4096,)
    assert np.all(modulus >= r_min * (1 - 1e-6)) and np.all(modulus <= r_max * (1 + 1e-6))
    # |λ|² is uniform on [r_min², r_max²] (uniform on the ring's area): quantiles match.
    q = np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(np.quantile(modulus ** 2, q),
                               r_min ** 2 + q * (r_max ** 2 - r_min ** 2),
                               atol=0.03 * (r_max ** 2 - r_min ** 2))
    phase = np.exp(np.asarray(params["theta_log"]))
    assert phase.min() >= 0 and phase.max() <= max_phase
    assert phase.max() > 0.95 * max_phase
    np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - modulus ** 2),
                               rtol=1e-4, atol=1e-6)


def test_lif_spikes_are_exactly_the_threshold_crossings():
    cell, params, xs, _ = make_problem("lif", T=30)
    carry = cell.initial_carry(3, 4)
    spikes, vs = [], []
    for t in range(xs.shape[1]):
        carry, s = cell.step(params, carry, xs[:, t])
        spikes.append(np.asarray(s))
        vs.append(np.asarray(carry.v))
    spikes, vs = np.stack(spikes), np.stack(vs)
    np.testing.assert_array_equal(spikes, (vs > 0.5).astype(np.float32))
    assert 0.05 < spikes.mean() < 0.95  # both outcomes occur


def test_lif_surrogate_gradient_is_the_fast_sigmoid_formula():
    u = jnp.array([-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.2, 4.0])
    for slope in (1.0, 25.0):
        grads = jax.vmap(jax.grad(lambda v: cells.spike(v, slope)))(u)
        np.testing.assert_allclose(grads, 1.0 / (1.0 + slope * np.abs(np.asarray(u))) ** 2,
                                   rtol=1e-6)
        np.testing.assert_array_equal(cells.spike(u, slope), [0, 0, 0, 0, 1, 1, 1])
    # Through one step: ∂s/∂(x W_x + b) is diagonal with the formula at v − ϑ.
    cell, params, xs, carry = make_problem("lif")
    xw = cell.project_inputs(params, xs[:1, 0])
    carry = jax.tree.map(lambda a: a[:1], carry)
    J = jax.jacobian(lambda z: cell.step_projected(params, carry, z)[1][0])(xw)[:, 0]
    v = cell.step_projected(params, carry, xw)[0].v[0]
    np.testing.assert_allclose(J, np.diag(1.0 / (1.0 + 5.0 * np.abs(v - 0.5)) ** 2), rtol=1e-6)


# ----------------------------------------------------------------- spike encoders


def test_rate_encode_fires_with_the_given_probability():
    x = jnp.array([[0.0, 0.25, 0.5, 1.0, 1.7, -0.3]])
    s = cells.rate_encode(jax.random.key(0), x, 4000)
    assert s.shape == (1, 4000, 6) and s.dtype == x.dtype
    assert set(np.unique(np.asarray(s))) <= {0.0, 1.0}
    rate = np.asarray(s.mean(axis=1))[0]
    p = np.clip(np.asarray(x)[0], 0, 1)
    np.testing.assert_allclose(rate, p, atol=5 * np.sqrt(0.25 / 4000))
    assert rate[0] == 0 and rate[5] == 0 and rate[3] == 1 and rate[4] == 1
    half = cells.rate_encode(jax.random.key(0), x, 4000, gain=0.5).mean(axis=1)[0]
    np.testing.assert_allclose(half[3], 0.5, atol=5 * np.sqrt(0.25 / 4000))


def test_latency_encode_fires_once_earlier_for_larger_values():
    x = jnp.array([[1.0, 0.5, 0.8, 0.0, 0.005]])
    s = np.asarray(cells.latency_encode(x, 11))[0]  # (T, D)
    assert s.shape == (11, 5)
    np.testing.assert_array_equal(s.sum(axis=0), [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(s.argmax(axis=0)[:3], [0, 5, 2])
    rows = np.asarray(cells.latency_encode(jnp.ones((2, 3, 4)), 7))
    assert rows.shape == (2, 3, 7, 4) and np.all(rows[:, :, 0] == 1)


# ----------------------------------------------------------------- registry, options, errors


def test_registry_and_defaults():
    for name in ("mingru", "minlstm", "lru", "lif"):
        assert cells.CELLS[name] is type(cells.get_cell(name))
    assert cells.get_cell("mingru").log_space and cells.get_cell("minlstm").log_space
    lif = cells.get_cell("lif")
    assert (lif.beta, lif.threshold, lif.slope, lif.reset) == (0.9, 1.0, 25.0, "subtract")
    p = cells.get_cell("minlstm").init(jax.random.key(0), 2, 3, forget_bias=2.0, input_bias=-1.0)
    np.testing.assert_array_equal(p["b"], [2, 2, 2, -1, -1, -1, 0, 0, 0])
    p = cells.get_cell("mingru").init(jax.random.key(0), 2, 3, update_bias=-1.0)
    np.testing.assert_array_equal(p["b"], [-1, -1, -1, 0, 0, 0])
    for name in ("mingru", "minlstm", "lru", "lif"):
        cell = cells.get_cell(name)
        assert cell.hidden_size(jax.eval_shape(lambda: cell.init(jax.random.key(0), 3, 4))) == 4


def test_bad_options_give_clear_errors():
    lru = cells.get_cell("lru")
    with pytest.raises(ValueError, match=r"lru needs an even hidden size .*got hidden=5"):
        lru.init(jax.random.key(0), 2, 5)
    with pytest.raises(ValueError, match=r"0 <= r_min <= r_max < 1, got r_min=0.9, r_max=0.5"):
        lru.init(jax.random.key(0), 2, 4, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match=r"0 <= r_min <= r_max < 1, got r_min=0.5, r_max=1.0"):
        lru.init(jax.random.key(0), 2, 4, r_min=0.5, r_max=1.0)
    with pytest.raises(ValueError, match=r"max_phase > 0, got 0.0"):
        lru.init(jax.random.key(0), 2, 4, max_phase=0.0)
    with pytest.raises(ValueError,
                       match=r"cell 'mingru' has no init option\(s\) \['forget_bias'\]"):
        cells.get_cell("mingru").init(jax.random.key(0), 2, 4, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"cell 'lru' has no option\(s\) \['log_space'\]"):
        cells.get_cell("lru", log_space=True)
    with pytest.raises(ValueError, match=r"unknown reset 'hard'; allowed: subtract, zero"):
        cells.get_cell("lif", reset="hard")
    with pytest.raises(ValueError, match=r"lif needs 0 <= beta <= 1, got beta=1.5"):
        cells.get_cell("lif", beta=1.5)
    with pytest.raises(ValueError, match=r"lif needs slope > 0, got slope=0.0"):
        cells.get_cell("lif", slope=0.0)
    with pytest.raises(ValueError, match=r"num_steps must be a positive integer, got 0"):
        cells.rate_encode(jax.random.key(0), jnp.ones((1, 2)), 0)
    with pytest.raises(ValueError, match=r"gain must be >= 0, got -1.0"):
        cells.rate_encode(jax.random.key(0), jnp.ones((1, 2)), 3, gain=-1.0)
    with pytest.raises(ValueError, match=r"num_steps must be a positive integer, got 2.5"):
        cells.latency_encode(jnp.ones((1, 2)), 2.5)


# --------------------------------------------------------------------------- LIF in a model


def _lif_model(encoding, steps, readout="all"):
    from seqjax import config as C, models
    from seqjax.tasks.base import InputSpec
    m = C.base_config().model
    m.cell, m.hidden, m.impl = "lif", 6, "scan"
    m.spike_encoding, m.spike_steps = encoding, steps
    return models.SequenceModel(spec=InputSpec("features", 3, 2, readout, seq_len=5), model_config=m), m


def test_lif_model_latency_encodes_and_reports_its_spike_rate():
    """The model's inputs become latency-coded sub-steps; the sown spike rate is the mean of
    the spikes an independent unroll of the same encoded inputs emits."""
    model, m = _lif_model("latency", 3)
    x = jax.random.uniform(jax.random.key(1), (4, 5, 3))
    lengths = jnp.array([5, 3, 1, 4], jnp.int32)
    batch = {"inputs": x, "lengths": lengths}
    variables = model.init(jax.random.key(0), batch)
    out, sown = model.apply(variables, batch, mutable=["intermediates"])
    assert out.shape == (4, 5, 2)  # one output per input step, not per sub-step

    encoded = cells.latency_encode(x, 3).reshape(4, 15, 3)
    cell = cells.get_cell("lif", beta=m.beta, threshold=m.threshold, slope=m.slope)
    p = variables["params"]["core"]["layer0"]
    _, hs = U.unroll_reference(cell, p, encoded, cell.initial_carry(4, 6), lengths=lengths * 3)
    valid = np.arange(15)[None, :] < 3 * np.asarray(lengths)[:, None]
    expected = np.asarray(hs)[valid].mean()
    rate = float(sown["intermediates"]["spike_rate"][0])
    np.testing.assert_allclose(rate, expected, rtol=1e-6)
    # the head reads the last sub-step of each input step
    head = variables["params"]["head"]
    last = np.asarray(hs)[:, 2::3]
    np.testing.assert_allclose(out, last @ np.asarray(head["kernel"]) + np.asarray(head["bias"]),
                               rtol=1e-5, atol=1e-6)


def test_lif_model_rate_encoding_is_random_in_training_fixed_in_eval():
    model, _ = _lif_model("rate", 2, readout="last")
    batch = {"inputs": jnp.full((8, 4, 3), 0.5)}
    variables = model.init(jax.random.key(0), batch)
    run = lambda **kw: model.apply(variables, batch, mutable=["intermediates"], **kw)[0]
    np.testing.assert_array_equal(run(), run())  # eval: a fixed code
    a = run(train=True, rngs={"dropout": jax.random.key(1)})
    b = run(train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)


def test_spike_encoding_config_errors_name_the_choices():
    from seqjax import config as C
    c = C.base_config()
    c.model.spike_encoding = "poisson"
    with pytest.raises(ValueError, match="poisson.*latency"):
        C.validate(c)
    c.model.spike_encoding, c.model.spike_steps = "rate", 0
    with pytest.raises(ValueError, match="spike_steps"):
        C.validate(c)
