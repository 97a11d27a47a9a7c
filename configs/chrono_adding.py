r"""Chrono initialisation (Tallec & Ollivier 2018) against forget bias 1 and 2: the LSTM on the
adding problem at T = 200 or 400, five seeds per init.

    python -m experiments.main --config=configs/chrono_adding.py:200 --workdir=runs/chrono_200
    python -m experiments.main --config=configs/chrono_adding.py:400 --workdir=runs/chrono_400

Chrono draws b_f = log u, u ~ U(1, T_max − 1), per unit and sets b_i = −b_f
(``model.forget_bias="chrono"``, ``model.chrono_tmax`` = T here), so the units' memory times
spread over [2, T]. Otherwise configs/adding.py's LSTM (H=64, Adam 3e-3, clip 1, batch 64).
Success: final eval MSE < 0.05 (baseline 0.167); the report prints the success rate per init
and ‖∂L/∂h_0‖/‖∂L/∂h_T‖ at initialisation. Variants: ``200`` (default), ``400``, ``smoke``.
Measured numbers: docs/vanishing_gradients.md, "Chrono initialisation".
"""

from configs.adding import get_config as adding_config

STEPS = {200: 3000, 400: 3000}
VARIANTS = ("200", "400", "smoke")


def arms(seq_len: int) -> tuple[str, ...]:
    return ("LSTM fb=1: model.cell=lstm, model.forget_bias=1.0",
            "LSTM fb=2: model.cell=lstm, model.forget_bias=2.0",
            f"LSTM chrono: model.cell=lstm, model.forget_bias=chrono, "
            f"model.chrono_tmax={float(seq_len)}")


def get_config(variant: str = "200"):
    variant = variant or "200"
    if variant not in ("200", "400", "smoke"):
        raise ValueError(f"unknown variant {variant!r}; choose one of: 200, 400, smoke")
    c = adding_config("smoke" if variant == "smoke" else "cpu")
    if variant == "smoke":
        c.sweep.seed = [0]
        c.sweep_arms = arms(c.task.seq_len)
        return c
    T = int(variant)
    c.task.seq_len = T
    c.train.num_steps = STEPS[T]
    c.train.eval_every = c.train.diagnostics_every = 500
    c.train.checkpoint_every = 1000
    c.train.log_every = 250
    c.sweep.seed = [0, 1, 2, 3, 4]
    c.sweep_arms = arms(T)
    return c
