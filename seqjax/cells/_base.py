"""The cell interface, the shared plumbing of every cell, and the validators.

Every cell is a frozen (hashable, stateless) dataclass whose methods are pure
functions, so a cell can be a static argument of ``jax.jit``. ``Cell`` declares the
interface (what ``seqjax.unroll``, ``seqjax.fast``, ``seqjax.parallel`` and
``seqjax.diagnostics`` call); ``CellBase`` implements the parts that are the same for
every cell and leaves the maths abstract.

Weights act on row vectors (batch-first): the paper form ``W_hh h_{t-1}`` is
computed as ``h_{t-1} @ W_hh`` with ``W_hh`` stored as (H_in, H_out).
"""

from __future__ import annotations

import abc
import numbers
from typing import Any, Callable, Collection, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = dict[str, Array]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "linear": lambda z: z,
}
RECURRENT_INITS = ("orthogonal", "identity", "normal")
INPUT_INITS = ("glorot_uniform", "normal", "zeros")
# ``init_preset``: "seqjax" is every cell's own init; the others reproduce a library's default
# init of its LSTM, GRU and simple RNN (seqjax.cells.presets), so they cover these cells only.
PRESETS = ("seqjax", "torch", "keras", "flax")
PRESET_CELLS = ("gru", "lstm", "rnn")
CHRONO = "chrono"  # a gate bias drawn as in Tallec & Ollivier (2018): ``chrono_bias``


# --------------------------------------------------------------------------- validators


def is_positive_int(value: Any) -> bool:
    """A positive Python or numpy integer (a bool is not one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def check_positive_int(name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a positive integer (a bool is not one)."""
    if not is_positive_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_choice(name: str, value: Any, allowed: Collection[str]) -> None:
    """Raise a ValueError naming the allowed values unless ``value`` is one of them."""
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(sorted(allowed))}")


def check_preset(preset: Any, cell_name: str, name: str = "init_preset") -> None:
    """Raise a ValueError unless ``preset`` is a preset that covers cell ``cell_name``."""
    check_choice(name, preset, PRESETS)
    if preset != "seqjax" and cell_name not in PRESET_CELLS:
        raise ValueError(
            f"{name} {preset!r} covers the cells {', '.join(PRESET_CELLS)}, not {cell_name!r}; "
            f"the one preset of {cell_name!r} is 'seqjax'")


