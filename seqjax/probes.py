"""Probes of trained text models, read from their run directories (never retrains).

The order probe: pairs of sentences made of the same words in a different order, with
opposite sentiment ("The food was good, not bad." / "The food was bad, not good."). Each
sentence is tokenised with the run's own vocabulary (the task's, built from the training
split), padded as the task pads a review, and scored p(positive) = softmax(logits)[1]. A
pair is ranked correctly when its positive sentence scores strictly higher; a tie is not.
A bag-of-words model scores both sentences of a pair identically by construction
(seqjax.models.BagOfWords), so it ranks none of them; a model that reads the order can.

The long-range cloze probe: a character-level language model (task char_lm) reads a prompt
whose blank is told by a clue far back ("O tempo que passei na China ... aprender a falar
____": chinês, francês, inglês or alemão?). Each candidate c is scored as the continuation
of the prompt: log p(c + after | before + prompt) in nats (seqjax.lm.continuation_log_prob),
``before`` a newline (the corpus holds one sentence per line) and ``after`` a period (it
closes the word), the same for every candidate. Reported: that total and its mean per scored
character; candidates are RANKED BY THE TOTAL, rank 1 the most likely, a tie counting
against each tied candidate (two equal best are both rank 2). A character the model's
vocabulary lacks is an error that names it (never the unknown id).

    python -m experiments.probes order --runs=runs/imdb_lstm,runs/imdb_bow
    python -m experiments.probes cloze --runs=runs/char_lm/pt,runs/char_lm/pt_rnn
"""

from __future__ import annotations

import collections
import json
import os
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from seqjax import lm, rundir
from seqjax.checkpoint import run_config, trained_model
from seqjax.data import imdb as imdb_data
from seqjax.tasks import get_task_class

ORDER_TABLE = "order_probe.md"
CLOZE_TABLE = "cloze_probe.md"


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


