"""Strict numerics for every test, and 8 fake CPU devices so sharding runs on a laptop.

These settings must be made before JAX initialises a backend, which is why they live
here, at import time of the test session.

In-process training runs use ONE of the 8 devices where their config says ``mesh.data=-1``
(all): an 8-way data-parallel step costs a quarter more time on 2 cores and tests nothing new
outside the tests of sharding, which are marked ``all_devices`` and get the whole mesh.

Compile time dominates this suite (hundreds of tiny jitted functions), so tests ask XLA's
CPU backend for optimisation level 0: about 30% less CPU time, same IEEE arithmetic (XLA
does not enable fast-math on CPU), and nothing here is timed. Set SEQJAX_TEST_XLA_OPT=1
to run the suite with the default optimisation instead.
"""

import os
import shutil
import tempfile

if os.environ.get("SEQJAX_TEST_XLA_OPT") != "1":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_backend_optimization_level=0").strip()

# The command line's persistent compilation cache stays out of the user's home in tests
# (the reliability drills give their children a cache of their own).
os.environ.setdefault("SEQJAX_COMPILATION_CACHE", "off")

import jax  # noqa: E402

# One persistent compilation cache for the session, shared by the xdist workers (they inherit
# the directory from the controller's environment) and removed at the end: the suite compiles
# the same smoke programs many times over (every resume, NaN and workdir test trains the same
# config), and a hit returns the very executable a compile would. Child processes of the
# drills keep their own cache (they are given JAX_COMPILATION_CACHE_DIR explicitly).
if "SEQJAX_TEST_JAX_CACHE" not in os.environ:
    os.environ["SEQJAX_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="seqjax-test-jax-cache-")
    _OWN_CACHE = True
else:
    _OWN_CACHE = False
jax.config.update("jax_compilation_cache_dir", os.environ["SEQJAX_TEST_JAX_CACHE"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


_ALL_DEVICES = [False]  # set for the duration of a test marked all_devices


@pytest.fixture(scope="session", autouse=True)
def _one_device_mesh():
    """``mesh.data=-1`` means one device here, except in tests marked ``all_devices``. Patched
    for the whole session, so that module-scoped fixtures (set up before any function-scoped
    one) train like the tests that compare against them."""
    from seqjax import sharding
    make_mesh = sharding.make_mesh

    def mesh(mesh_config=None, devices=None):
        if devices is None and not _ALL_DEVICES[0] and (
                mesh_config is None or int(mesh_config.data) == -1):
            devices = jax.devices()[:1 if mesh_config is None else int(mesh_config.model)]
        return make_mesh(mesh_config, devices)

    sharding.make_mesh = mesh
    yield
    sharding.make_mesh = make_mesh


@pytest.fixture(autouse=True)
def _all_devices_if_marked(request):
    _ALL_DEVICES[0] = request.node.get_closest_marker("all_devices") is not None
    yield
    _ALL_DEVICES[0] = False


def pytest_unconfigure(config):
    """The process that made the session's compilation cache removes it."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ.pop("SEQJAX_TEST_JAX_CACHE"), ignore_errors=True)
