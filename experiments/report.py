"""Figures and a short table of final numbers for a finished workdir (no training)."""

import os

from seqjax import plots, train


def print_report(workdir: str) -> None:
    dirs = train.run_dirs(workdir)
    paths = plots.all_figures(dirs, os.path.join(workdir, "figures"))
    print("\nfinal numbers:")
    for d in dirs:
        run = plots.load_run(d)
        s = run["summary"] or {}
        ev = s.get("final_eval", {})
        base = s.get("baseline", {})
        shown = "  ".join(f"{k} {v:.4g}" + (f" (baseline {base[k]:.4g})" if k in base else "")
                          for k, v in ev.items() if k != "loss")
        print(f"  {run['label']:28s} {shown}   [{s.get('steps', '?')} steps, "
              f"{s.get('wall_time_s', float('nan')):.0f} s]")
    print("\nfigures:\n" + "\n".join(f"  {p}" for p in paths))
    print(f"\nTensorBoard:\n  tensorboard --logdir {workdir}")
