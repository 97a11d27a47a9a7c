r"""Character-level language model on tiny Shakespeare, trained with stateful truncated BPTT.

    python -m experiments.main --config=configs/char_lm.py --workdir=runs/char_lm/lstm
    tensorboard --logdir runs/char_lm     # TEXT tab: samples at every evaluation
    cat runs/char_lm/lstm/figures/samples.md

The raw file is read from ``../shared/data/tiny_shakespeare`` (or ``--config.data.raw_dir``) and
prepared once. The training text is read as ``train.batch_size`` parallel streams, windows of
``train.tbptt`` characters, the state carried from window to window (seqjax.tasks.char_lm).
Evaluation reads the 55,770 validation characters as 32 pieces, each in one pass, and draws
samples after the prompts "ROMEO:" and "First Citizen:\n".

Variants:
* ``:smoke``: tests, seconds.
* ``:cpu`` (default): a 1-layer LSTM of 512 units, embedding 64, dropout 0.25 on the embedding
  and on the LSTM's outputs (Zaremba et al. 2014: the non-recurrent connections only), 32
  streams × windows of 100, Adam 2e-3 with cosine decay, gradient clipping 5 (char-rnn's),
  3,000 steps (≈ 10 epochs);
  target: validation ≤ 1.55 nats/char within 30 minutes on 2 CPU cores.
* ``:no_dropout``: ``:cpu`` without dropout: it overfits (validation rises from step 1,000 on).
* ``:small``: the study's reference: a 1-layer LSTM of 256 units (0.35 M parameters), no
  dropout, the same streams and windows, 1,000 steps (≈ 3 epochs).
* ``:gru``, ``:rnn``: ``:small``'s budget at its parameter count: GRU of 299 units, tanh RNN of
  526 units (``:rnn`` clips at 1 and starts from a lower learning rate).
* ``:tbptt10``, ``:tbptt50``, ``:tbptt200``: ``:small`` with windows of 10, 50 and 200
  characters and as many characters per step (streams × window = 3,200).
* ``:pt``: ``:small`` on the Portuguese side of the Tatoeba pairs (``task.corpus=por_eng``),
  for the cloze probes (``python -m experiments.probes cloze``); ``:pt_rnn`` the tanh RNN.
* ``:gpu``/``:tpu``: char-rnn's model: 2 layers of 512, dropout 0.5, 50 streams × 50 characters.
Measured here: docs/char_lm.md.
"""

from seqjax.config import base_config

VARIANTS = ("smoke", "cpu", "no_dropout", "small", "gru", "rnn", "tbptt10", "tbptt50",
            "tbptt200", "pt", "pt_rnn", "gpu", "tpu")
# widths with the parameter count of :small's LSTM (0.35 M with embedding 64 and 66 ids)
EQUAL_PARAMS_HIDDEN = {"lstm": 256, "gru": 299, "rnn": 526}


def get_config(variant: str = "cpu"):
    variant = variant or "cpu"
    c = base_config()
    c.task.name = "char_lm"
    c.task.corpus = "tiny_shakespeare"
    c.task.seq_len = 100             # not read by char_lm: windows are train.tbptt long
    c.task.eval_streams = 32
    c.task.prompts = ("ROMEO:", "First Citizen:\n")
    c.task.sample_length = 300
    c.task.sample_temperature = 0.8
    c.model.cell = "lstm"
    c.model.embed_dim = 64
    c.model.hidden = 512
    c.model.dropout = 0.25           # on the embedding and on the LSTM's outputs
    c.train.optimizer = "adam"
    c.train.learning_rate = 2e-3
    c.train.schedule = "cosine"
    c.train.grad_clip = 5.0
    c.train.batch_size = 32          # parallel streams
    c.train.tbptt = 100              # characters per window
    c.train.num_steps = 3000
    c.train.eval_every = 500
    c.train.diagnostics_every = 0    # gradient flow across a window: experiments/char_lm_study.py
    c.train.checkpoint_every = 500
    c.train.log_every = 50
    if variant == "smoke":
        c.task.eval_streams = 8
        c.task.sample_length = 20
        c.model.embed_dim = 8
        c.model.hidden = 16
        c.train.batch_size = 8
        c.train.tbptt = 8
        c.train.num_steps = 6
        c.train.eval_every = 3
        c.train.checkpoint_every = 3
        c.train.log_every = 2
    elif variant == "no_dropout":
        c.model.dropout = 0.0
    elif variant in ("small", "gru", "rnn", "pt", "pt_rnn") or variant.startswith("tbptt"):
        _study(c, variant)
    elif variant in ("gpu", "tpu"):
        c.model.impl = "auto"
        c.model.layers = 2
        c.model.dropout = 0.5
        c.train.batch_size = 50
        c.train.tbptt = 50
        c.train.num_steps = 20000
        c.train.eval_every = 1000
        c.train.checkpoint_every = 1000
    elif variant != "cpu":
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    return c


def _study(c, variant: str) -> None:
    """The comparison runs: ``:small``'s size and budget, one thing changed."""
    cell = {"gru": "gru", "rnn": "rnn", "pt_rnn": "rnn"}.get(variant, "lstm")
    c.model.cell, c.model.hidden = cell, EQUAL_PARAMS_HIDDEN[cell]
    c.model.dropout = 0.0            # 3 epochs: these widths do not overfit yet
    c.train.num_steps = 1000
    c.train.eval_every = c.train.checkpoint_every = 250
    if cell == "rnn":
        c.train.grad_clip = 1.0
        c.train.learning_rate = 1e-3
    if variant.startswith("tbptt"):
        c.train.tbptt = int(variant[len("tbptt"):])
        c.train.batch_size = 3200 // c.train.tbptt
    if variant.startswith("pt"):
        c.task.corpus = "por_eng"
        c.task.prompts = ("O tempo que passei na China ", "João entrou na sala. ")
