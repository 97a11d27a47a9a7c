"""Peak memory of one LSTM training step at long T, with and without remat.

Problem: the adding problem's shapes (B=16 sequences of D=2 features, H=128), T = 1,000,
10,000 and 100,000; one full training step (forward, loss, backward, SGD update), jitted.
Two losses: "last" reads only the final hidden state (many-to-one, as the adding problem
does), "every" a readout of every h_t (many-to-many: the (B, T, H) outputs and their
gradient must then exist, 8 KB per step).

Two measurements per configuration, each in a FRESH process (so nothing else is resident):
* XLA's compiled memory analysis: temporaries + arguments + outputs of the step
  (``jax.jit(step).lower(...).compile().memory_analysis()``), before anything runs;
* the process's resident set: VmRSS before the first step, and the peak (VmHWM, reset
  through /proc/self/clear_refs after compiling, so compilation is not counted) over
  --steps steps; "step peak" = peak − resident before the first step.
Configurations whose XLA estimate exceeds --max-gb are not run (the estimate is reported).

    python benchmarks/memory.py                 # T = 1e3, 1e4, 1e5; scan and fused
    python benchmarks/memory.py --T=1000,10000 --impls=fused --json=mem.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

B, D, H = 16, 2, 128


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def run_one(impl: str, remat: bool, T: int, loss: str, steps: int, max_gb: float) -> dict:
    """One configuration, in this process (call it in a fresh one)."""
    import jax
    import jax.numpy as jnp
    import optax

    import seqjax  # noqa: F401  (registers the fast impls)
    from seqjax import cells
    from seqjax import unroll as U

    cell = cells.get_cell("lstm")
    k_p, k_x, k_w = jax.random.split(jax.random.key(0), 3)
    params = {"cell": cell.init(k_p, D, H), "w": 0.1 * jax.random.normal(k_w, (H,))}
    xs = jax.random.normal(k_x, (B, T, D))
    ys = jnp.zeros((B,)) if loss == "last" else jnp.zeros((B, T))
    opt = optax.sgd(0.01)

    def loss_fn(p, xs, ys):
        final, hs = U.unroll(cell, p["cell"], xs, impl=impl, remat=remat)
        pred = final.h @ p["w"] if loss == "last" else hs @ p["w"]
        return jnp.mean((pred - ys) ** 2)

    def step(p, s, xs, ys):
        l, g = jax.value_and_grad(loss_fn)(p, xs, ys)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    state = opt.init(params)
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, xs, ys).compile()
    compile_s = time.perf_counter() - t0
    m = compiled.memory_analysis()
    xla = {"temp_mb": m.temp_size_in_bytes / 2 ** 20,
           "args_mb": m.argument_size_in_bytes / 2 ** 20,
           "out_mb": m.output_size_in_bytes / 2 ** 20,
           "alias_mb": m.alias_size_in_bytes / 2 ** 20}
    xla["total_mb"] = xla["temp_mb"] + xla["args_mb"] + xla["out_mb"] - xla["alias_mb"]
    row = {"impl": impl, "remat": remat, "T": T, "loss": loss, "compile_s": compile_s,
           "xla": xla}
    if xla["total_mb"] > 1024 * max_gb:
        return row | {"ran": False, "why": f"XLA estimate {xla['total_mb'] / 1024:.1f} GB > "
                                           f"--max-gb {max_gb}"}
    jax.block_until_ready((params, xs, ys))
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM: compilation not counted
        f.write("5")
    rss0 = _status_kb("VmRSS")
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        params, state, l = compiled(params, state, xs, ys)
        jax.block_until_ready(l)
        times.append(time.perf_counter() - t)
    hwm = _status_kb("VmHWM")
    return row | {"ran": True, "rss_before_mb": rss0 / 1024, "rss_peak_mb": hwm / 1024,
                  "step_peak_mb": (hwm - rss0) / 1024, "step_s": sorted(times),
                  "loss_value": float(l), "ru_maxrss_mb":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--T", default="1000,10000,100000")
    ap.add_argument("--impls", default="scan,fused")
    ap.add_argument("--remat", default="0,1")
    ap.add_argument("--losses", default="last,every")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-gb", type=float, default=4.0,
                    help="do not run configurations XLA says need more")
    ap.add_argument("--json", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: impl,remat,T,loss
    args = ap.parse_args(argv)

    if args.one:
        impl, remat, T, loss = args.one.split(",")
        print("RESULT " + json.dumps(run_one(impl, remat == "1", int(T), loss, args.steps,
                                             args.max_gb)))
        return None

    from throughput import machine_info  # same directory
    info = machine_info()
    print(f"# {info['cpu_model']}, {info['cores']} cores; {info['date']}; B={B} D={D} H={H}")
    print(f"{'T':>7s} {'loss':6s} {'impl':6s} {'remat':5s} {'XLA temp':>9s} {'XLA total':>9s} "
          f"{'RSS before':>10s} {'RSS peak':>9s} {'step peak':>9s} {'step s':>8s}")
    rows = []
    for T in [int(t) for t in args.T.split(",")]:
        for loss in args.losses.split(","):
            for impl in args.impls.split(","):
                for remat in args.remat.split(","):
                    cmd = [sys.executable, os.path.abspath(__file__),
                           f"--one={impl},{remat},{T},{loss}", f"--steps={args.steps}",
                           f"--max-gb={args.max_gb}"]
                    p = subprocess.run(cmd, capture_output=True, text=True)
                    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                    if p.returncode or not lines:
                        row = {"impl": impl, "remat": remat == "1", "T": T, "loss": loss,
                               "ran": False, "why": f"exit {p.returncode}: "
                                                    f"{p.stderr.strip().splitlines()[-1:]}"}
                    else:
                        row = json.loads(lines[-1][len("RESULT "):])
                    rows.append(row)
                    print(format_row(row), flush=True)
    out = {"machine": info, "shape": {"B": B, "D": D, "H": H}, "rows": rows}
    path = args.json or os.path.join(REPO, "benchmarks", "results",
                                     f"memory_{info['backend']}_{info['date'][:10]}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")
    return out


def format_row(r):
    x = r.get("xla", {})
    head = (f"{r['T']:7d} {r['loss']:6s} {r['impl']:6s} {str(r['remat']):5s} "
            f"{x.get('temp_mb', float('nan')):8.0f}M {x.get('total_mb', float('nan')):8.0f}M ")
    if not r.get("ran"):
        return head + f" not run: {r.get('why')}"
    return head + (f"{r['rss_before_mb']:9.0f}M {r['rss_peak_mb']:8.0f}M "
                   f"{r['step_peak_mb']:8.0f}M {r['step_s'][len(r['step_s']) // 2]:8.2f}")


if __name__ == "__main__":
    main()
