"""``seqjax.unroll.resolve_impl``: the one place that picks the unroll implementation."""

import jax
import pytest

from seqjax import unroll as U

# (impl, cell, backend, vmapped, probes) -> the impl that runs
CASES = [
    # "auto": the backend's measured default for the cells it runs, else the plain scan
    ("auto", "lstm", "cpu", False, False, "fused"),
    ("auto", "gru", "cpu", False, False, "fused"),
    ("auto", "rnn", "cpu", False, False, "fused"),
    ("auto", "mingru", "cpu", False, False, "scan"),
    ("auto", "minlstm", "cpu", False, False, "scan"),
    ("auto", "lru", "cpu", False, False, "scan"),
    ("auto", "lif", "cpu", False, False, "scan"),
    ("auto", "lstm", "gpu", False, False, "scan"),
    ("auto", "lstm", "tpu", False, False, "scan"),
    ("auto", "lstm", "some-new-backend", False, False, "scan"),
    # vmapped members on CPU: the plain scan ("auto" only)
    ("auto", "lstm", "cpu", True, False, "scan"),
    ("auto", "gru", "gpu", True, False, "scan"),
    ("fused", "lstm", "cpu", True, False, "fused"),
    ("fused_chunked", "rnn", "cpu", True, False, "fused_chunked"),
    # probes: the plain scan, whatever was asked for
    ("auto", "lstm", "cpu", False, True, "scan"),
    ("fused", "lstm", "cpu", False, True, "scan"),
    ("parallel_log", "minlstm", "gpu", False, True, "scan"),
    ("auto", "lstm", "cpu", True, True, "scan"),
    # an explicit impl is kept as it is
    ("scan", "lstm", "cpu", False, False, "scan"),
    ("fused", "gru", "gpu", False, False, "fused"),
    ("fused_chunked", "lstm", "cpu", False, False, "fused_chunked"),
    ("parallel", "mingru", "cpu", False, False, "parallel"),
    ("parallel_log", "minlstm", "tpu", True, False, "parallel_log"),
]


@pytest.mark.parametrize("impl,cell,backend,vmapped,probes,expected", CASES)
def test_resolve_impl(impl, cell, backend, vmapped, probes, expected):
    got = U.resolve_impl(impl, cell, backend=backend, vmapped=vmapped, probes=probes)
    assert got == expected
    assert got in U.IMPLS
    # a resolved name resolves to itself: callers may resolve early (e.g. for vmapped members)
    assert U.resolve_impl(got, cell, backend=backend, vmapped=vmapped, probes=probes) == got


def test_backend_defaults_to_jax_default_backend():
    backend = jax.default_backend()
    for cell in ("lstm", "mingru"):
        assert U.resolve_impl("auto", cell) == U.resolve_impl("auto", cell, backend=backend)


@pytest.mark.parametrize("probes", [False, True])
def test_unknown_impl_names_the_value_and_the_allowed_ones(probes):
    with pytest.raises(ValueError, match=r"unknown unroll impl 'fsued'; allowed: auto, fused, "
                                         r"fused_chunked, parallel, parallel_chunked, "
                                         r"parallel_log, scan"):
        U.resolve_impl("fsued", "lstm", backend="cpu", probes=probes)
