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
* ``:cpu`` (default): a 1-layer LSTM of 512 units, embedding 64, 32 streams × windows of 100,
  Adam 2e-3 with cosine decay, gradient clipping 5 (char-rnn's), 3,000 steps (≈ 10 epochs);
  target: validation ≤ 1.55 nats/char within 30 minutes on 2 CPU cores.
* ``:gru``, ``:rnn``: the same budget at the LSTM's parameter count (1.22 M): GRU of 600 units,
  tanh RNN of 1,040 units (``:rnn`` clips at 1 and starts from a lower learning rate).
* ``:tbptt10``, ``:tbptt50``, ``:tbptt200``: the LSTM with windows of 10, 50 and 200 characters
  and as many characters per step as ``:cpu`` (streams × window = 3,200).
* ``:pt``: the Portuguese side of the Tatoeba pairs (``task.corpus=por_eng``), for the cloze
  probes (experiments/probes.py cloze); ``:pt_rnn`` the tanh RNN on it.
* ``:gpu``/``:tpu``: char-rnn's model: 2 layers of 512, dropout 0.5, 50 streams × 50 characters.
Measured here: docs/char_lm.md.
"""

from seqjax.config import base_config

VARIANTS = ("smoke", "cpu", "gru", "rnn", "tbptt10", "tbptt50", "tbptt200", "pt", "pt_rnn", "gpu",
            "tpu")
# the tanh RNN and GRU widths that give the LSTM's 1.22 M parameters (embedding 64, 65 chars)
EQUAL_PARAMS_HIDDEN = {"lstm": 512, "gru": 600, "rnn": 1040}


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
    elif variant in ("gru", "rnn"):
        c.model.cell = variant
        c.model.hidden = EQUAL_PARAMS_HIDDEN[variant]
        if variant == "rnn":
            c.train.grad_clip = 1.0
            c.train.learning_rate = 1e-3
    elif variant.startswith("tbptt"):
        window = int(variant[len("tbptt"):])
        c.train.tbptt = window
        c.train.batch_size = 3200 // window
    elif variant in ("pt", "pt_rnn"):
        c.task.corpus = "por_eng"
        c.task.prompts = ("O tempo que passei na China ", "João entrou na sala. ")
        c.train.num_steps = 1500
        if variant == "pt_rnn":
            c.model.cell = "rnn"
            c.model.hidden = EQUAL_PARAMS_HIDDEN["rnn"]
            c.train.grad_clip = 1.0
            c.train.learning_rate = 1e-3
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
        raise ValueError(f"unknown variant {variant!r}; choose one of: smoke, cpu, gru, rnn, "
                         f"tbptt10, tbptt50, tbptt200, pt, pt_rnn, gpu, tpu")
    return c
