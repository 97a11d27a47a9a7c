r"""A spiking (LIF) network on row-MNIST: T=28 rows of 28 pixel intensities as input currents,
and a head that reads the top layer's whole spike train (``model.spike_readout``).

    python -m experiments.main --config=configs/spiking_mnist.py --workdir=runs/spiking_mnist \
        --config.data.raw_dir=../shared/data/mnist

Variants: ``cpu`` (default), ``smoke`` (tests, seconds). Readouts (seqjax.config.SPIKE_READOUTS):
``count`` (the default here: logits = W Σ_t s_t + b, snnTorch's ce_count), ``membrane`` (Σ_t u_t
of a leaky integrator u_t = β_out·u_{t−1} + W s_t + b, Spyx's LI layer and integral readout;
β_out = ``model.readout_beta``) and ``last`` (the last spike vector, as configs/smnist.py with
``--config.model.cell=lif``); compare them with ``--config.model.spike_readout=...``.
Data, splits and evaluation as configs/smnist.py (the whole 10,000-digit test set).

Expected (docs/cells.md, "Reading the whole spike train"; measured pinned to one core of a shared
2-core CPU): the default (H=256, 6,000 steps ≈ 12.8 epochs of batch 128, cosine from 2e-3) reaches
96.55% test accuracy (target ≥ 95%) at spike rate 0.065 in 8 min 43 s. At H=128 and 6,000 steps:
count 95.82%, membrane 94.94%, last 71.10%; at H=128 and 2,000 steps: count 93.80%, membrane 92.08%, last
62.51%.
"""

from configs import smnist

VARIANTS = ("cpu", "smoke")


def get_config(variant: str = "cpu"):
    variant = variant or "cpu"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    c = smnist.get_config("rows:smoke" if variant == "smoke" else "rows")
    c.model.cell = "lif"
    c.model.spike_readout = "count"
    if variant == "smoke":
        c.model.hidden = 16
        return c
    c.model.hidden = 256
    c.train.num_steps = 6000          # ≈ 12.8 epochs of batch 128; cosine from 2e-3
    c.train.eval_every = c.train.checkpoint_every = c.train.diagnostics_every = 1000
    return c
