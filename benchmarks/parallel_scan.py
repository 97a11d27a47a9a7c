"""Parallel (associative, chunked) scans vs sequential lax.scan for minGRU, minLSTM and LRU,
against LSTM.

For each T, one jitted training-style pass per (cell, impl): the gradient of the sum of all
outputs with respect to the parameters (forward + backward through time). Compile time is
measured apart (``lower().compile()``); then the functions of one T run interleaved,
``--repeats`` times, and the median is reported. ``os.getloadavg()`` is recorded with
every T, since other processes on the machine change the timings.

    python benchmarks/parallel_scan.py [--T=512,2048,8192,16384] [--B=8 --D=32 --H=128]
        [--repeats=3] [--impls=scan,parallel] [--json=out.json]

``--impls``: any of scan (required, the baseline), parallel, parallel_log (cells built with
log_space=True only), parallel_chunked (the chunked scan at its defaults: about √T steps per
chunk; see seqjax/parallel.py). Sequential runs use the library default for ``hoist`` (off on
CPU, see unroll.py). Cells at their default init; the LSTM (no linear recurrence) runs the
sequential scan only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import seqjax  # noqa: F401  (registers the parallel impls)
from seqjax import cells
from seqjax import unroll as U

LINEAR_CELLS = ("mingru", "minlstm", "lru")
IMPLS = ("scan", "parallel", "parallel_log", "parallel_chunked")  # what --impls may name


def grad_fn(cell, impl, params, xs):
    """Compiled ∇_params Σ hs, and its compile time in seconds."""
    def loss(params, xs):
        return jnp.sum(U.unroll(cell, params, xs, impl=impl)[1])
    start = time.perf_counter()
    compiled = jax.jit(jax.grad(loss)).lower(params, xs).compile()
    return compiled, time.perf_counter() - start


def bench_T(T, args, impls):
    xs = jax.random.normal(jax.random.key(1), (args.B, T, args.D))
    fns, compile_s = {}, {}
    load_before = os.getloadavg()
    for name in ("lstm",) + LINEAR_CELLS:
        cell = cells.get_cell(name)
        params = cell.init(jax.random.key(0), args.D, args.H)
        for impl in impls if name in LINEAR_CELLS else ("scan",):
            if impl == "parallel_log" and not getattr(cell, "log_space", False):
                continue
            f, c = grad_fn(cell, impl, params, xs)
            jax.block_until_ready(f(params, xs))  # first run outside the timings
            fns[(name, impl)] = (f, params)
            compile_s[(name, impl)] = c
            print(f"  T={T} compiled {name}/{impl} in {c:.1f} s", flush=True)
    times = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, (f, params) in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(params, xs))
            times[k].append(time.perf_counter() - start)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for (name, impl), t in med.items():
        row = dict(T=T, cell=name, impl=impl, median_s=t, min_s=min(times[(name, impl)]),
                   compile_s=compile_s[(name, impl)],
                   speedup_vs_own_scan=med[(name, "scan")] / t,
                   speedup_vs_lstm_scan=med[("lstm", "scan")] / t,
                   loadavg_before=load_before[0], loadavg_after=load_after[0])
        rows.append(row)
        print(f"T={T:6d} {name:8s} {impl:16s} {t * 1e3:10.1f} ms  "
              f"compile {row['compile_s']:6.1f} s  "
              f"vs own scan {row['speedup_vs_own_scan']:6.2f}x  "
              f"vs LSTM scan {row['speedup_vs_lstm_scan']:7.2f}x  "
              f"load {load_before[0]:.1f}->{load_after[0]:.1f}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--D", type=int, default=32)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impls", default="scan,parallel")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    impls = tuple(args.impls.split(","))
    for impl in impls:
        cells.check_choice("--impls entry", impl, IMPLS)
    if "scan" not in impls:
        raise ValueError(f"--impls must include 'scan' (the baseline), got {args.impls!r}")
    rows = []
    for T in map(int, args.T.split(",")):
        rows += bench_T(T, args, impls)
    out = {"backend": jax.default_backend(), "jax": jax.__version__,
           "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "B": args.B, "D": args.D, "H": args.H, "repeats": args.repeats, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
