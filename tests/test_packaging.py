"""What an install of seqjax promises: the core with jax and numpy alone, extras that cover the
quick start's requirements, the license it declares, py.typed; where prepared datasets go, what
preparing one prints, and the entry point's persistent compilation cache."""

import os
import pathlib
import re
import subprocess
import sys
import tomllib
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# everything outside the core: the trainer, data, text, TensorFlow, and torch (benchmarks)
NOT_CORE = ("flax", "optax", "orbax", "absl", "ml_collections", "tensorflow_datasets", "grain",
            "tensorboardX", "matplotlib", "sacrebleu", "tensorflow", "torch")

CORE_ONLY = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %r:
            raise ImportError(f"{name} is not in a core-only install")
        return None

sys.meta_path.insert(0, NotInstalled())
import jax
import seqjax, seqjax.cells, seqjax.unroll, seqjax.diagnostics
from seqjax import cells, diagnostics
from seqjax.unroll import unroll

lstm = cells.get_cell("lstm")
params = lstm.init(jax.random.key(0), input_dim=2, hidden=4)
xs = jax.random.normal(jax.random.key(1), (2, 5, 2))
final, hs = unroll(lstm, params, xs)
norms = diagnostics.hidden_grad_norms(lstm, params, xs, lambda f, hs: (f.h ** 2).sum())
assert hs.shape == (2, 5, 4) and norms.shape == (2, 6), (hs.shape, norms.shape)
assert bool(jax.numpy.isfinite(norms).all())
print("core ok")
"""


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_core_imports_and_runs_with_jax_and_numpy_only(tmp_path):
    """seqjax, cells, unroll and diagnostics import and run with every other package blocked,
    as in ``pip install seqjax`` without extras."""
    out = subprocess.run([sys.executable, "-c", CORE_ONLY % (NOT_CORE,)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu"))
    assert out.returncode == 0 and "core ok" in out.stdout, out.stderr[-3000:]


TRAIN_ONLY = """
import sys

for name in ("tensorflow_datasets", "grain", "array_record", "sacrebleu", "tensorflow", "torch"):
    sys.modules[name] = None  # as if not installed: imports fail, find_spec says None
