"""Cold XLA compile times of the steps ``python -m experiments.main`` compiles, per config.

For every experiment config in ``configs/*.py`` (its default variant, or the one named as
``name:variant``) this builds the run the way ``seqjax.train.Trainer._start`` does
(``Program``, ``init_member``, ``Program.compile``, ``Program.place``) and times, apart:

* the train step: ``jit(...).lower(state, first train batch)`` (tracing + lowering to
  StableHLO) and ``.compile()`` (XLA), as ``Trainer._compile_train`` does;
* the eval step on the first evaluation batch, lowered and compiled the same way;
* the gradient-flow diagnostics step on the diagnostics batch, when the trainer builds one
  (``train.diagnostics_every`` set and the model has probes).

Each is a separate executable and the cache is off, so the order (train, eval, diagnostics
here; the trainer diagnoses before its first evaluation) changes no XLA compile time. The
JSON also has each phase's CPU seconds (``*_cpu_s``, all threads of the process), steadier
than wall seconds when other jobs share the machine.

A sweep (``config.sweep`` / ``config.sweep_arms``) is measured on its first group as
``seqjax.sweep.sweep_groups`` forms it on this backend: on CPU that is the first member alone
(``train.vmap_sweep="auto"``), unless the config asks for vmapped members
(``train.vmap_sweep="on"``), in which case the group's members are stacked and vmapped as
the trainer does. Each config runs in its own child process (``--timeout`` seconds), with
JAX's persistent compilation cache off, so every number is a cold compile; a config whose
local data is missing is recorded as ``skipped: <reason>``, a failure or a timeout as a row.

    python benchmarks/compile_times.py                                # every config
    python benchmarks/compile_times.py --configs=adding,copy:smoke --json=out.json
    python benchmarks/compile_times.py --configs=irnn_adding --variant=300
    python benchmarks/compile_times.py --configs=adding:smoke --steps=train,eval

Data: the configs' own defaults (seqjax.data.local finds ``../shared/data/<name>``), except
that the forecasting configs (airline, sunspots, temperatures), which would download their
CSV, are pointed at ``../shared/data/<task.dataset>`` as their docstrings' commands do
(``--no-shared-raw-dir``: leave them as they are). The JSON row also has the setup times
(imports, task/data, ``init_member``), the optimised HLO's size and op counts
(``compiled.as_text()``) and ``os.getloadavg()`` before and after each config.

Only what the trainer compiles before its first step is measured: the tasks' own decoders
(beam search in ``generation_eval``, char_lm sampling) and ``init_params`` are not.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs")
PROBE_VARIANTS = ("smoke", "cpu", "gpu", "tpu")  # tried on configs without a VARIANTS tuple
STEPS = ("train", "eval", "diagnostics")
COLUMNS = ("train_lower_s", "train_compile_s", "eval_lower_s", "eval_compile_s",
           "diagnostics_compile_s")


# --------------------------------------------------------------------------- config names


def all_configs() -> list[str]:
    return sorted(os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
                  if not os.path.basename(p).startswith("_"))


def parse_spec(spec: str, default_variant: str | None = None) -> tuple[str, str, str | None]:
    """``name``, ``name:variant``, ``configs/name.py[:variant]`` → (label, path, variant).
    As on the command line of a run, the variant is everything after the first ``:``
    (``irnn_adding:le2015:150``); None means ``get_config()`` with no argument."""
    path, sep, variant = spec.strip().partition(":")
    if not sep:
        variant = default_variant
    if not path.endswith(".py"):
        path = os.path.join(CONFIG_DIR, path + ".py")
    path = os.path.abspath(path if os.path.isabs(path) else
                           path if os.path.exists(path) else os.path.join(REPO, path))
    name = os.path.splitext(os.path.basename(path))[0]
    return (f"{name}:{variant}" if variant else name), path, (variant or None)


# --------------------------------------------------------------------------- child: one config


def _load_config_module(path: str):
    if REPO not in sys.path:  # configs import each other as ``configs.<name>``
        sys.path.insert(0, REPO)
    name = os.path.splitext(os.path.basename(path))[0]
    if os.path.dirname(path) == CONFIG_DIR:
        return importlib.import_module(f"configs.{name}")
    spec = importlib.util.spec_from_file_location(f"_compile_times_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variants_of(module) -> dict:
    """The config's default variant and the variants it accepts (its ``VARIANTS`` tuple, or
    those of PROBE_VARIANTS its ``get_config`` takes when it rejects an unknown name)."""
    default = inspect.signature(module.get_config).parameters
    default = next(iter(default.values())).default if default else None
    default = None if default is inspect.Parameter.empty else default
    if hasattr(module, "VARIANTS"):
        return {"default": default, "variants": list(module.VARIANTS)}

    def accepts(v):
        try:
            module.get_config(v)
            return True
        except Exception:
            return False
    if accepts("__no_such_variant__"):
        return {"default": default, "variants": None}  # takes anything: unknown
    return {"default": default, "variants": [v for v in PROBE_VARIANTS if accepts(v)]}


def _first_group(config):
    """(runs, group_dir, members in the sweep): what the trainer's first Trainer gets."""
    from seqjax import sweep
    members = sweep.sweep_members(config)
    if not members:
        return [(config, "run")], None, 0
    group_name, group = sweep.sweep_groups(config, members)[0]
    runs = [(mc, name) for name, mc in group]
    return runs, group_name, len(members)


