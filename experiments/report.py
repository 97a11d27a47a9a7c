"""Figures and a short table of final numbers for finished workdirs (no training).

    python -m experiments.report runs/sweep_init [more workdirs]
"""

import sys

from seqjax import report

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m experiments.report <workdir> [more workdirs]")
    for w in sys.argv[1:]:
        report.print_report(w)
