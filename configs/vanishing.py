r"""The headline experiment: tanh RNN vs LSTM on the adding problem, gradient flow measured.

    python -m experiments.main --config=configs/vanishing.py --workdir=runs/vanishing

Trains a tanh RNN (orthogonal recurrence, ρ=1) and an LSTM (forget bias 1) one after the
other on the adding problem (T=100, H=64, Adam 3e-3, clip 1.0, batch 64), logging
‖∂L/∂h_t‖ for every t every 100 steps, then writes <workdir>/figures/: eval MSE vs step with
the 0.167 baseline; ‖∂L/∂h_t‖ vs t at init and at the end; the (step × t) heatmaps.

Variants: ``:smoke`` (seconds, for tests), ``:cpu`` (default; ≈ 80 s on a 2-core CPU),
``:gpu``/``:tpu`` (T=400, H=128, batch 256, same code).
Expected (``:cpu``): the RNN's eval MSE stays at the 1/6 baseline, the LSTM's falls
far below it (docs/vanishing_gradients.md has the measured numbers).
"""

from configs.adding import get_config as adding_config


def get_config(variant: str = "cpu"):
    c = adding_config(variant)
    c.sweep.model = {"cell": ["rnn", "lstm"]}
    return c