def shared_data_dir() -> str:
    """Where the offline raw files live, as seqjax.data.local looks for them."""
    return os.environ.get("SEQJAX_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")


def _use_shared_raw_dir(config) -> str | None:
    """The forecasting configs leave ``data.raw_dir`` empty, so TFDS downloads their CSV; their
    docstrings run them with ``--config.data.raw_dir=../shared/data/<task.dataset>``, and
    so does this script when that folder exists (other tasks find the shared folder
    themselves, seqjax.data.local.raw_dir_for). Returns the directory set, or None."""
    dataset = config.task.get("dataset")
    if config.data.raw_dir or not isinstance(dataset, str):
        return None
    raw = os.path.abspath(os.path.join(shared_data_dir(), dataset))
    if not os.path.isdir(raw):
        return None
    config.data.raw_dir = raw
    return raw


def _hlo_stats(text: str) -> dict:
    """Size and op counts of an HLO module's text (``compiled.as_text()``)."""
    ops = collections.Counter()
    computations = 0
    for line in text.splitlines():
        s = line.lstrip()
        if (s.startswith("%") or s.startswith("ROOT ")) and " = " in s:
            m = re.search(r" = .*? ([a-z][a-z0-9\-]*)\(", s)
            if m:
                ops[m.group(1)] += 1
        elif s.endswith("{") and (s.startswith("%") or s.startswith("ENTRY")):
            computations += 1
    return {"chars": len(text), "instructions": sum(ops.values()), "computations": computations,
            "while": ops.get("while", 0), "fusion": ops.get("fusion", 0),
            "constant": ops.get("constant", 0), "top_ops": dict(ops.most_common(10))}


def _stablehlo_ops(text: str) -> int:
    return sum(1 for line in text.splitlines() if re.match(r"\s*%\S+ = ", line))


