"""Words to ids and back, and BLEU: what the captioning and translation tasks share.

A word vocabulary built from training text only (``Vocab.build``), with four reserved ids:
``PAD=0`` (padding; ignored by the loss), ``BOS=1`` (the decoder's first input), ``EOS=2``
(end of sentence; the decoder must emit it), ``UNK=3`` (a word outside the vocabulary).

Decoder batches are teacher-forced pairs made by ``decoder_arrays``: the input is
``BOS w1 … wn`` and the target ``w1 … wn EOS``, both padded with PAD to ``max_len + 1``.

BLEU is sacreBLEU's corpus BLEU (Post 2018), never a hand-written count: ``bleu`` returns
BLEU-1…4 (``max_ngram_order`` n, uniform weights, the brevity penalty, sacreBLEU's 13a
tokenisation) on detokenised strings.
"""

from __future__ import annotations

import collections
import re
from typing import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks: "Tom's here." -> ["tom", "'", "s", "here", "."]."""
    return _TOKEN_RE.findall(text.lower() if lowercase else text)


def detokenize(tokens: Sequence[str]) -> str:
    """The inverse of ``tokenize`` up to spacing: no space before , . ! ? : ; and around '."""
    text = " ".join(tokens)
    text = re.sub(r" ([,.!?:;%)])", r"\1", text)
    text = re.sub(r"([(¿¡]) ", r"\1", text)
    return re.sub(r" ?' ?", "'", text)


class Vocab:
    """Word ↔ id. ``words[i]`` is the word of id i; the first four are ``SPECIALS``."""

    def __init__(self, words: Sequence[str]):
        if tuple(words[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {tuple(words[:4])}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_count: int = 1,
              max_size: int = 0) -> "Vocab":
        """From tokenised training sentences: words seen >= ``min_count`` times, most frequent
        first (ties alphabetically, so the vocabulary does not depend on data order), at most
        ``max_size`` ids in all (0: no limit)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count!r}")
        counts = collections.Counter(w for s in sentences for w in s)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        if max_size:
            kept = kept[:max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.index.get(w, UNK) for w in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words up to the first EOS (or PAD); BOS skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i in (EOS, PAD):
                break
            if i != BOS:
                out.append(self.words[i] if 0 <= i < len(self.words) else SPECIALS[UNK])
        return out


def decoder_arrays(sentences_ids: Sequence[Sequence[int]], max_len: int) -> dict[str, np.ndarray]:
    """Teacher-forcing arrays (N, max_len + 1), int32: ``dec_inputs`` = BOS w1..wn PAD…,
    ``targets`` = w1..wn EOS PAD…; sentences longer than ``max_len`` are cut to it."""
    n = len(sentences_ids)
    inputs = np.full((n, max_len + 1), PAD, np.int32)
    targets = np.full((n, max_len + 1), PAD, np.int32)
    for i, ids in enumerate(sentences_ids):
        ids = list(ids)[:max_len]
        inputs[i, 0] = BOS
        inputs[i, 1:len(ids) + 1] = ids
        targets[i, :len(ids)] = ids
        targets[i, len(ids)] = EOS
    return {"dec_inputs": inputs, "targets": targets}


def encoder_arrays(sentences_ids: Sequence[Sequence[int]], max_len: int):
    """(tokens (N, max_len) int32 padded with PAD, lengths (N,) int32 >= 1), cut to ``max_len``."""
    tokens = np.full((len(sentences_ids), max_len), PAD, np.int32)
    lengths = np.zeros((len(sentences_ids),), np.int32)
    for i, ids in enumerate(sentences_ids):
        ids = list(ids)[:max_len] or [UNK]
        tokens[i, :len(ids)] = ids
        lengths[i] = len(ids)
    return tokens, lengths


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
         *, lowercase: bool = True) -> dict[str, float]:
    """Corpus BLEU-1…4 with sacreBLEU: ``references[i]`` holds every reference of sentence i
    (any number ≥ 1 per sentence). Returns {"bleu1": .., …, "bleu4": ..} on sacreBLEU's
    0–100 scale; "bleu4" is the standard BLEU."""
    from sacrebleu.metrics import BLEU  # evaluation only: kept out of the import of models

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("BLEU of an empty corpus is undefined")
    n_refs = max(len(r) for r in references)
    # sacreBLEU takes reference *streams*; sentences with fewer references pad with None.
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(n_refs)]
    out = {}
    for n in (1, 2, 3, 4):
        metric = BLEU(max_ngram_order=n, lowercase=lowercase, effective_order=False)
        out[f"bleu{n}"] = float(metric.corpus_score(list(hypotheses), streams).score)
    return out