sys.argv[0] = "seqjax-train"
from seqjax import cli
cli.run()
"""


@pytest.mark.slow  # a whole CLI run; the core-only import is tested by default
def test_a_synthetic_config_runs_with_the_train_extra_alone(tmp_path):
    """``pip install seqjax[train]`` runs seqjax-train on the synthetic tasks: no TFDS, grain,
    sacrebleu, TensorFlow or torch is imported."""
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_ONLY, f"--config={ROOT / 'configs' / 'adding.py'}:smoke",
         f"--workdir={tmp_path / 'run'}", "--config.train.num_steps=2",
         "--config.train.diagnostics_every=0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
                 SEQJAX_COMPILATION_CACHE="off"))
    assert out.returncode == 0 and "final numbers:" in out.stdout, out.stderr[-3000:]


def test_core_dependencies_are_jax_and_numpy():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == {"jax", "numpy"}


def test_extras_cover_the_quick_start_and_all_is_every_extra_but_tf():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"train", "data", "text", "audio", "dev", "tf", "all"} <= set(extras)
    (all_,) = extras["all"]
    assert set(all_.partition("[")[2].rstrip("]").split(",")) == set(extras) - {"all", "tf"}
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    declared |= {_name(r) for name, reqs in extras.items() if name != "all" for r in reqs}
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    quick_start = {_name(l) for l in lines if l.split("#")[0].strip()}
    assert quick_start - declared == set(), "requirements.txt installs what no extra declares"


def test_license_file_and_py_typed_ship():
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert (ROOT / "seqjax" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["seqjax"]


@pytest.fixture
def no_tfds_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_data_dir_from_tfds_data_dir_when_set(monkeypatch, tmp_path):
    from seqjax.data import pipeline
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    assert pipeline.default_data_dir() == str(tmp_path / "tfds")
    empty = types.SimpleNamespace(data_dir="")
    assert pipeline.data_dir_of(empty) == str(tmp_path / "tfds")


def test_data_dir_in_a_clone(no_tfds_env):
    from seqjax.data import pipeline
    clone = no_tfds_env / "clone"
    (clone / "seqjax").mkdir(parents=True)
    (clone / "pyproject.toml").write_text("[project]\n")
    assert pipeline.default_data_dir(str(clone)) == str(clone / "data" / "tfds")
    assert pipeline.default_data_dir() == str(ROOT / "data" / "tfds")  # this clone


def test_data_dir_of_an_installed_package_is_tfds_default(no_tfds_env):
    from seqjax.data import pipeline
    home_default = str(no_tfds_env / "home" / "tensorflow_datasets")
    site = no_tfds_env / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "seqjax").mkdir(parents=True)
    assert pipeline.default_data_dir(str(site)) == home_default
    (site / "pyproject.toml").write_text("")  # even then, never inside site-packages
    assert pipeline.default_data_dir(str(site)) == home_default


def test_data_dir_set_in_the_config_wins(monkeypatch, tmp_path):
    from seqjax.data import pipeline
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.chdir(tmp_path)
    assert pipeline.data_dir_of(types.SimpleNamespace(data_dir="mine")) == str(tmp_path / "mine")


class _FakeBuilder:
    name = "fake"
    info = types.SimpleNamespace(full_name="fake/1.0.0")
    prepared = False

    def __init__(self, data_dir):
        self.data_dir = data_dir

    def is_prepared(self):
        return _FakeBuilder.prepared

    def download_and_prepare(self, download_config=None):
        _FakeBuilder.prepared = True


def test_preparing_a_dataset_says_where_and_how_long(tmp_path, capsys, monkeypatch):
    from seqjax.data import pipeline
    monkeypatch.setattr(_FakeBuilder, "prepared", False)
    version_dir = str(tmp_path / "fake" / "1.0.0")
    pipeline.prepare_once(lambda: _FakeBuilder(version_dir), None, source="raw files in /raw")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"fake: preparing fake/1.0.0 from raw files in /raw into {version_dir} (once)"
    assert re.fullmatch(r"fake: prepared fake/1\.0\.0 in \d+\.\d s", lines[1]), lines
    pipeline.prepare_once(lambda: _FakeBuilder(version_dir), None)  # prepared: says nothing
    assert capsys.readouterr().out == ""


@pytest.fixture
def cache_env(monkeypatch, tmp_path):
    """seqjax.cli with jax.config.update recorded instead of applied."""
    from seqjax import cli
    updates = {}
    fake = types.SimpleNamespace(config=types.SimpleNamespace(update=updates.__setitem__))
    monkeypatch.setattr(cli, "jax", fake)
    for var in ("SEQJAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME",
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return cli, updates, tmp_path


def test_compilation_cache_on_by_default_in_the_users_cache(cache_env, monkeypatch):
    cli, updates, tmp = cache_env
    expected = str(tmp / "home" / ".cache" / "seqjax" / "jax")
    assert cli._compilation_cache() == expected and os.path.isdir(expected)
    assert updates == {"jax_compilation_cache_dir": expected,
                       "jax_persistent_cache_min_compile_time_secs": 1.0}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
    assert cli._compilation_cache() == str(tmp / "xdg" / "seqjax" / "jax")


def test_compilation_cache_directory_from_the_environment(cache_env, monkeypatch):
    cli, updates, tmp = cache_env
    monkeypatch.setenv("SEQJAX_COMPILATION_CACHE", str(tmp / "mine"))
    assert cli._compilation_cache() == str(tmp / "mine")
    assert updates["jax_compilation_cache_dir"] == str(tmp / "mine")


@pytest.mark.parametrize("env", [{"SEQJAX_COMPILATION_CACHE": "off"},
                                 {"JAX_COMPILATION_CACHE_DIR": "/somewhere/jax"}])
def test_compilation_cache_off_or_left_to_jax(cache_env, monkeypatch, env):
    cli, updates, tmp = cache_env
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli._compilation_cache() is None and updates == {}
    assert not (tmp / "home").exists()