def measure(path: str, variant: str | None, steps=STEPS, shared_raw_dir: bool = True) -> dict:
    """One config in this process (a fresh one): its row."""
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    import jax
    jax.config.update("jax_enable_compilation_cache", False)
    jax.config.update("jax_compilation_cache_dir", None)

    row: dict = {"loadavg_start": list(os.getloadavg())}
    t0 = time.perf_counter()
    module = _load_config_module(path)
    row.update(variants_of(module))
    row["variant"] = variant if variant is not None else row["default"]
    config = module.get_config(variant) if variant is not None else module.get_config()
    if shared_raw_dir:
        row["raw_dir_set"] = _use_shared_raw_dir(config)

    from seqjax import train as T
    from seqjax import sharding
    row["import_s"] = time.perf_counter() - t0

    runs, group, n_members = _first_group(config)
    row["sweep"] = {"members": n_members, "measured": len(runs), "first": runs[0][1],
                    "vmapped": len(runs) > 1} if n_members else None
    with tempfile.TemporaryDirectory(prefix="compile_times_") as tmp:
        runs = [(mc, os.path.join(tmp, w)) for mc, w in runs]
        start = time.perf_counter()
        try:
            p = T.Program(runs, os.path.join(tmp, group) if group else None)
        except FileNotFoundError as e:  # local raw files (seqjax.data.local) not there
            row["status"] = f"skipped: {e}"
            row["loadavg_end"] = list(os.getloadavg())
            return row
        row["program_s"] = time.perf_counter() - start  # task, data, model, eval batches
        t = p.t
        start = time.perf_counter()
        with jax.numpy_dtype_promotion("standard"):
            states = [p.init_member(mc) for mc, _ in p.members]
        state = T._stack(states) if p.vmapped else states[0]
        state = jax.device_put(state, sharding.replicated(p.mesh))
        row["init_s"] = time.perf_counter() - start  # init_member: jitted model.init
        seeds = [mc.seed for mc, _ in p.members] if p.data_per_member else [p.config.seed]
        iterators = [p.task.train_iterator(s) for s in seeds]
        batches = [next(it) for it in iterators]
        batch = p.place(T._stack(batches) if p.data_per_member else batches[0])
        row["setup_s"] = time.perf_counter() - t0
        row["task"], row["model"] = config.task.name, config.model.kind
        row["cell"] = p.config.model.cell
        row["devices"] = int(p.mesh.devices.size)
        row["trainer_compiles_train_step"] = t.num_steps > 0  # num_steps=0: init-only runs

        def time_step(prefix, fn, *args):
            # wall seconds (the columns) and this process's CPU seconds (all its threads:
            # less disturbed by other jobs on the machine than the wall time)
            start, cpu = time.perf_counter(), time.process_time()
            lowered = fn.lower(*args)
            row[f"{prefix}_lower_s"] = time.perf_counter() - start
            row[f"{prefix}_lower_cpu_s"] = time.process_time() - cpu
            start, cpu = time.perf_counter(), time.process_time()
            compiled = lowered.compile()
            row[f"{prefix}_compile_s"] = time.perf_counter() - start
            row[f"{prefix}_compile_cpu_s"] = time.process_time() - cpu
            row[f"{prefix}_stablehlo_ops"] = _stablehlo_ops(lowered.as_text())
            row[f"{prefix}_hlo"] = _hlo_stats(compiled.as_text())

        if "train" in steps:
            train_fn = p.compile(T.train_step, (0, 0 if p.data_per_member else None), tx=p.tx)
            time_step("train", train_fn, state, batch)
        if "eval" in steps:
            eval_fn = p.compile(T.eval_step, (0, None))
            time_step("eval", eval_fn, state.params, p.place(p.eval_set[0], eval_batch=True))
        row["trainer_builds_diagnostics"] = bool(t.diagnostics_every and p.diag_shape)
        if "diagnostics" in steps and row["trainer_builds_diagnostics"]:
            diag_fn = p.compile(T.diagnostics_step, (0, None), probe_shape=p.diag_shape)
            time_step("diagnostics", diag_fn, state.params,
                      p.place(p.diag_batch, eval_batch=True))
        row["status"] = "ok" if row["trainer_compiles_train_step"] else \
            "ok (num_steps=0: the trainer itself compiles no train step)"
    row["total_s"] = time.perf_counter() - t0
    row["loadavg_end"] = list(os.getloadavg())
    return row


def child_main(spec_path: str, variant: str | None, out: str, steps, shared_raw_dir) -> None:
    try:
        row = measure(spec_path, variant, steps, shared_raw_dir)
    except Exception as e:  # noqa: BLE001  every failure becomes a row
        last = (str(e).strip().splitlines() or [""])[-1][:300]
        row = {"status": f"error: {type(e).__name__}: {last}",
               "loadavg_end": list(os.getloadavg())}
    with open(out, "w") as f:
        json.dump(row, f)


# --------------------------------------------------------------------------- parent


def machine_info() -> dict:
    """throughput.py's machine description, plus what changes compile times here."""
    if REPO not in sys.path:  # run as a script (as accelerator_suite.py does)
        sys.path.insert(0, REPO)
    from benchmarks.throughput import machine_info as base
    try:
        jaxlib = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        jaxlib = None
    return base() | {"cpu_count": os.cpu_count(), "jaxlib": jaxlib,
                     "xla_flags": os.environ.get("XLA_FLAGS", ""), "nice": os.nice(0)}


