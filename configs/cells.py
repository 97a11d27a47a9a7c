r"""Every cell on the same task, side by side: the classic cells and the newer answers to
vanishing gradients (IRNN, minGRU, minLSTM, LRU, spiking LIF); seed 0 (five seeds for :init).

    # adding problem at T = 100 and 200 (the default variant)
    python -m experiments.main --config=configs/cells.py:adding --workdir=runs/cells_adding
    # ‖∂L/∂h_0‖/‖∂L/∂h_T‖ at initialisation vs T = 10 … 1000, 5 seeds, no training
    python -m experiments.main --config=configs/cells.py:init --workdir=runs/cells_init
    # temporal order (T = 100) and copy memory (T = 50)
    python -m experiments.main --config=configs/cells.py:order --workdir=runs/cells_order
    python -m experiments.main --config=configs/cells.py:copy --workdir=runs/cells_copy

Each arm is one cell with its paper's default initialisation, plus minGRU with its update gate
biased towards remembering (update_bias −4, which keeps 0.16 of the gradient at init,
docs/vanishing_gradients.md, "Gradient flow at initialisation"). Hyper-parameters are those of
configs/adding.py etc. (H=64, Adam 3e-3, clip 1, batch 64) for every cell. Figures:
final_by_condition.png (the final metric of every cell) and gradient_panels_T{T}.png (‖∂L/∂h_t‖
vs t at init and after training, a panel per cell), for ``:init`` init_ratio_vs_T.png, in
<workdir>/figures; ``python -m experiments.report <workdir>`` prints the table again and redraws
them.
The LIF cell reads its inputs as currents (model.spike_encoding="none") and the head reads its
last spike vector. Runtime on a 2-core CPU and results: docs/cells.md.
"""

from configs import adding, copy, temporal_order

VARIANTS = ("adding", "init", "order", "copy", "smoke")

ARMS = (
    "tanh RNN: model.cell=rnn",
    "IRNN: model.cell=rnn, model.activation=relu, model.recurrent_init=identity",
    "LSTM: model.cell=lstm",
    "GRU: model.cell=gru",
    "minGRU: model.cell=mingru",
    "minGRU ub=-4: model.cell=mingru, model.update_bias=-4.0",
    "minLSTM: model.cell=minlstm",
    "LRU: model.cell=lru",
    "LIF: model.cell=lif",
)


def get_config(variant: str = "adding"):
    variant = variant or "adding"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    if variant == "adding":
        c = adding.get_config("cpu")
        c.sweep.task = {"seq_len": [100, 200]}
    elif variant == "init":  # as vanishing_sweep.py:init (H=128), for every cell
        c = adding.get_config("cpu")
        c.model.hidden, c.train.num_steps, c.task.eval_size = 128, 0, 64
        c.sweep.seed = [0, 1, 2, 3, 4]
        c.sweep.task = {"seq_len": [10, 30, 100, 300, 1000]}
    elif variant == "order":
        c = temporal_order.get_config("cpu")
    elif variant == "copy":
        c = copy.get_config("cpu")
    else:  # smoke: the whole machinery in seconds
        c = adding.get_config("smoke")
        c.sweep.task = {"seq_len": [6, 10]}
    if variant not in ("smoke", "init"):
        c.train.eval_every = c.train.diagnostics_every = 250
    c.sweep_arms = ARMS
    return c
