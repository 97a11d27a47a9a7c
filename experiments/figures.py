"""Rebuild every figure from run directories alone (never retrains).

    python -m experiments.figures runs/vanishing [more workdirs...] [--out=DIR]

A workdir holding a sweep (sweep.json) stands for all its members. Figures go to
<first workdir>/figures unless --out is given.
"""

import os

from absl import app, flags

from seqjax import report
from seqjax import plots, rundir

_OUT = flags.DEFINE_string("out", None, "output directory (default: <first workdir>/figures)")


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise app.UsageError("give one or more run directories")
    out = _OUT.value or os.path.join(workdirs[0], "figures")
    if len(workdirs) == 1:  # exactly the figures report.py draws
        paths = report.draw(workdirs[0], out)
    else:  # seed or T sweeps as sweeps; the other runs of all workdirs together, to compare
        sweeps = [w for w in workdirs if report.is_seed_or_T_sweep(w)]
        paths = [p for w in sweeps for p in plots.sweep_figures(w, out)]
        dirs = [d for w in workdirs if w not in sweeps for d in rundir.run_dirs(w)]
        if dirs:
            paths += plots.all_figures(dirs, out)
    for path in paths:
        print(path)


if __name__ == "__main__":
    app.run(main)
