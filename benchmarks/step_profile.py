"""Where one fused training step's time goes, on the backend in use.

    python benchmarks/step_profile.py [--cell=lstm] [--size=S] [--impl=fused] [--json=FILE]

For the throughput benchmark's step (``throughput.py``: forward over the sequence, a
per-timestep linear read-out with MSE, backward; jitted) it reports:

1. the per-iteration cost of XLA's while loop: an empty-body ``lax.scan`` of the same
   length, and one whose body only adds a (B, H) array;
2. what the compiled step launches: the kernels (fusions, dots, copies, dynamic slices)
   inside each while loop's body, per timestep, and the ones outside the loops, counted
   in ``compiled.as_text()``;
3. the step's time against the time of its matmuls alone: the same sequence of
   recurrent products (forward ``h W_h`` per step, backward ``dG W_hᵀ`` per step) run as
   bare scans, plus the large input-projection and weight-gradient products, each timed
   on its own; and against a 2048² float32 matmul's rate (the "peak");
4. the heaviest HLO ops of the step from a ``jax.profiler`` trace, summed per op name
   (the profiler adds a few microseconds per op, so the ranking matters, not the sum).

Timings are minima over interleaved repeats; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import seqjax  # noqa: E402,F401  (registers the fast impls)
from seqjax import cells  # noqa: E402
from seqjax import unroll as U  # noqa: E402

SIZES = {"XS": dict(B=4, D=4, H=8, T=16), "S": dict(B=32, D=32, H=128, T=100),
         "M": dict(B=64, D=64, H=256, T=500), "P": dict(B=16, D=1, H=128, T=1000),
         "demo": dict(B=64, D=2, H=64, T=100)}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def best_ms(fns: dict, args: dict, repeats: int = 7, min_s: float = 0.2) -> dict:
    """{name: min ms per call}, the functions interleaved in every repeat."""
    for name, f in fns.items():
        jax.block_until_ready(f(*args[name]))
    n = {}
    for name, f in fns.items():  # calls per block: about min_s seconds
        start = time.perf_counter()
        jax.block_until_ready(f(*args[name]))
        n[name] = max(1, int(min_s / max(time.perf_counter() - start, 1e-6)))
    out = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            start = time.perf_counter()
            for _ in range(n[name]):
                r = f(*args[name])
            jax.block_until_ready(r)
            out[name] = min(out[name], (time.perf_counter() - start) / n[name] * 1e3)
    return out


def step_fn(cell, impl):
    def loss(params, head, xs, ys):
        _, hs = U.unroll(cell, params, xs, impl=impl)
        return jnp.mean(jnp.square(hs @ head - ys))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


KERNEL = re.compile(r"=\s*\S+\s+(fusion|dot|copy|dynamic-slice|dynamic-update-slice|"
                    r"custom-call|transpose|concatenate|broadcast|reduce|while)\(")


def kernel_counts(hlo: str) -> dict:
    """Kernels per computation: {"while bodies": [counts per body], "entry": count}."""
    comps, name, body = {}, None, []
    for line in hlo.splitlines():
        m = re.match(r"^(ENTRY )?%?([\w.\-]+) .*\{$", line)
        if m:
            name, body = m.group(2), []
            comps[name] = body
            if m.group(1):
                comps["__entry__"] = body
        elif name is not None:
            body.append(line)
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    count = lambda lines: collections.Counter(m.group(1) for m in map(KERNEL.search, lines) if m)
    return {"while_bodies": {b: dict(count(comps.get(b, []))) for b in sorted(bodies)},
            "entry": dict(count(comps.get("__entry__", [])))}


def trace_top(f, args, k: int = 12) -> list[tuple[str, float, float]]:
    """[(op name, ms per step, calls per step)] of the heaviest ops in a profiler trace."""
    reps = 5
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            for _ in range(reps):
                r = f(*args)
            jax.block_until_ready(r)
        path = glob.glob(os.path.join(d, "**", "*.trace.json.gz"), recursive=True)[0]
        events = json.load(gzip.open(path))["traceEvents"]
    dur, calls = collections.defaultdict(float), collections.Counter()
    skip = ("ThunkExecutor", "$", "while", "block_until_ready", "PjitFunction", "CommonPjRt")
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(skip):
            dur[e["name"]] += e["dur"]
            calls[e["name"]] += 1
    top = sorted(dur.items(), key=lambda kv: -kv[1])[:k]
    return [(n, d / reps / 1e3, calls[n] / reps) for n, d in top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="lstm", choices=sorted(GATES))
    ap.add_argument("--size", default="S", choices=sorted(SIZES))
    ap.add_argument("--impl", default="fused")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    B, D, H, T = (SIZES[a.size][k] for k in "BDHT")
    G = GATES[a.cell] * H
    key = jax.random.key(0)
    cell = cells.get_cell(a.cell)
    params = cell.init(key, D, H)
    head = jax.random.normal(jax.random.fold_in(key, 1), (H, 1)) / np.sqrt(H)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (B, T, D))
    ys = jax.random.normal(jax.random.fold_in(key, 3), (B, T, 1))
    step = step_fn(cell, a.impl)
    fwd = jax.jit(lambda p, x: U.unroll(cell, p, x, impl=a.impl)[1])

    # 1. the while loop itself
    zeros_T = jnp.zeros((T, B, H))
    empty = jax.jit(lambda x: jax.lax.scan(lambda c, _: (c, None), jnp.zeros(()), x)[0])
    add = jax.jit(lambda x: jax.lax.scan(lambda c, xt: (c + xt, None), jnp.zeros((B, H)), x)[0])

    # 3. the step's matmuls alone
    h0, W_h = jnp.ones((B, H)) * 0.01, params["W_h"]
    fwd_mm = jax.jit(lambda h, W, z: jax.lax.scan(
        lambda c, zt: ((c @ W + zt)[:, :H], None), h, z)[0])
    bwd_mm = jax.jit(lambda d, W, z: jax.lax.scan(
        lambda c, zt: (((jnp.tile(c, (1, G // H)) + zt) @ W.T), None), d, z)[0])
    zG = jnp.zeros((T, B, G))
    X2 = jnp.ones((T * B, D))
    Hs2 = jnp.ones((T * B, H))
    dG2 = jnp.ones((T * B, G))
    inproj = jax.jit(lambda x, W: x @ W)
    wgrad = jax.jit(lambda a_, b_: a_.T @ b_)
    dx = jax.jit(lambda a_, W: a_ @ W.T)
    big = jnp.ones((2048, 2048))
    peak = jax.jit(lambda m: m @ m)

    fns = {"step": step, "forward": fwd, "empty scan": empty, "add scan": add,
           "fwd matmuls": fwd_mm, "bwd matmuls": bwd_mm, "X W_x": inproj,
           "X^T dG": wgrad, "H^T dG": wgrad, "dG W_x^T": dx, "peak 2048²": peak}
    args = {"step": (params, head, xs, ys), "forward": (params, xs), "empty scan": (zeros_T,),
            "add scan": (zeros_T,), "fwd matmuls": (h0, W_h, zG), "bwd matmuls": (h0, W_h, zG),
            "X W_x": (X2, params["W_x"]), "X^T dG": (X2, dG2), "H^T dG": (Hs2, dG2),
            "dG W_x^T": (dG2, params["W_x"]), "peak 2048²": (big,)}
    ms = best_ms(fns, args)
    load = os.getloadavg()
    peak_gflops = 2 * 2048 ** 3 / ms["peak 2048²"] / 1e6
    mm = {k: ms[k] for k in ("fwd matmuls", "bwd matmuls", "X W_x", "X^T dG", "H^T dG",
                             "dG W_x^T")}
    flops = 2 * T * B * G * (3 * H + 3 * D)  # fwd + two backward products, each of H and D
    hlo = step.lower(*args["step"]).compile().as_text()
    counts = kernel_counts(hlo)
    top = trace_top(step, args["step"])

    print(f"{a.cell} {a.impl} at {a.size} (B={B} D={D} H={H} T={T}); jax {jax.__version__}, "
          f"{jax.default_backend()}, load average {load[0]:.2f}")
    print(f"\nstep {ms['step']:.2f} ms ({B * T / ms['step'] * 1e3:,.0f} tok/s), forward alone "
          f"{ms['forward']:.2f} ms")
    print(f"while loop: empty body {ms['empty scan'] * 1e3 / T:.2f} µs per iteration, "
          f"(B,H) add body {ms['add scan'] * 1e3 / T:.2f} µs")
    print(f"matmuls alone: {sum(mm.values()):.2f} ms = "
          + " + ".join(f"{k} {v:.2f}" for k, v in mm.items()))
    print(f"matmul FLOPs {flops / 1e9:.3f} GFLOP: {flops / ms['step'] / 1e6:.1f} GFLOP/s in the "
          f"step = {100 * flops / ms['step'] / 1e6 / peak_gflops:.0f}% of the 2048² peak "
          f"({peak_gflops:.0f} GFLOP/s); at peak the matmuls would take "
          f"{flops / peak_gflops / 1e6:.2f} ms")
    print(f"not matmul: {ms['step'] - sum(mm.values()):.2f} ms of {ms['step']:.2f}")
    for body, c in counts["while_bodies"].items():
        print(f"while body {body}: {sum(c.values())} kernels per iteration {c}")
    print(f"outside the loops: {sum(counts['entry'].values())} kernels {counts['entry']}")
    print("\nheaviest ops (profiler trace; ms per step, calls per step):")
    for name, d, n in top:
        print(f"  {d:7.3f} ms  {n:6.0f}×  {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cell": a.cell, "impl": a.impl, "size": a.size, "B": B, "D": D, "H": H,
                       "T": T, "ms": ms, "load": load, "peak_gflops": peak_gflops,
                       "matmul_flops": flops, "kernels": counts, "trace_top": top,
                       "jax": jax.__version__, "date": time.strftime("%Y-%m-%d")}, f, indent=2)


if __name__ == "__main__":
    main()
