r"""Where the headline experiment's wall time goes: compile, training steps, evaluation,
gradient-flow diagnostics, TensorBoard writes, checkpoints and figures, per member.

    python benchmarks/headline.py [--config=configs/vanishing.py] [--out=FILE.json]

It runs the same ``experiments.main`` code path (the sweep, the Trainer, the figures) in a
temporary workdir, with timers around the Trainer's methods. Each training step is waited for
(``block_until_ready``) so that its time is not billed to whatever blocks next; the total is
therefore a little above an unwrapped run's. Prints one table; ``--out`` also writes it as JSON.
"""

import argparse
import collections
import contextlib
import functools
import json
import os
import runpy
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from seqjax import checkpoint, report, train, writer  # noqa: E402

PARTS = ("start (init, restore, jit setup)", "compile train step", "training steps",
         "diagnostics", "evaluation", "tensorboard + metrics", "checkpoints", "figures")


class Timers:
    def __init__(self):
        self.s = collections.defaultdict(float)
        self.n = collections.Counter()
        self.stack = []

    @contextlib.contextmanager
    def part(self, name):
        # nested parts are billed to the innermost only
        start = time.perf_counter()
        self.stack.append(0.0)
        try:
            yield
        finally:
            total = time.perf_counter() - start
            inner = self.stack.pop()
            self.s[name] += total - inner
            self.n[name] += 1
            if self.stack:
                self.stack[-1] += total

    def wrap(self, owner, attr, name):
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*a, **k):
            with self.part(name):
                return fn(*a, **k)
        setattr(owner, attr, timed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/vanishing.py")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    timers = Timers()
    T = train.Trainer
    timers.wrap(T, "_start", PARTS[0])
    timers.wrap(T, "_diagnose", PARTS[3])
    timers.wrap(T, "_log_eval", PARTS[4])
    timers.wrap(T, "_save", PARTS[6])
    timers.wrap(T, "_close", PARTS[6])
    timers.wrap(checkpoint.Checkpointer, "close", PARTS[6])
    for method in ("write", "scalars", "histograms", "image", "hparams", "close"):
        timers.wrap(writer.Writer, method, PARTS[5])
    timers.wrap(report, "print_report", PARTS[7])

    compile_orig = T._compile_train

    def compile_train(self, stop):
        """The trainer's ``train_fn.lower(state, batch).compile()``, timed apart from step
        0's diagnostics and eval; the compiled step it gets back waits for each step."""
        jitted = self.train_fn

        def compile_timed(*args):
            with timers.part(PARTS[1]):
                compiled = jitted.lower(*args).compile()

            def step(*a):
                with timers.part(PARTS[2]):
                    return jax.block_until_ready(compiled(*a))
            return step
        self.train_fn = types.SimpleNamespace(
            lower=lambda *args: types.SimpleNamespace(compile=lambda: compile_timed(*args)))
        return compile_orig(self, stop)
    T._compile_train = compile_train

    config, variant = (args.config.split(":") + [""])[:2]
    cfg = runpy.run_path(config)["get_config"](*([variant] if variant else []))
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        summary = train.train_and_evaluate(cfg, workdir)
        report.print_report(workdir)
        wall = time.perf_counter() - start
    rows = [(p, timers.s[p], timers.n[p]) for p in PARTS]
    rest = wall - sum(s for _, s, _ in rows)
    load = os.getloadavg()[0]
    print(f"\n{args.config}: {wall:.1f} s wall, load average {load:.2f} at the end\n")
    print("| part | seconds | calls | per call (ms) |\n|---|---|---|---|")
    for p, s, n in rows + [("other (data, logging, Python)", rest, 0)]:
        print(f"| {p} | {s:.1f} | {n or ''} | {1e3 * s / n:.1f} |" if n else f"| {p} | {s:.1f} | | |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": args.config, "wall_s": wall, "load": load,
                       "parts": {p: {"s": s, "calls": n} for p, s, n in rows},
                       "other_s": rest, "summary": summary}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
