"""Probes of trained runs, from their run directories (never retrains).

    python -m experiments.probes order --runs=runs/imdb_lstm,runs/imdb_bow
    python -m experiments.probes cloze --runs=runs/char_lm/pt,runs/char_lm/pt_rnn

``order``: the word-order probe (seqjax.probes): sentence pairs of the same words with
opposite sentiment (``--pairs``, default tests/fixtures/order_pairs.json), each scored
p(positive) by each run. Writes ``<run>/figures/order_probe.md`` for every run and prints
one table of all of them.

``cloze``: the long-range cloze probe (seqjax.probes) of character-level language models of
Portuguese (configs/char_lm.py:pt, :pt_rnn): the prompts of ``--cloze`` (default
tests/fixtures/cloze.json), every candidate scored by log p as the continuation of the
prompt, ranked by the total. Writes ``<run>/figures/cloze_probe.md`` for every run and prints
them, then the right answer's rank per prompt and run.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures")
PAIRS = os.path.join(FIXTURES, "order_pairs.json")
CLOZE = os.path.join(FIXTURES, "cloze.json")
PROBES = ("order", "cloze")
_RUNS = flags.DEFINE_list("runs", [], "trained run directories, comma-separated")
_PAIRS = flags.DEFINE_string("pairs", PAIRS, "JSON file of sentence pairs (seqjax.probes.load_pairs)")
_CLOZE = flags.DEFINE_string("cloze", CLOZE, "JSON file of cloze prompts (seqjax.probes.load_cloze)")


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


def cloze(run_dirs: list[str], cloze_path: str = CLOZE) -> str:
    """Run the cloze probe on every run, write each run's page, return them all and the
    right answers' ranks."""
    from seqjax import probes
    data = probes.load_cloze(cloze_path)
    pages, ranks = [], {}
    for run_dir in run_dirs:
        log_prob, info = probes.load_lm(run_dir)
        results = probes.cloze_probe(log_prob, data)
        nats = ("unfinished" if info["nats_per_char"] is None
                else f"{info['nats_per_char']:.3f} nats/char on its {info['eval_split']} text")
        page = (f"## Cloze probe: `{run_dir}`\n\n{info['model']} on {info['corpus']}, step "
                f"{info['step']}, {nats}.\n\n" + probes.cloze_prompts(data) + "\n"
                + probes.cloze_method(data) + "\n" + probes.cloze_table(results, data))
        path = probes.write_figure(run_dir, probes.CLOZE_TABLE, page)
        pages.append(page + f"\n(written to {path})\n")
        ranks[info["label"]] = results
    return ("\n".join(pages) + "\n## The right answer's rank by total log p\n\n"
            + probes.cloze_summary(ranks, data))


def main(argv):
    if len(argv) != 2 or argv[1] not in PROBES:
        raise app.UsageError("usage: python -m experiments.probes order|cloze --runs=DIR[,DIR...]")
    if not _RUNS.value:
        raise app.UsageError("give the runs to probe: --runs=runs/imdb_lstm,runs/imdb_bow "
                             "(order) or --runs=runs/char_lm/pt,runs/char_lm/pt_rnn (cloze)")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every restore step at INFO
    if argv[1] == "order":
        print(order(_RUNS.value, _PAIRS.value), end="")
    else:
        print(cloze(_RUNS.value, _CLOZE.value), end="")


if __name__ == "__main__":
    app.run(main)