def run_child(label: str, path: str, variant: str | None, timeout: float, steps,
              shared_raw_dir: bool = True) -> dict:
    with tempfile.TemporaryDirectory(prefix="compile_times_row_") as tmp:
        out = os.path.join(tmp, "row.json")
        cmd = [sys.executable, os.path.abspath(__file__), f"--child={path}", f"--out={out}",
               f"--steps={','.join(steps)}"]
        if variant is not None:
            cmd.append(f"--child-variant={variant}")
        if not shared_raw_dir:
            cmd.append("--no-shared-raw-dir")
        env = dict(os.environ, SEQJAX_COMPILATION_CACHE="off", JAX_ENABLE_COMPILATION_CACHE="false")
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own group (data workers too)
            proc.communicate()
            return {"config": label, "status": f"timeout after {timeout:g} s",
                    "wall_s": time.perf_counter() - start, "loadavg_end": list(os.getloadavg())}
        wall = time.perf_counter() - start
        if os.path.exists(out):
            with open(out) as f:
                row = json.load(f)
        else:
            tail = (log or "").strip().splitlines()[-1:] or [""]
            row = {"status": f"error: child exited {proc.returncode}: {tail[0][:300]}",
                   "loadavg_end": list(os.getloadavg())}
    return {"config": label} | row | {"wall_s": wall}


def fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "–"


def table(rows: list[dict]) -> str:
    lines = ["| config | train lower s | train compile s | eval lower s | eval compile s | "
             "diagnostics compile s | status |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        status = r["status"].replace("|", "/").replace("\n", " ")
        if len(status) > 140:  # the whole message is in the JSON
            status = status[:137] + "..."
        lines.append(f"| {r['config']} | " + " | ".join(fmt(r.get(c)) for c in COLUMNS) +
                     f" | {status} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="",
                    help="comma-separated config names or paths, each optionally :variant "
                         "(default: every configs/*.py)")
    ap.add_argument("--variant", default=None,
                    help="variant for the configs named without one (default: get_config())")
    ap.add_argument("--json", default=None, help="write the raw numbers here")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per config")
    ap.add_argument("--steps", default=",".join(STEPS),
                    help=f"which steps to measure, of {','.join(STEPS)} (default: all)")
    ap.add_argument("--no-shared-raw-dir", dest="shared_raw_dir", action="store_false",
                    help="leave data.raw_dir as the config has it: the forecasting configs "
                         "then download their CSV (default: ../shared/data/<task.dataset>)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-variant", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    if set(steps) - set(STEPS):
        ap.error(f"--steps: unknown {sorted(set(steps) - set(STEPS))}; choose of {STEPS}")
    if args.child:
        child_main(args.child, args.child_variant, args.out, steps, args.shared_raw_dir)
        return

    specs = [s for s in args.configs.split(",") if s.strip()] or all_configs()
    info = machine_info()
    print(f"# {info['cpu_model']}, {info['cpu_count']} cores, {info['platform']}; jax "
          f"{info['jax']}; {info['date']}; load {os.getloadavg()}", file=sys.stderr)
    rows = []
    for spec in specs:
        label, path, variant = parse_spec(spec, args.variant)
        if not os.path.isfile(path):
            row = {"config": label, "status": f"error: no config file {path}"}
        else:
            row = run_child(label, path, variant, args.timeout, steps, args.shared_raw_dir)
        row["loadavg"] = list(os.getloadavg())
        rows.append(row)
        print(f"# {label}: {row['status']} (train compile {fmt(row.get('train_compile_s'))} s, "
              f"{fmt(row.get('wall_s'))} s wall, load {row['loadavg'][0]:.2f})",
              file=sys.stderr, flush=True)
        if args.json:  # rewritten after every row: a long run leaves what it has measured
            _write(args.json, info, rows)
    print(table(rows))


def _write(path: str, info: dict, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"machine": info, "compilation_cache": "off (cold compiles)",
                   "columns": list(COLUMNS), "rows": rows}, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
