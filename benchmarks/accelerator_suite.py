r"""The accelerator suite: one command, at most 8 minutes on one GPU, one JSON and one table.

    benchmarks/accelerator_suite.sh --out=runs/accelerator            # on the GPU machine
    benchmarks/accelerator_suite.sh --dry-run --out=/tmp/suite        # tiny sizes, any backend

Each section is its own process, run one after the other under a time budget (a section
that outruns its budget is stopped and marked "timeout"; one that would start after the
suite's deadline is marked "not started"), so one failure costs one row, not the suite:

    steps_f32      LSTM and GRU training steps at two GPU sizes against torch.nn (CUDA) and
                   jax.experimental.rnn's cuDNN LSTM (benchmarks/throughput.py)
    steps_bf16     the LSTM step in bfloat16 (parameters, inputs, targets), same contenders
    parallel_scan  minGRU / minLSTM / LRU, parallel and chunked scans vs their sequential scan, T = 512…16k
    vmapped_seeds  4 seeds as one vmapped program vs 4 runs one after the other
    pixel_mnist    2,000 steps of configs/smnist.py:pixels:gpu (needs MNIST's raw files)
    headline       configs/vanishing.py:gpu, the tanh RNN vs the LSTM

Writes ``<out>/suite.json`` (every section: command, status, wall time, its parsed numbers)
and ``<out>/suite.md`` (the tables for benchmarks/RESULTS.md). ``--dry-run`` runs every
section with tiny sizes, so that a test can run the whole suite on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

BUDGET_S = 480  # the suite's deadline: 8 minutes


def _throughput(out, dry, name, extra):
    sizes = "XS" if dry else "G64x512x100,G256x1024x1000"
    quick = (["--peers=flax", "--min-clean=1", "--max-rounds=1", "--max-foreign=99",
              "--block-s=0.01"] if dry else
             ["--peers=torch", "--min-clean=3", "--max-minutes=0.6", "--max-foreign=99",
              "--block-s=0.2"])
    return ["benchmarks/throughput.py", f"--sizes={sizes}", "--impls=auto,scan", *quick,
            f"--json={out}/{name}.json", *extra]


def _main_run(out, name, config, overrides):
    return ["-m", "experiments.main", f"--config={config}", f"--workdir={out}/{name}",
            *overrides]


def sections(out: str, dry: bool, mnist_dir: str) -> list[dict]:
    """[{name, argv (after the Python interpreter), budget_s, needs}] in running order."""
    return [
        dict(name="steps_f32", budget_s=110,
             argv=_throughput(out, dry, "steps_f32", ["--cells=lstm,gru"])),
        dict(name="steps_bf16", budget_s=60,
             argv=_throughput(out, dry, "steps_bf16",
                              ["--cells=lstm", "--dtype=bfloat16", "--tol=5e-2"]
                              + ([] if dry else ["--sizes=G256x1024x1000"]))),
        dict(name="parallel_scan", budget_s=90,
             argv=["benchmarks/parallel_scan.py", f"--json={out}/parallel_scan.json",
                   "--impls=scan,parallel,parallel_chunked"]
             + (["--T=16", "--B=2", "--D=4", "--H=8", "--repeats=1"] if dry else
                ["--T=512,4096,16384", "--repeats=3"])),
        dict(name="vmapped_seeds", budget_s=60,
             argv=["benchmarks/sweep_vmap.py", "--repeats=1"]
             + (["--seeds=2", "--steps=2", "--seq_len=8", "--hidden=8"] if dry else
                ["--seeds=4", "--steps=200", "--seq_len=400", "--hidden=128"])),
        dict(name="pixel_mnist", budget_s=100, needs=mnist_dir,
             argv=_main_run(out, "pixel_mnist",
                            "configs/smnist.py:pixels:" + ("smoke" if dry else "gpu"),
                            [f"--config.data.raw_dir={mnist_dir}",
                             f"--config.data.data_dir={out}/tfds",
                             "--config.train.num_steps=" + ("4" if dry else "2000")])),
        dict(name="headline", budget_s=50,
             argv=_main_run(out, "headline",
                            "configs/vanishing.py:" + ("smoke" if dry else "gpu"), [])),
    ]


def run_section(sec: dict, python: str, log_dir: str, deadline: float) -> dict:
    """Run one section as a child process within its budget and the suite's deadline."""
    row = {"name": sec["name"], "command": [python, *sec["argv"]], "budget_s": sec["budget_s"]}
    if "needs" in sec and not os.path.isdir(sec["needs"]):
        return row | {"status": "skipped", "wall_s": 0.0,
                      "why": f"no directory {sec['needs']} (pass --mnist-dir)"}
    left = deadline - time.monotonic()
    if left < 10:
        return row | {"status": "not started", "wall_s": 0.0,
                      "why": f"{left:.0f} s left of the suite's budget"}
    limit = min(sec["budget_s"], left)
    start = time.monotonic()
    with open(os.path.join(log_dir, f"{sec['name']}.log"), "w") as log:
        try:
            rc = subprocess.run(row["command"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                timeout=limit).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"timeout ({limit:.0f} s)"
    return row | {"status": status, "wall_s": time.monotonic() - start}


def _last_json_line(path: str):
    with open(path) as f:
        lines = [line for line in f if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _members(workdir: str) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        s = json.load(f)
    return s["members"] if "members" in s else {"run": s}


def numbers(name: str, out: str) -> dict:
    """The section's results, read from what its process wrote."""
    log = os.path.join(out, "logs", f"{name}.log")
    if name.startswith("steps_"):
        from benchmarks import throughput
        with open(os.path.join(out, f"{name}.json")) as f:
            res = json.load(f)
        return {"table": throughput.markdown(res), "tok_s": {
            f"{r['cell']} {r['size']} {n}": row["tok_s_median"]
            for r in res["results"] for n, row in r["rows"].items()}}
    if name == "parallel_scan":
        rows = _last_json_line(log)["rows"]
        return {"speedup_vs_own_scan": {f"{r['cell']} {r['impl']} T={r['T']}": r["speedup_vs_own_scan"]
                                        for r in rows if r["impl"] != "scan"}}
    if name == "vmapped_seeds":
        return {"speedup": _last_json_line(log)["speedup"]}
    return {m: {"final_eval": s["final_eval"], "steps": s["steps"],
                "compile_s": s["compile_s"], "wall_time_s": s["wall_time_s"]}
            for m, s in _members(os.path.join(out, name)).items()}


def _brief(row: dict) -> str:
    n = row.get("numbers") or {}
    if row["name"] == "parallel_scan" and n:
        return ", ".join(f"{k} {v:.2f}×" for k, v in n["speedup_vs_own_scan"].items())
    if row["name"] == "vmapped_seeds" and n:
        return f"vmapped ÷ sequential wall time: {n['speedup']:.2f}×"
    if row["name"] in ("pixel_mnist", "headline") and n:
        return "; ".join(f"{m}: " + ", ".join(f"{k} {v:.4g}" for k, v in s["final_eval"].items()
                                              if k != "loss")
                         + f" ({s['steps']} steps, {s['wall_time_s']:.0f} s)"
                         for m, s in n.items())
    return row.get("why", "table below" if n else "")


def markdown(suite: dict) -> str:
    lines = [f"Accelerator suite, {suite['date']}: {suite['device']}"
             + (" (dry run, tiny sizes)" if suite["dry_run"] else ""), "",
             "| section | status | wall s | result |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['status']} | {r['wall_s']:.0f} | {_brief(r)} |"
              for r in suite["sections"]]
    for r in suite["sections"]:
        if "table" in (r.get("numbers") or {}):
            lines += ["", f"{r['name']}:", "", r["numbers"]["table"]]
    return "\n".join(lines) + "\n"


def device_name() -> str:
    import jax
    d = jax.devices()[0]
    return f"{jax.default_backend()}: {getattr(d, 'device_kind', d.platform)} × " \
           f"{jax.device_count()} ({platform.node()}), jax {jax.__version__}"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/accelerator_suite")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes: checks the suite runs")
    ap.add_argument("--mnist-dir", default=os.path.join(REPO, "..", "shared", "data", "mnist"),
                    help="MNIST's four raw IDX files (pixel_mnist is skipped without them)")
    ap.add_argument("--only", default="", help="comma-separated section names (default: all)")
    ap.add_argument("--budget-s", type=float, default=BUDGET_S)
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    secs = sections(out, args.dry_run, os.path.abspath(args.mnist_dir))
    names = [s["name"] for s in secs]
    only = [n for n in args.only.split(",") if n]
    if any(n not in names for n in only):
        ap.error(f"--only={args.only}: sections are {', '.join(names)}")
    if args.dry_run:  # tiny sizes on a CPU: the budgets are the GPU's, not a dry run's
        for sec in secs:
            sec["budget_s"] = max(sec["budget_s"], 600)
    deadline = time.monotonic() + (args.budget_s if not args.dry_run else 3600)
    suite = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
             "device": device_name(), "dry_run": args.dry_run, "sections": []}
    for sec in secs:
        if only and sec["name"] not in only:
            continue
        row = run_section(sec, sys.executable, os.path.join(out, "logs"), deadline)
        if row["status"] == "ok":
            try:
                row["numbers"] = numbers(sec["name"], out)
            except Exception as e:  # noqa: BLE001  (a row that says why beats a lost suite)
                row["status"], row["why"] = "ok, unreadable output", f"{type(e).__name__}: {e}"
        print(f"[suite] {row['name']:14s} {row['status']:18s} {row['wall_s']:6.0f} s  "
              f"{_brief(row)}", flush=True)
        suite["sections"].append(row)
    with open(os.path.join(out, "suite.json"), "w") as f:
        json.dump(suite, f, indent=1, default=str)
    with open(os.path.join(out, "suite.md"), "w") as f:
        f.write(markdown(suite))
    print(f"[suite] wrote {out}/suite.json and {out}/suite.md")
    return suite


if __name__ == "__main__":
    main()
