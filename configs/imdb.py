r"""IMDB sentiment (Maas et al. 2011): embedding → LSTM → linear head on the last state.

    python -m experiments.main --config=configs/imdb.py --workdir=runs/imdb \
        --config.data.raw_dir=../shared/data/imdb
    python -m experiments.export_examples runs/imdb    # figures/misclassified_reviews.md

Vocabulary of 5,000 ids from the training reviews only, reviews cut to their last 500
tokens, padded, with per-review lengths (the LSTM stops at each review's last word).
Bidirectional: add ``--config.model.bidirectional=True``. The first run prepares the
reviews into ``data.data_dir`` (≈ 15 s, once); on a machine with internet leave out
``--config.data.raw_dir`` and TFDS downloads the original archive.
Variants: ``:smoke`` (tests, seconds), ``:cpu`` (default; embedding 32, LSTM 64, batch 64,
1,200 steps ≈ 3 epochs, cosine from 2e-3: ≈ 14 min on 2 CPU cores under load, one evaluation
at the end), ``:gpu``/``:tpu`` (the published setup: embedding 32, LSTM 100, batch 64, 1e-3,
evaluated every ≈ epoch for 8 epochs), ``:bow`` (the word-order-blind baseline: the same data,
vocabulary and 1,200 steps as ``:cpu``, mean of 32-d word embeddings → linear), then the
word-order probe on both (sentence pairs of the same words, opposite sentiment)::

    python -m experiments.main --config=configs/imdb.py:bow --workdir=runs/imdb_bow \
        --config.data.raw_dir=../shared/data/imdb
    python -m experiments.probes order --runs=runs/imdb,runs/imdb_bow   # runs/imdb: the :cpu LSTM

Published anchor: ≈ 87% test accuracy for a small LSTM (vocabulary 5,000, length 500,
embedding 32, LSTM 100, 3 epochs; Brownlee's Keras tutorial). Measured here (docs/real_data.md):
``:cpu`` 88.3% on the 25,000 test reviews, ``:bow`` 87.3% (61 s); the constant predictor scores
50%. The order probe: the LSTM ranks 6 of 11 pairs, the bag of words ties on all 11.
"""

from configs.adding import apply_variant
from seqjax.config import base_config


VARIANTS = ("smoke", "cpu", "gpu", "tpu", "bow")


def get_config(variant: str = "cpu"):
    variant = variant or "cpu"
    c = base_config()
    c.task.name = "imdb"
    c.task.vocab_size = 5000
    c.task.seq_len = 500
    c.task.truncate = "pre"          # keep the last 500 tokens (Keras pad_sequences default)
    c.task.eval_size = 25000         # the whole test set
    c.task.eval_batch_size = 500
    c.task.eval_seed = 1234
    c.data.data_dir = ""             # default: $TFDS_DATA_DIR, else <clone>/data/tfds
    c.model.cell = "lstm"
    c.model.embed_dim = 32
    c.model.hidden = 64
    c.model.bidirectional = False
    c.train.optimizer = "adam"
    c.train.learning_rate = 2e-3
    c.train.schedule = "cosine"
    c.train.grad_clip = 1.0
    c.train.batch_size = 64
    c.train.num_steps = 1200         # 25,000 / 64 = 390 steps per epoch: ≈ 3 epochs
    c.train.eval_every = 0           # evaluate once, at the end (25,000 reviews)
    c.train.diagnostics_every = 400
    c.train.checkpoint_every = 200
    c.train.log_every = 50
    if variant == "smoke":
        apply_variant(c, "smoke")
        c.task.vocab_size = 200
        c.task.seq_len = 40
        c.task.eval_size = 64
        c.task.eval_batch_size = 32
        c.model.embed_dim = 8
        c.train.batch_size = 16
        c.train.num_steps = 4
        c.train.eval_every = 0        # evaluate once, at the end
    elif variant in ("gpu", "tpu"):
        c.model.impl = "auto"
        c.model.hidden = 100
        c.train.learning_rate = 1e-3
        c.train.num_steps = 3125     # 8 epochs
        c.train.eval_every = 390     # ≈ every epoch; epoch 3 is the published comparison
        c.train.checkpoint_every = 390
    elif variant == "bow":
        c.model.kind = "bow"
        c.model.embed_dim = 32
    elif variant != "cpu":
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    return c
