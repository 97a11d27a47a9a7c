"""Regenerate the executed notebooks from their jupytext sources.

    .venv/bin/python notebooks/build.py            # every notebooks/*.py with a jupytext header
    .venv/bin/python notebooks/build.py rnn_vs_lstm

The ``.py`` (percent format) is the source of truth; this executes it in a fresh kernel of
the current interpreter, with notebooks/ as its working directory, and writes the ``.ipynb``
beside it with its outputs, so that the figures show where notebooks are rendered.
``tests/test_notebook.py`` runs the same ``execute`` and checks the two files agree.
"""

from __future__ import annotations

import os
import sys
import time

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))


def read_source(name: str) -> nbformat.NotebookNode:
    """The notebook of ``notebooks/<name>.py``, without outputs."""
    return jupytext.read(os.path.join(HERE, f"{name}.py"))


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in place in a new python3 kernel (this interpreter's, via
    ipykernel), cwd notebooks/; raises nbclient's CellExecutionError on the first error."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": HERE}})
    client.execute()
    for cell in nb.cells:  # one output per stream, not one per print
        merged = []
        for out in cell.get("outputs", []):
            if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                    and merged[-1].name == out.name):
                merged[-1].text += out.text
            else:
                merged.append(out)
        if cell.cell_type == "code":
            cell.outputs = merged
    return nb


def build(name: str) -> str:
    start = time.perf_counter()
    nb = execute(read_source(name))
    path = os.path.join(HERE, f"{name}.ipynb")
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - start:.0f} s")
    return path


def sources() -> list[str]:
    return sorted(f[:-3] for f in os.listdir(HERE)
                  if f.endswith(".py") and f != "build.py"
                  and "jupytext:" in open(os.path.join(HERE, f)).read(400))


if __name__ == "__main__":
    for name in sys.argv[1:] or sources():
        build(name)
