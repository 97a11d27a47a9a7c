"""experiments.pixel_mnist_init: the zero-state Jacobian of the LSTM against its closed form."""

import jax
import numpy as np
import pytest

from experiments import pixel_mnist_init as P
from seqjax import cells


@pytest.mark.parametrize("opts", [{"forget_bias": 0.5}, {"forget_bias": 2.0},
                                  {"forget_bias": "chrono", "chrono_tmax": 784.0}])
def test_zero_state_eigenvalues_equal_the_closed_form(opts):
    params = cells.get_cell("lstm").init(jax.random.key(3), 1, 8, **opts)
    J = np.asarray(P.zero_state_jacobian(params), np.float64)
    measured = np.sort(np.abs(np.linalg.eigvals(J)))[-8:]   # the other 8 are zero
    closed = np.sort(np.abs(P.closed_form_eigenvalues(params)))
    np.testing.assert_allclose(measured, closed, rtol=1e-4, atol=1e-6)


def test_radius_crosses_one_near_forget_bias_ln3():
    # |f + ¼λ| ≤ σ(b_f) + ¼ with equality for λ = 1: above 1 iff σ(b_f) > ¾ (b_f > ln 3)
    def radius(fb):
        params = cells.get_cell("lstm").init(jax.random.key(0), 1, 64, forget_bias=fb)
        return np.max(np.abs(P.closed_form_eigenvalues(params)))
    assert radius(0.9) < 1.0 < radius(1.3)
    assert radius(2.0) <= 1.0 / (1.0 + np.exp(-2.0)) + 0.25 + 1e-9


def test_measure_on_a_short_sequence_reports_every_init():
    x = jax.random.uniform(jax.random.key(1), (4, 20, 1))
    y = jax.numpy.arange(4) % 10
    out = P.measure(x, y, hidden=8, inits=P.INITS[:2])
    assert set(out) == {"forget_bias=1", "forget_bias=2"}
    for r in out.values():
        assert r["radius_closed_form"] == pytest.approx(r["radius_measured"], rel=1e-4)
        assert set(r["grad_h"]) == {0, 20} and np.isfinite(r["grad_bias"])
