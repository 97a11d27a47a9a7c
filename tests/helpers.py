"""Small shared pieces for tests: tiny random problems for every cell."""

import jax
import numpy as np

from seqjax import cells

# name -> (step options, init options) giving each cell a non-trivial parametrisation.
CELL_CASES = {
    "rnn": ({"activation": "tanh"}, {}),
    "lstm": ({}, {"forget_bias": 1.0}),
    "gru": ({}, {}),
}


def random_params(cell, key, input_dim, hidden):
    """Params with every entry random (biases included), so no path is trivially zero."""
    params = cell.init(key, input_dim, hidden)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [0.5 * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)]
    return jax.tree.unflatten(tree, leaves)


def make_problem(name, *, B=3, T=6, D=3, H=4, seed=0):
    step_opts, _ = CELL_CASES[name]
    cell = cells.get_cell(name, **step_opts)
    key = jax.random.key(seed)
    k_p, k_x, k_c = jax.random.split(key, 3)
    params = random_params(cell, k_p, D, H)
    xs = jax.random.normal(k_x, (B, T, D))
    carry = jax.tree.map(lambda z: 0.3 * jax.random.normal(k_c, z.shape, z.dtype),
                         cell.initial_carry(B, H))
    return cell, params, xs, carry


RAGGED = np.array([6, 0, 3])  # full, empty and half-length examples for B=3, T=6
