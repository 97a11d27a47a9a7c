"""Record the metrics of a fixed set of smoke runs, or check them against a recording.

A refactor of the trainer, cells or tasks must not change a single logged number. This
script runs every case below as a real ``python -m experiments.main`` process and keeps
each run's ``metrics.jsonl`` (every run directory of a sweep), minus the fields that measure
speed (``train/steps_per_sec``). Record on the old code, check on the new:

    python benchmarks/same_trajectories.py record /tmp/trajectories   # on the old checkout
    python benchmarks/same_trajectories.py check /tmp/trajectories    # on the new one

``check`` exits with 1 and names the first differing run, step and field. Runs are on CPU,
one process each, in the repository the script is run from.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm", "lru", "lif")
CASES = {
    "vanishing": ["configs/vanishing.py:smoke"],
    **{f"adding-{cell}": ["configs/adding.py:smoke", f"--config.model.cell={cell}"]
       for cell in CELLS},
    "adding-irnn": ["configs/adding.py:smoke", "--config.model.cell=rnn",
                    "--config.model.activation=relu", "--config.model.recurrent_init=identity"],
    "order": ["configs/temporal_order.py:smoke"],
    "copy": ["configs/copy.py:smoke"],
    "sweep": ["configs/vanishing_sweep.py:smoke"],
    "sweep-vmapped": ["configs/vanishing_sweep.py:smoke", "--config.train.vmap_sweep=on"],
}
SPEED_FIELDS = ("train/steps_per_sec",)


def _rows(path: str) -> list[dict]:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [{k: v for k, v in r.items() if k not in SPEED_FIELDS} for r in rows]


def run_case(name: str, args: list[str], root: str) -> dict[str, list[dict]]:
    """{relative run dir: rows} of one case, run in a fresh workdir."""
    workdir = os.path.join(root, name)
    config, *overrides = args
    cmd = [sys.executable, "-m", "experiments.main", f"--config={config}",
           f"--workdir={workdir}", *overrides]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    paths = sorted(glob.glob(os.path.join(workdir, "**", "metrics.jsonl"), recursive=True))
    return {os.path.relpath(os.path.dirname(p), workdir): _rows(p) for p in paths}


def first_difference(old: dict, new: dict) -> str | None:
    if sorted(old) != sorted(new):
        return f"run directories differ: {sorted(old)} vs {sorted(new)}"
    for run in old:
        if len(old[run]) != len(new[run]):
            return f"{run}: {len(old[run])} rows recorded, {len(new[run])} now"
        for a, b in zip(old[run], new[run]):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    return (f"{run}, step {a.get('step')}: {key} was {a.get(key)!r}, "
                            f"now {b.get(key)!r}")
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("record", "check"))
    parser.add_argument("recording", help="directory of the recorded metrics (one JSON a case)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    a = parser.parse_args()
    os.makedirs(a.recording, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory() as root:
        for name in a.cases:
            got = run_case(name, CASES[name], root)
            path = os.path.join(a.recording, f"{name}.json")
            if a.mode == "record":
                with open(path, "w") as f:
                    json.dump(got, f)
                print(f"{name}: recorded {sum(map(len, got.values()))} rows")
                continue
            with open(path) as f:
                diff = first_difference(json.load(f), got)
            print(f"{name}: " + ("identical" if diff is None else f"DIFFERS: {diff}"), flush=True)
            if diff:
                failed.append(name)
    if failed:
        raise SystemExit(f"{len(failed)} case(s) differ: {', '.join(failed)}")


if __name__ == "__main__":
    main()
