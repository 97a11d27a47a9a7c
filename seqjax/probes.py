"""Probes of trained text classifiers, read from their run directories (never retrains).

The order probe: pairs of sentences made of the same words in a different order, with
opposite sentiment ("The food was good, not bad." / "The food was bad, not good."). Each
sentence is tokenised with the run's own vocabulary (the task's, built from the training
split), padded as the task pads a review, and scored p(positive) = softmax(logits)[1]. A
pair is ranked correctly when its positive sentence scores strictly higher; a tie is not.
A bag-of-words model scores both sentences of a pair identically by construction
(seqjax.models.BagOfWords), so it ranks none of them; a model that reads the order can.

    python -m experiments.probes order --runs=runs/imdb_lstm,runs/imdb_bow
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np

from seqjax import rundir
from seqjax.checkpoint import run_config, trained_model
from seqjax.data import imdb as imdb_data
from seqjax.tasks import get_task_class

ORDER_TABLE = "order_probe.md"


class Scorer(NamedTuple):
    """What scoring a sentence needs: the model, its parameters and the task's text pipeline."""

    model: Any
    params: Any
    vocab: imdb_data.Vocabulary
    seq_len: int
    truncate: str = "pre"
    label: str = "model"


class OrderResult(NamedTuple):
    p_positive: np.ndarray   # (pairs, 2): p(positive) of each pair's two sentences
    correct: np.ndarray      # (pairs,) bool: the positive sentence scored strictly higher
    ties: int                # pairs whose two scores are exactly equal

    @property
    def fraction(self) -> float:
        return float(np.mean(self.correct))


def load_pairs(path: str) -> list[dict]:
    """The pairs of a JSON file ``{"pairs": [{"sentences": [a, b], "positive": 0 or 1}, ...]}``;
    each pair's two sentences must hold the same words (as ``imdb.tokenize`` splits them)."""
    with open(path) as f:
        pairs = json.load(f)["pairs"]
    for i, pair in enumerate(pairs):
        a, b = pair["sentences"]
        if pair["positive"] not in (0, 1):
            raise ValueError(f"{path}: pair {i}: 'positive' must be 0 or 1, got {pair['positive']!r}")
        if collections.Counter(imdb_data.tokenize(a)) != collections.Counter(imdb_data.tokenize(b)):
            raise ValueError(f"{path}: pair {i}: {a!r} and {b!r} do not hold the same words")
    return pairs


def describe(config) -> str:
    """A short name of a run's model: "LSTM", "bidirectional GRU", "bag of words", ..."""
    m = config["model"]
    if m["kind"] == "bow":
        return "bag of words"
    if m["kind"] == "feedforward":
        return "feed-forward"
    return ("bidirectional " if m["bidirectional"] else "") + m["cell"].upper()


def load_run(run_dir: str) -> tuple[Scorer, dict]:
    """(scorer, info) of a trained run (``checkpoint.trained_model``): its model, newest
    parameters and the task's vocabulary. ``info``: step, model description and the final
    test accuracy (if finished)."""
    config = run_config(run_dir)
    if not hasattr(get_task_class(config.task.name), "vocab"):   # before reading a checkpoint
        raise ValueError(f"{run_dir}: task {config.task.name!r} has no vocabulary; the order "
                         f"probe needs a text task (imdb)")
    config, task, model, step, params = trained_model(run_dir)
    summary_path = os.path.join(run_dir, rundir.SUMMARY_FILE)
    accuracy = None
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            accuracy = json.load(f).get("final_eval", {}).get("accuracy")
    label = f"{run_label(run_dir)} ({describe(config)})"
    scorer = Scorer(model, params, task.vocab, task.settings.seq_len, task.settings.truncate,
                    label)
    return scorer, {"step": step, "model": describe(config), "accuracy": accuracy}


def run_label(run_dir: str) -> str:
    return os.path.basename(os.path.normpath(run_dir))


def p_positive(scorer: Scorer, sentences: list[str]) -> np.ndarray:
    """p(positive) of each sentence, all in one batch, tokenised and padded as the task does."""
    tokens, lengths = imdb_data.pad_batch([scorer.vocab.encode(s) for s in sentences],
                                          scorer.seq_len, scorer.truncate)
    apply = jax.jit(lambda p, b: scorer.model.apply({"params": p}, b))
    logits = np.asarray(apply(scorer.params, {"inputs": tokens, "lengths": lengths}), np.float64)
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


def order_probe(scorer: Scorer, pairs: list[dict]) -> OrderResult:
    """Both sentences of every pair scored; which pairs the model ranks correctly."""
    p = p_positive(scorer, [s for pair in pairs for s in pair["sentences"]]).reshape(-1, 2)
    pos = np.asarray([pair["positive"] for pair in pairs])
    rows = np.arange(len(pairs))
    correct = p[rows, pos] > p[rows, 1 - pos]
    return OrderResult(p, correct, int(np.sum(p[:, 0] == p[:, 1])))


def _cell(result: OrderResult, i: int, pos: int) -> str:
    hi, lo = result.p_positive[i, pos], result.p_positive[i, 1 - pos]
    mark = "✓" if result.correct[i] else ("= (tie)" if hi == lo else "✗")
    return f"{hi:.3g} / {lo:.3g} {mark}"


def order_table(results: dict[str, OrderResult], pairs: list[dict]) -> str:
    """Markdown: per pair, each model's p(positive) of the positive / the negative sentence
    and whether it ranks them correctly; the last row, the fraction ranked correctly."""
    labels = list(results)
    head = ["#", "positive sentence", "negative sentence"] + [
        f"{label}: p(positive) of positive / negative" for label in labels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, pair in enumerate(pairs):
        pos = pair["positive"]
        cells = [str(i + 1), pair["sentences"][pos], pair["sentences"][1 - pos]]
        cells += [_cell(results[label], i, pos) for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    total = ["", "**ranked correctly**", ""] + [
        f"**{int(r.correct.sum())} / {len(pairs)} ({r.fraction:.0%})**"
        + (f", {r.ties} ties" if r.ties else "") for r in results.values()]
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines) + "\n"


def write_order_table(run_dir: str, text: str) -> str:
    """``<run_dir>/figures/order_probe.md``; returns its path."""
    out = os.path.join(run_dir, rundir.FIGURES_DIR, ORDER_TABLE)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    return out
