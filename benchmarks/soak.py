r"""Soak: the headline experiment for a long time, checkpointing every few seconds, watched
for memory and file-descriptor growth. Not part of the test suite.

    python benchmarks/soak.py --minutes=30 --out=runs/soak            # the defaults below
    python benchmarks/soak.py --minutes=2 --seq_len=100 --out=/tmp/s  # a quick look

Runs ``python -m experiments.main --config=configs/vanishing.py`` (tanh RNN vs LSTM on the
adding problem; its first member trains for the whole soak) at ``task.seq_len`` (default
400, the ``:gpu`` variant's T) with a checkpoint every ``--checkpoint_every`` steps (3 kept,
so old ones are deleted all the time), logs every 50 steps and gradient diagnostics (with
TensorBoard histograms and heatmap images) and eval every 500. Every ``--interval`` seconds
it samples the child's RSS (/proc/<pid>/status VmRSS), open file descriptors
(/proc/<pid>/fd), threads, training step and checkpoint count. After ``--minutes`` it sends
SIGTERM (the run saves and exits cleanly: that is checked too) and writes
``<out>/soak.json`` (all samples and a summary) and prints the summary: RSS at the start of
training, after a warm-up, at the end and its maximum; the RSS slope over the second half
(MiB/hour, least squares); fd and thread counts at the start and end and their maxima.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def proc_status(pid: int) -> dict | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", text, re.M).group(1))
    return {"rss_mib": field("VmRSS") / 1024, "hwm_mib": field("VmHWM") / 1024,
            "threads": field("Threads"), "fds": fds}


def slope_per_hour(ts, ys) -> float:
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else 3600 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--out", default="runs/soak")
    p.add_argument("--config", default="configs/vanishing.py")
    p.add_argument("--seq_len", type=int, default=400)
    p.add_argument("--checkpoint_every", type=int, default=20)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--warmup_minutes", type=float, default=2.0)
    a = p.parse_args()

    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "workdir"
    cmd = [sys.executable, "-m", "experiments.main", f"--config={a.config}",
           f"--workdir={workdir}", f"--config.task.seq_len={a.seq_len}",
           "--config.train.num_steps=100000000", f"--config.train.checkpoint_every={a.checkpoint_every}",
           "--config.train.keep_checkpoints=3", "--config.train.log_every=50",
           "--config.train.eval_every=500", "--config.train.diagnostics_every=500",
           "--config.train.resume=False"]
    log = open(out / "child.log", "w")
    child = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
    print(f"soak: pid {child.pid}, {a.minutes:g} min, T={a.seq_len}, checkpoint every "
          f"{a.checkpoint_every} steps; log {out / 'child.log'}", flush=True)
    start, samples, deadline = time.time(), [], time.time() + 60 * a.minutes
    try:
        while time.time() < deadline and child.poll() is None:
            s = proc_status(child.pid)
            text = (out / "child.log").read_text()
            steps = re.findall(r"\] step +(\d+)/", text)
            ckpt_dirs = list(workdir.glob("*/checkpoints")) + [workdir / "checkpoints"]
            saves = sum(1 for d in ckpt_dirs if d.is_dir() for n in os.listdir(d) if n.isdigit())
            if s:
                samples.append({"t": round(time.time() - start, 1), **s,
                                "step": int(steps[-1]) if steps else 0, "checkpoints_kept": saves})
                last = samples[-1]
                print(f"t={last['t']:7.1f}s step {last['step']:7d}  rss {last['rss_mib']:7.1f} MiB  "
                      f"fds {last['fds']:3d}  threads {last['threads']:3d}", flush=True)
            time.sleep(a.interval)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            rc = child.wait(300)
        except subprocess.TimeoutExpired:
            child.kill()
            rc = child.wait()
        log.close()
    text = (out / "child.log").read_text()
    training = [s for s in samples if s["step"] > 0]
    warm = [s for s in training if s["t"] >= training[0]["t"] + 60 * a.warmup_minutes] \
        if training else []
    half = warm[len(warm) // 2:] if warm else []
    steps_done = training[-1]["step"] if training else 0
    seconds = (training[-1]["t"] - training[0]["t"]) if len(training) > 1 else 0
    summary = {
        "minutes": a.minutes, "seq_len": a.seq_len, "checkpoint_every": a.checkpoint_every,
        "steps": steps_done, "steps_per_sec": round(steps_done / seconds, 2) if seconds else None,
        "checkpoint_interval_s": round(a.checkpoint_every * seconds / steps_done, 1)
        if steps_done else None,
        "rss_mib": {"training_start": training[0]["rss_mib"] if training else None,
                    "after_warmup": warm[0]["rss_mib"] if warm else None,
                    "end": training[-1]["rss_mib"] if training else None,
                    "max": max(s["rss_mib"] for s in training) if training else None,
                    "slope_mib_per_hour_second_half": round(slope_per_hour(
                        [s["t"] for s in half], [s["rss_mib"] for s in half]), 2)},
        "fds": {"training_start": training[0]["fds"] if training else None,
                "end": training[-1]["fds"] if training else None,
                "max": max(s["fds"] for s in training) if training else None},
        "threads": {"training_start": training[0]["threads"] if training else None,
                    "end": training[-1]["threads"] if training else None,
                    "max": max(s["threads"] for s in training) if training else None},
        "exit_code": rc, "clean_sigterm_exit": rc == 128 + signal.SIGTERM and
        "SIGTERM received; stopped after step" in text and "Traceback" not in text,
        "load_average": os.getloadavg(),
    }
    (out / "soak.json").write_text(json.dumps({"summary": summary, "samples": samples,
                                               "command": cmd}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
