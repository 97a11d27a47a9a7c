"""Rebuild every figure from run directories alone (never retrains).

    python -m experiments.figures runs/vanishing [more workdirs...] [--out=DIR]

A workdir holding a sweep (sweep.json) stands for all its members. Figures go to
<first workdir>/figures unless --out is given.
"""

import os

from absl import app, flags

from seqjax import plots, train

_OUT = flags.DEFINE_string("out", None, "output directory (default: <first workdir>/figures)")


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise app.UsageError("give one or more run directories")
    dirs = [d for w in workdirs for d in train.run_dirs(w)]
    out = _OUT.value or os.path.join(workdirs[0], "figures")
    for path in plots.all_figures(dirs, out):
        print(path)


if __name__ == "__main__":
    app.run(main)
