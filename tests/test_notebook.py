"""The notebook notebooks/rnn_vs_lstm: it runs from top to bottom, and the committed .ipynb is
its jupytext source (notebooks/rnn_vs_lstm.py) executed, figures included.

Regenerate the .ipynb after editing the .py: ``.venv/bin/python notebooks/build.py``.
"""

import importlib.util
import json
import os
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "rnn_vs_lstm"


def _build_module():
    spec = importlib.util.spec_from_file_location(
        "notebooks_build", os.path.join(ROOT, "notebooks", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _build_module()


def _committed():
    return nbformat.read(os.path.join(ROOT, "notebooks", f"{NAME}.ipynb"), as_version=4)


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def test_committed_notebook_is_its_source():
    """Cell for cell (kind and text) the .ipynb is the .py: edit the .py, then rebuild."""
    source, committed = build.read_source(NAME), _committed()
    assert ([(c.cell_type, c.source) for c in committed.cells]
            == [(c.cell_type, c.source) for c in source.cells]), (
        f"notebooks/{NAME}.ipynb is out of date with notebooks/{NAME}.py; "
        f"run: .venv/bin/python notebooks/build.py {NAME}")


def test_committed_notebook_has_its_outputs():
    """Committed executed: every code cell ran, none failed, and the figures are in it."""
    nb = _committed()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "committed without executing every cell"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert _images(nb) >= 2


@pytest.mark.slow  # executes every cell: about 75 s; the two tests above check the committed notebook
def test_notebook_runs():
    """Executed from the .py in a fresh kernel of this interpreter, cwd notebooks/: no cell
    fails, the figures come out inline as PNGs, and the story holds (the LSTM solves the
    adding problem, the RNN does not)."""
    nb = build.read_source(NAME)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, sys\n"
        "print(json.dumps({'prefix': sys.prefix, 'cwd': os.getcwd(), 'mse': "
        "{k: s['final_eval']['mse'] for k, s in summaries.items()}}))\n"
        "import shutil; shutil.rmtree(workdir)"))  # the notebook's run directories
    build.execute(nb, timeout=600)
    assert _images(nb) >= 2
    facts = json.loads(nb.cells[-1].outputs[-1].text.strip().splitlines()[-1])
    assert facts["prefix"] == sys.prefix  # the kernel is this environment's Python
    assert os.path.samefile(facts["cwd"], os.path.join(ROOT, "notebooks"))
    # solved (the task's criterion, MSE < 0.05) vs near the 1/6 baseline
    assert facts["mse"]["lstm"] < 0.05 and facts["mse"]["rnn"] > 0.1, facts["mse"]
