"""N seeds trained as one vmapped program vs N sequential runs: wall time, same work.

Both sides go through the real trainer (``train_and_evaluate`` with ``sweep.seed``), the
only difference being ``train.vmap_sweep``. Evaluation, diagnostics and intermediate
checkpoints are off so that the training steps dominate; compile time is included (it is
part of what a user waits for) and also reported apart. Runs alternate A B A B.

    python benchmarks/sweep_vmap.py [--seeds=5 --steps=300 --seq_len=100 --hidden=64 --cell=lstm
                                     --impl=auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script: configs/ and seqjax/ live in the repo root
    sys.path.insert(0, REPO)


def run(vmap: bool, args) -> dict:
    from configs.adding import get_config
    from seqjax import train
    c = get_config("cpu")
    c.model.cell, c.model.hidden, c.model.impl = args.cell, args.hidden, args.impl
    c.task.seq_len, c.task.eval_size = args.seq_len, 64
    c.train.num_steps, c.train.log_every = args.steps, args.steps
    c.train.eval_every = c.train.diagnostics_every = c.train.checkpoint_every = 0
    c.train.vmap_sweep = "on" if vmap else "off"
    c.mesh.data = 1
    c.sweep.seed = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as d:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        out = train.train_and_evaluate(c, d)
        wall = time.perf_counter() - start
    summaries = list(out["members"].values())
    compile_s = summaries[0]["compile_s"] if vmap else sum(s["compile_s"] for s in summaries)
    return {"wall_s": wall, "compile_s": compile_s, "load_1min": load}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seq_len", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--impl", default="auto", help="model.impl (auto = fused on CPU)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    results = {"vmapped": [], "sequential": []}
    for _ in range(args.repeats):
        results["vmapped"].append(run(True, args))
        results["sequential"].append(run(False, args))
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in results.items()}
    print(f"{args.seeds} seeds × {args.steps} steps, {args.cell} H={args.hidden} T={args.seq_len}, "
          f"impl {args.impl}, "
          f"batch 64, {jax.default_backend()} ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores)")
    for k, v in results.items():
        print(f"  {k:10s} wall {med[k]:7.1f} s (runs: {[round(r['wall_s'], 1) for r in v]}), "
              f"compile {statistics.median(r['compile_s'] for r in v):.1f} s, "
              f"load {[round(r['load_1min'], 1) for r in v]}")
    print(f"  vmapped speedup: {med['sequential'] / med['vmapped']:.2f}x")
    print(json.dumps({"args": vars(args), "results": results,
                      "speedup": med["sequential"] / med["vmapped"]}))


if __name__ == "__main__":
    main()
