"""Which unroll path is faster on this backend: input projection hoisted out of the loop or not.

One jitted forward+backward pass (the gradient of a sum over all outputs) per path,
interleaved A B A B, median of ``--repeats`` timings. Prints tokens/s and the ratio.

    python benchmarks/unroll_paths.py [--repeats=20]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp

from seqjax import cells
from seqjax import unroll as U

SIZES = {"S": dict(B=32, D=32, H=128, T=100), "M": dict(B=64, D=64, H=256, T=500),
         "P": dict(B=16, D=1, H=128, T=1000)}


def step_fn(cell, hoist):
    def loss(params, xs):
        _, hs = U.unroll(cell, params, xs, hoist=hoist)
        return jnp.sum(hs)
    return jax.jit(jax.grad(loss))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cells", default="lstm,gru,rnn")
    ap.add_argument("--sizes", default="S,M,P")
    args = ap.parse_args()
    rows = []
    for name in args.cells.split(","):
        cell = cells.get_cell(name)
        for size in args.sizes.split(","):
            s = SIZES[size]
            params = cell.init(jax.random.key(0), s["D"], s["H"])
            xs = jax.random.normal(jax.random.key(1), (s["B"], s["T"], s["D"]))
            fns = {h: step_fn(cell, h) for h in (False, True)}
            for f in fns.values():
                jax.block_until_ready(f(params, xs))
            times = {False: [], True: []}
            for _ in range(args.repeats):
                for h, f in fns.items():
                    t = time.perf_counter()
                    jax.block_until_ready(f(params, xs))
                    times[h].append(time.perf_counter() - t)
            tok = s["B"] * s["T"]
            med = {h: statistics.median(v) for h, v in times.items()}
            row = dict(cell=name, size=size, in_loop_tok_s=tok / med[False],
                       hoisted_tok_s=tok / med[True], hoisted_over_in_loop=med[False] / med[True])
            rows.append(row)
            print(f"{name:5s} {size}  in-loop {row['in_loop_tok_s']:10.0f} tok/s   hoisted "
                  f"{row['hoisted_tok_s']:10.0f} tok/s   hoisted/in-loop {row['hoisted_over_in_loop']:.2f}x",
                  flush=True)
    print(json.dumps({"backend": jax.default_backend(), "machine": platform.processor() or
                      platform.machine(), "rows": rows}))


if __name__ == "__main__":
    main()
