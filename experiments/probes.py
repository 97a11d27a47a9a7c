"""Probes of trained IMDB runs, from their run directories (never retrains).

    python -m experiments.probes order --runs=runs/imdb_lstm,runs/imdb_bow

``order``: the word-order probe (seqjax.probes): sentence pairs of the same words with
opposite sentiment (``--pairs``, default tests/fixtures/order_pairs.json), each scored
p(positive) by each run. Writes ``<run>/figures/order_probe.md`` for every run and prints
one table of all of them.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

PAIRS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "tests", "fixtures", "order_pairs.json")
_RUNS = flags.DEFINE_list("runs", [], "trained IMDB run directories, comma-separated")
_PAIRS = flags.DEFINE_string("pairs", PAIRS, "JSON file of sentence pairs (seqjax.probes.load_pairs)")


def order(run_dirs: list[str], pairs_path: str = PAIRS) -> str:
    """Run the order probe on every run, write each run's table, return the joint table."""
    from seqjax import probes
    pairs = probes.load_pairs(pairs_path)
    results, notes = {}, []
    for run_dir in run_dirs:
        scorer, info = probes.load_run(run_dir)
        result = probes.order_probe(scorer, pairs)
        path = probes.write_order_table(run_dir, probes.order_table({scorer.label: result}, pairs))
        results[scorer.label] = result
        accuracy = "unfinished" if info["accuracy"] is None else f"{info['accuracy']:.2%}"
        notes.append(f"- `{run_dir}`: {info['model']}, step {info['step']}, test accuracy "
                     f"{accuracy}; {int(result.correct.sum())} of {len(pairs)} pairs ranked "
                     f"correctly ({path})")
    return probes.order_table(results, pairs) + "\n" + "\n".join(notes) + "\n"


def main(argv):
    if argv[1:] != ["order"]:
        raise app.UsageError("usage: python -m experiments.probes order --runs=DIR[,DIR...]")
    if not _RUNS.value:
        raise app.UsageError("give the runs to probe: --runs=runs/imdb_lstm,runs/imdb_bow")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every restore step at INFO
    print(order(_RUNS.value, _PAIRS.value), end="")


if __name__ == "__main__":
    app.run(main)
