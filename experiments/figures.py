"""Rebuild every figure from run directories alone (never retrains).

    python -m experiments.figures runs/vanishing                # into runs/vanishing/figures
    python -m experiments.figures runs/a runs/b --out=figs/ab   # a comparison: --out required

A workdir holding a sweep (sweep.json) stands for all its members. Several workdirs are a
comparison: its figures go to --out (never into one workdir's own figures/), a seed or T
sweep among them into --out/<its name>/. Runs drawn on one axis must share their headline
metric (e.g. eval mse: runs of one task); curves whose labels would collide are labelled
with their directory. Every refusal is one ``error: ...`` line on stderr and exit status 1.
"""

import os
import sys

from absl import app, flags

from seqjax import plots, report, rundir

_OUT = flags.DEFINE_string("out", None, "output directory (one workdir: <workdir>/figures by "
                           "default; several workdirs: required)")


class Refused(Exception):
    """A comparison that would mislead: the message says why and what to give instead."""


def check(workdirs: list[str], out: str | None) -> None:
    """Raise ``plots.NotARunDir`` or ``Refused`` unless these workdirs can be drawn."""
    for w in workdirs:
        report.check(w)
    if len(workdirs) < 2:
        return
    if not out:
        raise Refused(f"comparing {len(workdirs)} workdirs needs --out=DIR, the directory for "
                      f"the comparison's figures (each workdir's own figures/ is left as it is)")
    metrics = {w: sorted({plots.headline_metric(plots.load_run(d)) for d in rundir.run_dirs(w)
                          if os.path.isfile(os.path.join(d, rundir.CONFIG_FILE))})
               for w in workdirs}
    if len({m for ms in metrics.values() for m in ms}) > 1:
        shown = ", ".join(f"{w} ({' and '.join(ms) or 'no runs yet'})" for w, ms in metrics.items())
        raise Refused(f"cannot compare runs whose headline metrics differ: {shown}; give "
                      f"workdirs of one task")


def _subdir_names(workdirs: list[str]) -> list[str]:
    """A distinct folder name per workdir (its base name, numbered where two share one)."""
    names = [os.path.basename(os.path.normpath(os.path.abspath(w))) for w in workdirs]
    return [f"{n}-{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def draw(workdirs: list[str], out: str) -> list[str]:
    if len(workdirs) == 1:  # exactly the figures report.py draws
        return report.draw(workdirs[0], out)
    # seed or T sweeps as sweeps, each in its own folder; the other runs together, to compare
    paths = []
    for w, name in zip(workdirs, _subdir_names(workdirs)):
        if report.is_seed_or_T_sweep(w):
            paths += plots.sweep_figures(w, os.path.join(out, name))
    dirs = [d for w in workdirs if not report.is_seed_or_T_sweep(w) for d in rundir.run_dirs(w)]
    if dirs:
        paths += plots.all_figures(dirs, out)
    return paths


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise app.UsageError("give one or more run directories")
    try:
        check(workdirs, _OUT.value)
        paths = draw(workdirs, _OUT.value or os.path.join(workdirs[0], rundir.FIGURES_DIR))
    except (plots.NotARunDir, Refused) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    for path in paths:
        print(path)


if __name__ == "__main__":
    app.run(main)