def check_gate_bias(name: str, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a number (or array) or the string "chrono"."""
    if isinstance(value, str):
        if value != CHRONO:
            raise ValueError(f"{name} must be a number or {CHRONO!r}, got {value!r}")
    elif isinstance(value, bool) or not (isinstance(value, numbers.Real)
                                         or hasattr(value, "dtype")):  # an array, or traced
        raise ValueError(f"{name} must be a number or {CHRONO!r}, got {value!r}")


def check_chrono_tmax(value: Any, name: str = "chrono_tmax") -> None:
    """Raise a ValueError unless ``value`` is a number >= 2 (chrono draws from U(1, T_max - 1))."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 2:
        raise ValueError(f"{name} must be a number >= 2 (chrono draws b = log U(1, T_max - 1)), "
                         f"got {value!r}")


def check_input(params: Params, x: Array, *, rank: int, what: str = "x") -> None:
    """Raise a ValueError unless ``x`` has ``rank`` dims and the cell's feature size."""
    input_dim = params["W_x"].shape[0]
    if x.ndim != rank:
        expected = "(batch, features)" if rank == 2 else "(batch, time, features)"
        raise ValueError(f"{what} must have rank {rank} {expected}, got shape {tuple(x.shape)}")
    if x.shape[-1] != input_dim:
        raise ValueError(
            f"{what} has {x.shape[-1]} features but the cell was initialised with "
            f"input_dim={input_dim}; shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- init blocks


def _recurrent_block(key, hidden: int, init: str, scale: float, dtype) -> Array:
    """One (H, H) recurrent matrix."""
    check_choice("recurrent_init", init, RECURRENT_INITS)
    if init == "orthogonal":
        return jax.nn.initializers.orthogonal(scale=scale)(key, (hidden, hidden), dtype)
    if init == "identity":
        return scale * jnp.eye(hidden, dtype=dtype)
    # normal: entries N(0, scale^2 / H), so the spectral radius is about `scale`.
    return (scale / np.sqrt(hidden)) * jax.random.normal(key, (hidden, hidden), dtype)


def _input_block(key, input_dim: int, hidden: int, init: str, scale: float, dtype) -> Array:
    """One (D, H) input matrix."""
    check_choice("input_init", init, INPUT_INITS)
    if init == "glorot_uniform":
        return scale * jax.nn.initializers.glorot_uniform()(key, (input_dim, hidden), dtype)
    if init == "normal":
        return (scale / np.sqrt(input_dim)) * jax.random.normal(key, (input_dim, hidden), dtype)
    return jnp.zeros((input_dim, hidden), dtype)


CHRONO_STREAM = 0x6368726F  # "chro": chrono_bias's fold_in, apart from the weights' keys


def chrono_bias(key, hidden: int, tmax: float, dtype) -> Array:
    r"""Chrono gate biases (Tallec & Ollivier 2018): ``log u`` per unit, u ~ U(1, T_max − 1).

    A gate σ(b) that keeps h_{t−1} (or C_{t−1}) at a rate σ(b) forgets over about
    1/(1 − σ(b)) = 1 + e^b steps, so this spreads the units' memory times uniformly over
    [2, T_max]. ``key`` is the cell's init key: the draw uses ``fold_in(key, CHRONO_STREAM)``,
    so the weights do not change when chrono is switched on.
    """
    u = jax.random.uniform(jax.random.fold_in(key, CHRONO_STREAM), (hidden,), dtype,
                           minval=1.0, maxval=tmax - 1.0)
    return jnp.log(u)


def set_block(b: Array, k: int, value: Array) -> Array:
    """``b`` (G·H,) with gate block ``k`` (H entries) replaced by ``value``."""
    H = value.shape[-1]
    return b.at[k * H:(k + 1) * H].set(value)


def _gated_weights(key, input_dim, hidden, n_gates, *, recurrent_init, recurrent_scale,
                   input_init, input_scale, dtype):
    """Fused (D, G*H) and (H, G*H) matrices, each gate block initialised on its own."""
    keys = jax.random.split(key, 2 * n_gates)
    W_x = jnp.concatenate(
        [_input_block(keys[g], input_dim, hidden, input_init, input_scale, dtype)
         for g in range(n_gates)], axis=1)
    W_h = jnp.concatenate(
        [_recurrent_block(keys[n_gates + g], hidden, recurrent_init, recurrent_scale, dtype)
         for g in range(n_gates)], axis=1)
    return W_x, W_h


# --------------------------------------------------------------------------- interface


@runtime_checkable
class Cell(Protocol):
    """What every cell provides.

    * ``init(key, input_dim, hidden, **options) -> params``: a dict of named arrays.
      Every option that changes a comparison (forget-gate bias, recurrent init and its
      scale, input init) is a keyword with a stated default (``init_options`` names them);
      every cell also takes ``init_preset`` (``PRESETS``; a library preset only for the
      cells of ``PRESET_CELLS``) and ``dtype``.
    * ``initial_carry(batch, hidden, dtype) -> carry``: zeros.
    * ``step(params, carry, x_BxD) -> (carry, h_BxH)``: lax.scan's order.
    * ``project_inputs(params, x_...xD)`` and ``step_projected(params, carry, xw)``: the
      same step split in two, so that an unroll can compute the input projection for every
      timestep in one matmul outside the loop ("hoisting").
      ``step(p, c, x) == step_projected(p, c, project_inputs(p, x))`` exactly.
    * ``hidden(carry) -> h`` and ``with_hidden(carry, h) -> carry``: access to the hidden
      state inside a carry (used by the gradient-flow probes).
    * ``hidden_size(params) -> H``.
    """

    name: str
    init_options: tuple[str, ...]

    def init(self, key, input_dim: int, hidden: int, **options) -> Params: ...

    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32) -> Any: ...

    def step(self, params: Params, carry, x_BxD: Array) -> tuple[Any, Array]: ...

    def project_inputs(self, params: Params, x: Array) -> Array: ...

    def step_projected(self, params: Params, carry, xw: Array) -> tuple[Any, Array]: ...

    def hidden(self, carry) -> Array: ...

    def with_hidden(self, carry, h: Array) -> Any: ...

    def hidden_size(self, params: Params) -> int: ...


class CellBase(abc.ABC):
    """Shared plumbing of ``Cell``: validated ``init`` and ``step``, the input projection
    ``x @ W_x + b`` and ``hidden_size``. A subclass sets ``name`` and ``init_options`` and
    writes the maths: ``_init``, ``initial_carry``, ``step_projected``, ``hidden`` and
    ``with_hidden`` (and overrides ``project_inputs``/``hidden_size`` when its params
    differ)."""

    name: str = ""
    init_options: tuple[str, ...] = ()

    @abc.abstractmethod
    def _init(self, key, input_dim: int, hidden: int, **options) -> Params:
        """The cell's parameters; ``options`` already checked against ``init_options``."""

    @abc.abstractmethod
    def initial_carry(self, batch: int, hidden: int, dtype=jnp.float32):
        """The zero carry for ``batch`` examples."""

    @abc.abstractmethod
    def step_projected(self, params: Params, carry, xw):
        """One step from the projected input ``project_inputs(params, x)``."""

    @abc.abstractmethod
    def hidden(self, carry) -> Array:
        """The hidden state h inside ``carry``."""

    @abc.abstractmethod
    def with_hidden(self, carry, h: Array):
        """``carry`` with its hidden state replaced by ``h``."""

    def step(self, params: Params, carry, x_BxD: Array):
        check_input(params, x_BxD, rank=2)
        return self.step_projected(params, carry, self.project_inputs(params, x_BxD))

    def init(self, key, input_dim: int, hidden: int, **options) -> Params:
        """Named parameters for inputs of size ``input_dim`` and ``hidden`` units.

        Every cell takes ``init_preset`` (default "seqjax", the cell's own init) and
        ``dtype`` besides its ``init_options``; a library preset ("torch", "keras", "flax")
        only for the cells of ``PRESET_CELLS``, whose ``_init`` then receives it."""
        check_positive_int("input_dim", input_dim)
        check_positive_int("hidden", hidden)
        unknown = set(options) - set(self.init_options) - {"dtype", "init_preset"}
        if unknown:
            raise ValueError(
                f"cell {self.name!r} has no init option(s) {sorted(unknown)}; "
                f"allowed: {', '.join(self.init_options + ('init_preset',))}")
        preset = options.pop("init_preset", "seqjax")
        check_preset(preset, self.name)
        if preset != "seqjax":  # only the cells of PRESET_CELLS get here
            options["init_preset"] = preset
        return self._init(key, input_dim, hidden, **options)

    def project_inputs(self, params: Params, x: Array) -> Array:
        """x @ W_x + b for any leading shape; the part of a step that needs no carry."""
        b = params["b"].reshape((1,) * (x.ndim - 1) + (-1,))
        return x @ params["W_x"] + b

    def hidden_size(self, params: Params) -> int:
        return params["W_h"].shape[0]
