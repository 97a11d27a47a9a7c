"""Figures and a short table of final numbers for a finished workdir (no training).

    python -m experiments.report runs/sweep_init

The trainer's command line prints this report at the end of a run.
"""

import os
import shlex

import numpy as np

from seqjax import plots, rundir


def is_seed_or_T_sweep(workdir: str) -> bool:
    sweep = plots.load_sweep(workdir)
    return bool(sweep) and bool({"seed", "task.seq_len"} & set(sweep["sweep"]))


def draw(workdir: str, out: str) -> list[str]:
    """The figures of a workdir into ``out``: a seed or T sweep as a sweep (bands over seeds,
    vs-T figures); anything else run by run, plus side-by-side figures for many conditions."""
    if is_seed_or_T_sweep(workdir):
        return plots.sweep_figures(workdir, out)
    dirs = rundir.run_dirs(workdir)
    paths = plots.all_figures(dirs, out)
    if len(dirs) > 2 and plots.load_sweep(workdir):
        paths += plots.sweep_figures(workdir, out)
    return paths


def check(workdir: str) -> None:
    """Raise ``plots.NotARunDir`` (one line naming ``workdir``) unless it is a run or a sweep."""
    problem = plots.run_dir_problem(workdir)
    if problem:
        raise plots.NotARunDir(problem)


def print_report(workdir: str) -> None:
    check(workdir)
    paths = draw(workdir, os.path.join(workdir, rundir.FIGURES_DIR))
    if is_seed_or_T_sweep(workdir):
        print_sweep_table(workdir)
    else:
        print_run_table(rundir.run_dirs(workdir))
    print("\nfigures:\n" + "\n".join(f"  {p}" for p in paths))
    print(f"\nTensorBoard:\n  tensorboard --logdir {shlex.quote(workdir)}")


def print_run_table(dirs) -> None:
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


def print_sweep_table(workdir: str) -> None:
    """Per condition and T: init ratio (geometric mean, range), success rate, final metric."""
    table = plots.sweep_table(plots.load_sweep(workdir))
    print(f"\n{'condition':34s} {'T':>6s} {'h0/hT at init (gmean, min-max)':>34s} "
          f"{'success':>13s} {'final (mean)':>13s}")
    print("  ('<' a seed's ratio underflowed float32 to exactly 0; the mean is then an upper bound)")
    for cond, by_T in table.items():
        for T in sorted(by_T):
            c = by_T[T]
            r = np.asarray(c["ratios"], np.float64)
            if r.size:
                mean, under = plots.gmean_ratio(r)
                lo = "0" if r.min() <= 0 else f"{r.min():.1e}"
                ratio = (f"{'<' if under else ' '}{mean:8.2e} ({lo}-{r.max():.1e})"
                         if r.max() > 0 else "0 (all underflow f32)")
            else:
                ratio = "-"
            succ = f"{np.mean(c['success']):.0%}" if c["success"] else "-"
            if c.get("diverged"):
                succ += f" ({c['diverged']} NaN)"
            final = [v for v in c["final"] if v is not None]
            fin = f"{np.mean(final):.4g}" if final else "-"
            print(f"{cond:34s} {T:6d} {ratio:>34s} {succ:>13s} {fin:>13s}")
