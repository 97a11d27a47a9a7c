"""The package's structure: no import cycles, and every module imports on its own."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO, "seqjax")


def seqjax_modules() -> dict[str, str]:
    """{dotted module name: file} of every module in seqjax/ (a package's ``__init__`` is the
    package itself)."""
    out = {}
    for root, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(root, f), REPO)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = os.path.join(root, f)
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(name: str, path: str, modules: dict[str, str]) -> set[str]:
    """The seqjax modules that importing ``name`` may import: every ``import`` statement in
    the file, at top level or inside a function.

    ``from seqjax.x import y`` names module ``seqjax.x.y`` when that is a module, else
    ``seqjax.x``. Importing ``seqjax.a.b`` also runs package ``seqjax.a``'s ``__init__``,
    so that is an edge too, unless the package encloses the importing module (its
    ``__init__`` has then already started: the usual package pattern, not a cycle).
    """
    is_package = os.path.basename(path) == "__init__.py"
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the enclosing package
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
    edges = set()
    for target in targets:
        if target != "seqjax" and not target.startswith("seqjax."):
            continue
        while target not in modules:  # e.g. ``import seqjax.x.y`` of a name, not a module
            target = target.rpartition(".")[0]
        edges.add(target)
        edges |= {a for a in _ancestors(target) if a not in _ancestors(name) and a != name}
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = seqjax_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_import_graph_is_acyclic():
    graph = import_graph()
    assert "seqjax.tasks" in graph and "seqjax.models" in graph  # the walk found the package
    cycles = _cycles(graph)
    detail = "; ".join(
        " ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in cycles)
    assert not cycles, f"import cycles among seqjax modules: {detail}"


def test_import_graph_sees_a_cycle_and_implicit_package_imports(tmp_path):
    """The checker itself: a two-module cycle is found; a function-level
    ``from seqjax.tasks.base import`` outside seqjax.tasks counts as importing the package
    seqjax.tasks too, and inside it does not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    modules = seqjax_modules()
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from seqjax.tasks.base import Task\n    import seqjax.data\n")
    assert imported_modules("seqjax.data.probe", str(probe), modules) == {
        "seqjax.tasks.base", "seqjax.tasks", "seqjax.data"}  # an explicit import counts
    assert imported_modules("seqjax.tasks.probe", str(probe), modules) == {
        "seqjax.tasks.base", "seqjax.data"}


_IMPORT_EACH = r"""
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for m in [m for m in sys.modules if m == "seqjax" or m.startswith("seqjax.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
    # TFDS refuses a second registration of a builder name; forget ours before the next
    # module imports the builder again from scratch.
    reg = sys.modules.get("tensorflow_datasets.core.registered")
    for table in ("_DATASET_REGISTRY", "_ABSTRACT_DATASET_REGISTRY"):
        table = getattr(reg, table, {})
        for key in [k for k, cls in table.items() if cls.__module__.startswith("seqjax")]:
            del table[key]
print(json.dumps(failed))
"""


def test_each_module_imports_alone():
    """``import seqjax.<mod>`` works as the first seqjax import of a process, for every
    module (one interpreter: seqjax's modules are forgotten before each import)."""
    names = sorted(seqjax_modules())
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(names)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{name}:\n{tb}" for name, tb in failed.items())
