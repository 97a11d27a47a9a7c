"""The package's shape: small functions and classes, and an install that adds only seqjax."""

import ast
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES, MAX_CLASS_LINES = 80, 250


def _definitions():
    for path in sorted((ROOT / "seqjax").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield path.relative_to(ROOT), node, node.end_lineno - node.lineno + 1


def test_no_long_functions_or_classes():
    too_long = [f"{path}:{node.lineno} {node.name} ({n} lines)" for path, node, n in _definitions()
                if n > (MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES)]
    assert not too_long, "over the limit: " + "; ".join(too_long)


def test_install_puts_only_seqjax_into_site_packages():
    """``pip install .`` packages what setuptools finds with pyproject's settings: seqjax
    and its subpackages, never a top-level ``configs`` or ``experiments``."""
    from setuptools import find_packages
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]
    packages = find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    assert "seqjax" in packages and "seqjax.cells" in packages and "seqjax.tasks" in packages
    assert {p.split(".")[0] for p in packages} == {"seqjax"}


def test_console_script_points_at_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["seqjax-train"].partition(":")
    assert (module, func) == ("seqjax.cli", "run")


@pytest.mark.slow  # an installed-CLI run (19 s)
def test_cli_runs_a_config_from_outside_the_clone(tmp_path):
    """The entry point loads a config by path from any directory (configs import each other
    as the package ``configs``), as ``seqjax-train`` does once installed."""
    cwd = tmp_path
    code = "import sys; from seqjax import cli; sys.argv[0] = 'seqjax-train'; cli.run()"
    out = subprocess.run(
        [sys.executable, "-c", code, f"--config={ROOT / 'configs' / 'temporal_order.py'}:smoke",
         f"--workdir={tmp_path / 'run'}", "--config.train.num_steps=2",
         "--config.train.diagnostics_every=0"],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "final numbers:" in out.stdout and (tmp_path / "run" / "summary.json").exists()


def test_no_module_is_named_like_a_stdlib_module():
    names = {p.stem for p in (ROOT / "seqjax").rglob("*.py")} - {"__init__"}
    assert not names & set(sys.stdlib_module_names)
