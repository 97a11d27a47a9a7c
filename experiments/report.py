"""Figures and a short table of final numbers for finished workdirs (no training).

    python -m experiments.report runs/sweep_init [more workdirs]

A directory that is not a run (or whose run has not written config.json yet) is one
``error: ...`` line on stderr and exit status 1.
"""

import sys

from seqjax import plots, report


def main(workdirs: list[str]) -> None:
    if not workdirs:
        sys.exit("usage: python -m experiments.report <workdir> [more workdirs]")
    try:
        for w in workdirs:  # every workdir checked before any report is printed
            report.check(w)
        for w in workdirs:
            report.print_report(w)
    except plots.NotARunDir as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