def final_eval(run_dir: str, metric: str):
    """The run's final evaluation of ``metric`` (summary.json), None if it has not finished."""
    path = os.path.join(run_dir, rundir.SUMMARY_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get("final_eval", {}).get(metric)


def load_run(run_dir: str) -> tuple[Scorer, dict]:
    """(scorer, info) of a trained run (``checkpoint.trained_model``): its model, newest
    parameters and the task's vocabulary. ``info``: step, model description and the final
    test accuracy (if finished)."""
    config = run_config(run_dir)
    if not hasattr(get_task_class(config.task.name), "vocab"):   # before reading a checkpoint
        raise ValueError(f"{run_dir}: task {config.task.name!r} has no vocabulary; the order "
                         f"probe needs a text task (imdb)")
    config, task, model, step, params = trained_model(run_dir)
    accuracy = final_eval(run_dir, "accuracy")
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
    return write_figure(run_dir, ORDER_TABLE, text)


def write_figure(run_dir: str, name: str, text: str) -> str:
    """``<run_dir>/figures/<name>``; returns its path."""
    out = os.path.join(run_dir, rundir.FIGURES_DIR, name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    return out


# ------------------------------------------------------------------ the long-range cloze probe

LogProb = Callable[[str, str], float]   # (context, continuation) -> log p(continuation | context)


class ClozeResult(NamedTuple):
    total: np.ndarray      # (candidates,) log p(candidate + after | before + prompt), nats
    per_char: np.ndarray   # (candidates,) total / the characters scored (candidate + after)
    ranks: np.ndarray      # (candidates,) int, by total: 1 + the others scoring at least as high
    answer: int            # index of the right candidate

    @property
    def answer_rank(self) -> int:
        return int(self.ranks[self.answer])


def load_cloze(path: str) -> dict:
    """``{"before": str, "after": str, "items": [{"prompt", "candidates", "answer", "clue"},
    ...]}`` of a JSON file; each item gains ``distance``, the characters between the end of
    its clue's last occurrence and the blank."""
    with open(path) as f:
        data = json.load(f)
    for i, item in enumerate(data["items"]):
        prompt, candidates = item["prompt"], item["candidates"]
        if len(set(candidates)) != len(candidates) or len(candidates) < 2:
            raise ValueError(f"{path}: item {i}: needs two or more distinct candidates, got "
                             f"{candidates!r}")
        if item["answer"] not in candidates:
            raise ValueError(f"{path}: item {i}: the answer {item['answer']!r} is not among "
                             f"the candidates {candidates!r}")
        if item["clue"] not in prompt:
            raise ValueError(f"{path}: item {i}: the clue {item['clue']!r} is not in the prompt")
        item["distance"] = len(prompt) - prompt.rindex(item["clue"]) - len(item["clue"])
    return data


def rank_scores(scores) -> np.ndarray:
    """Rank of each score, 1 the highest: 1 + the number of OTHER scores at least as high (a
    tie counts against every tied candidate: two equal best are both rank 2)."""
    s = np.asarray(scores, np.float64)
    return np.sum(s[None, :] >= s[:, None], axis=1)   # each counts itself: that is the 1


def score_cloze(log_prob: LogProb, item: dict, before: str = "\n", after: str = ".") -> ClozeResult:
    """Every candidate of ``item`` scored by ``log_prob(before + prompt, candidate + after)``."""
    total = np.asarray([log_prob(before + item["prompt"], c + after)
                        for c in item["candidates"]], np.float64)
    per_char = total / np.asarray([len(c + after) for c in item["candidates"]])
    return ClozeResult(total, per_char, rank_scores(total),
                       item["candidates"].index(item["answer"]))


def cloze_probe(log_prob: LogProb, data: dict) -> list[ClozeResult]:
    """``score_cloze`` of every item of ``load_cloze``'s data."""
    return [score_cloze(log_prob, item, data["before"], data["after"]) for item in data["items"]]


def encode_known(vocab, text: str) -> np.ndarray:
    """``vocab.encode(text)``, refusing a character the vocabulary lacks (which ``encode``
    would map silently to the unknown id)."""
    missing = sorted({c for c in text if c not in vocab.index})
    if missing:
        names = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
        raise ValueError(f"character(s) {names} of {text!r} not in the model's vocabulary "
                         f"({len(vocab) - 1} characters of its training text)")
    return vocab.encode(text)


def lm_log_prob(cell, params, vocab) -> LogProb:
    """log p(continuation | context) of a character-level model, in nats (float)."""
    score = jax.jit(lm.continuation_log_prob, static_argnums=0)
    return lambda context, continuation: float(score(
        cell, params, encode_known(vocab, context), encode_known(vocab, continuation)))


def lm_name(config) -> str:
    """"LSTM 256", "tanh RNN 526", "GRU 299 × 2 layers": a char_lm run's model."""
    m = config.model
    name = f"{m.activation} RNN" if m.cell == "rnn" else m.cell.upper()
    return f"{name} {m.hidden}" + (f" × {m.layers} layers" if m.layers > 1 else "")


def load_lm(run_dir: str) -> tuple[LogProb, dict]:
    """(log_prob, info) of a trained char_lm run; ``info``: label, model, step and the final
    evaluation's nats per character (None if unfinished)."""
    config = run_config(run_dir)
    if config.task.name != "char_lm":   # before reading a checkpoint or a corpus
        raise ValueError(f"{run_dir}: task {config.task.name!r} is not a character-level "
                         f"language model; the cloze probe needs a char_lm run")
    config, task, _, step, params = trained_model(run_dir)
    nats = final_eval(run_dir, "nats_per_char")
    info = {"label": f"{run_label(run_dir)} ({lm_name(config)})", "model": lm_name(config),
            "step": step, "nats_per_char": nats, "corpus": config.task.corpus,
            "eval_split": task.settings.eval_split}
    return lm_log_prob(task.cell, params, task.vocab), info


def _blank(item: dict) -> str:
    return f"{item['prompt']}____"


def cloze_table(results: list[ClozeResult], data: dict) -> str:
    """Markdown, one run: per item and candidate, log p total and per character and the rank
    by total (the right answer in bold); the last row, the right answer's rank per item."""
    head = ["prompt", "candidate", "log p total (nats)", "log p per character (nats)",
            "rank by total"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, (item, r) in enumerate(zip(data["items"], results)):
        for j, c in enumerate(item["candidates"]):
            name = f"**{c}** (right)" if j == r.answer else c
            cells = [str(i + 1) if j == 0 else "", name, f"{r.total[j]:.2f}",
                     f"{r.per_char[j]:.3f}", str(r.ranks[j])]
            lines.append("| " + " | ".join(cells) + " |")
    ranks = "; ".join(f"prompt {i + 1}: {r.answer_rank} of {len(r.ranks)}"
                      for i, r in enumerate(results))
    lines.append(f"|  | **right answer's rank** |  |  | {ranks} |")
    return "\n".join(lines) + "\n"


def cloze_prompts(data: dict) -> str:
    """Markdown list of the items: the prompt with its blank, the clue and its distance."""
    return "\n".join(f"{i + 1}. \"{_blank(item)}\" ({', '.join(item['candidates'])}; right: "
                     f"{item['answer']}, its clue \"{item['clue']}\" {item['distance']} "
                     f"characters before the blank)"
                     for i, item in enumerate(data["items"])) + "\n"


def cloze_method(data: dict) -> str:
    """One paragraph: how the candidates are scored and ranked."""
    return (f"Each candidate is scored as the continuation of {data['before']!r} + the prompt, "
            f"followed by {data['after']!r}: log p in nats (seqjax.lm.continuation_log_prob), "
            f"summed over the candidate's characters and the {data['after']!r} (total) and "
            f"its mean per character. Candidates are ranked by the total (1 = the most "
            f"likely; a tie counts against each tied candidate).\n")


def cloze_summary(results: dict[str, list[ClozeResult]], data: dict) -> str:
    """Markdown, several runs: the right answer's rank (by total log p) per item and run."""
    items = data["items"]
    head = ["run"] + [f"prompt {i + 1}: {item['answer']} (of {len(item['candidates'])})"
                      for i, item in enumerate(items)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, rs in results.items():
        lines.append("| " + " | ".join([label] + [str(r.answer_rank) for r in rs]) + " |")
    return "\n".join(lines) + "\n"
