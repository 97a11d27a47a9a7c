r"""Vanishing gradients across cells, sequence lengths and seeds (Pascanu et al. 2013 style).

Two studies, one config:

  # 1. ‖∂L/∂h_0‖/‖∂L/∂h_T‖ at initialisation vs T = 10 … 1000, 10 cells × 5 seeds, no training
  python -m experiments.main --config=configs/vanishing_sweep.py:init --workdir=runs/sweep_init
  # 2. adding-problem success rate (eval MSE < 0.05) vs T, tanh RNN vs LSTM, 5 seeds each
  python -m experiments.main --config=configs/vanishing_sweep.py:train --workdir=runs/sweep_train

Seeds (and forget biases, recurrent scales) of one cell and T run as one vmapped program for
``:init`` and on accelerators; training on CPU runs them one after another, which is faster there
(train.vmap_sweep="auto"); cells and T always run one after another. Figures: init_ratio_vs_T.png, success_vs_T.png,
learning_curves_seeds.png in <workdir>/figures.
Runtime on a 2-core CPU: ``:init`` ≈ 10 min, ``:train`` ≈ 19 min (numbers in
docs/vanishing_gradients.md).
Inits: orthogonal recurrent blocks, Glorot inputs, H=128 for ``:init`` (as the
reference numbers of experiments/gradient_flow.py), H=64 for ``:train``.
Expected at init, T=100: tanh RNN 4e-3 to 3e-2; LSTM forget bias 0 ≈ 1e-14, 1 ≈ 3e-3,
2 ≈ 1, 3 ≈ 5; IRNN ≈ 0.7; exploding for ρ=1.5.
"""

from configs.adding import get_config as adding_config

VARIANTS = ("init", "train", "smoke")

INIT_ARMS = (
    "tanh RNN rho=0.9: model.cell=rnn, model.recurrent_scale=0.9",
    "tanh RNN rho=1.0: model.cell=rnn, model.recurrent_scale=1.0",
    "tanh RNN rho=1.1: model.cell=rnn, model.recurrent_scale=1.1",
    "tanh RNN rho=1.5: model.cell=rnn, model.recurrent_scale=1.5",
    "IRNN: model.cell=rnn, model.activation=relu, model.recurrent_init=identity",
    "LSTM fb=0: model.cell=lstm, model.forget_bias=0.0",
    "LSTM fb=1: model.cell=lstm, model.forget_bias=1.0",
    "LSTM fb=2: model.cell=lstm, model.forget_bias=2.0",
    "LSTM fb=3: model.cell=lstm, model.forget_bias=3.0",
    "GRU: model.cell=gru",
)
TRAIN_ARMS = (
    "tanh RNN: model.cell=rnn",
    "LSTM: model.cell=lstm",
)


def get_config(variant: str = "init"):
    variant = variant or "init"
    if variant not in ("init", "train", "smoke"):
        raise ValueError(f"unknown variant {variant!r}; choose one of: init, train, smoke")
    c = adding_config("smoke" if variant == "smoke" else "cpu")
    c.sweep.seed = [0, 1, 2, 3, 4]
    if variant == "init":
        c.model.hidden = 128
        c.train.num_steps = 0
        c.task.eval_size = 64
        c.sweep.task = {"seq_len": [10, 30, 100, 300, 1000]}
        c.sweep_arms = INIT_ARMS
    elif variant == "train":
        c.train.num_steps = 1500
        c.train.eval_every = 250
        c.train.diagnostics_every = 250
        c.train.checkpoint_every = 500
        c.sweep.task = {"seq_len": [25, 50, 100, 200]}
        c.sweep_arms = TRAIN_ARMS
    else:  # smoke: both studies' machinery in seconds
        c.sweep.seed = [0]
        c.sweep.task = {"seq_len": [6, 10]}
        c.sweep_arms = ("LSTM fb=0: model.cell=lstm, model.forget_bias=0.0",
                        "LSTM fb=2: model.cell=lstm, model.forget_bias=2.0")
    return c
