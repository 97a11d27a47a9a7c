r"""How much gradient reaches each timestep at initialisation: tanh RNN vs IRNN vs LSTM vs GRU.

On a batch of the adding problem (T=100 by default), with a linear read-out of h_T and
the MSE loss, it prints ‖∂L/∂h_t‖ (mean over the batch) at t = 0, T/4, T/2, 3T/4, T for
each cell at its initialisation, and the ratio ‖∂L/∂h_0‖ / ‖∂L/∂h_T‖.

Inits (all stated, none hidden): recurrent blocks orthogonal (ρ = 1) except the IRNN
(identity, ReLU); input blocks Glorot uniform; biases zero except the LSTM forget
bias, which is the row's parameter. Read-out Glorot uniform. Parameter seed ``--seed``,
data seed ``--seed + 1``.

    python -m experiments.gradient_flow [--seq_len=100 --hidden=128 --batch=32 --seed=0]
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from seqjax import cells, diagnostics
from seqjax.tasks.adding import adding_batch

# (row label, cell name, step options, init options)
CELL_SPECS = (
    ("tanh RNN (orthogonal, rho=1)", "rnn", {"activation": "tanh"}, {}),
    ("IRNN (ReLU, identity)", "rnn", {"activation": "relu"}, {"recurrent_init": "identity"}),
    ("LSTM forget_bias=0", "lstm", {}, {"forget_bias": 0.0}),
    ("LSTM forget_bias=1", "lstm", {}, {"forget_bias": 1.0}),
    ("LSTM forget_bias=2", "lstm", {}, {"forget_bias": 2.0}),
    ("LSTM forget_bias=3", "lstm", {}, {"forget_bias": 3.0}),
    ("GRU", "gru", {}, {}),
    # the newer cells (minGRU, minLSTM, LRU, LIF); 0.00e+00 means below float32's range for the norm
    ("minGRU update_bias=0", "mingru", {}, {}),
    ("minGRU update_bias=-4", "mingru", {}, {"update_bias": -4.0}),
    ("minLSTM f/i bias 0/0", "minlstm", {}, {}),
    ("minLSTM f/i bias 4/-4", "minlstm", {}, {"forget_bias": 4.0, "input_bias": -4.0}),
    ("LRU |lambda| in [0.9, 0.999]", "lru", {}, {}),
    ("LIF beta=0.9 slope=25", "lif", {}, {}),
)


def init_grad_norms(cell, init_opts: dict, seq_len: int, hidden: int, batch: int, seed: int,
                    dtype=jnp.float32) -> jax.Array:
    """Mean over an adding-problem batch of ‖∂L/∂h_t‖, t = 0..T, at initialisation: ``cell``
    initialised with key ``seed`` and ``init_opts``, a Glorot read-out of h_T, MSE loss;
    the data from key ``seed + 1``. ``dtype=jnp.float64`` computes the gradients in double
    precision (float32 underflows below ~1e-38, reached by T = 1000)."""
    x, y = adding_batch(jax.random.key(seed + 1), batch, seq_len)
    k_cell, k_out = jax.random.split(jax.random.key(seed))
    params = cell.init(k_cell, x.shape[-1], hidden, **init_opts)
    w_out = jax.nn.initializers.glorot_uniform()(k_out, (hidden, 1), jnp.float32)
    with jax.enable_x64(jnp.dtype(dtype) == jnp.float64):
        params, w_out, x, y = jax.tree.map(lambda a: jnp.asarray(a, dtype), (params, w_out, x, y))

        def loss_fn(final_carry, hs):
            return jnp.mean(((cell.hidden(final_carry) @ w_out)[:, 0] - y) ** 2)

        return jnp.mean(diagnostics.hidden_grad_norms(cell, params, x, loss_fn), axis=0)


def measure(seq_len: int = 100, hidden: int = 128, batch: int = 32, seed: int = 0,
            specs=CELL_SPECS) -> dict[str, jax.Array]:
    """{row label: mean over the batch of ‖∂L/∂h_t‖ for t = 0..T} at initialisation."""
    return {label: init_grad_norms(cells.get_cell(name, **step_opts), init_opts, seq_len, hidden,
                                   batch, seed)
            for label, name, step_opts, init_opts in specs}


def format_table(results: dict[str, jax.Array], seq_len: int) -> str:
    ts = [0, seq_len // 4, seq_len // 2, 3 * seq_len // 4, seq_len]
    head = f"{'cell':30s}" + "".join(f"{'t=' + str(t):>11s}" for t in ts) + f"{'h0/hT':>11s}"
    lines = [head, "-" * len(head)]
    for label, norms in results.items():
        row = "".join(f"{float(norms[t]):11.2e}" for t in ts)
        lines.append(f"{label:30s}{row}{float(norms[0] / norms[seq_len]):11.2e}")
    return "\n".join(lines)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags (defined here, not at import, so that other scripts can import
    this module and define flags of the same names)."""
    flags.DEFINE_integer("seq_len", 100, "sequence length T")
    flags.DEFINE_integer("hidden", 128, "hidden units H")
    flags.DEFINE_integer("batch", 32, "examples averaged over")
    flags.DEFINE_integer("seed", 0, "parameter seed (data seed is seed + 1)")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # hide the backend probing lines
    start = time.perf_counter()
    results = measure(FLAGS.seq_len, FLAGS.hidden, FLAGS.batch, FLAGS.seed)
    print(f"‖∂L/∂h_t‖ at initialisation, adding problem, T={FLAGS.seq_len}, H={FLAGS.hidden}, "
          f"batch mean of {FLAGS.batch}, seed {FLAGS.seed}:\n")
    print(format_table(results, FLAGS.seq_len))
    print(f"\n({time.perf_counter() - start:.1f} s on {jax.default_backend()})")


if __name__ == "__main__":
    define_flags()
    app.run(main)
