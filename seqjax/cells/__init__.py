"""Recurrent cells as pure functions over named parameter pytrees, and the ``CELLS`` registry.

The package face; the implementation lives in private modules:

* ``_base``: the interface ``Cell`` (``init``, ``initial_carry``, ``step``,
  ``project_inputs``, ``step_projected``, ``hidden``, ``with_hidden``, ``hidden_size``),
  its shared implementation ``CellBase``, and the validators;
* ``classic``: ``rnn`` (IRNN = relu + identity init), ``lstm``, ``gru``;
* ``modern``: ``mingru``, ``minlstm``, ``lru``, ``lif`` (and the LIF's surrogate ``spike``);
* ``spikes``: the spike encoders ``rate_encode`` and ``latency_encode``;
* ``presets``: ``init_preset`` "torch", "keras", "flax" — those libraries' default inits
  of rnn, lstm and gru in seqjax's layout (``library_params``); chrono gate biases
  (``chrono_bias``) live in ``_base``.

``CELLS`` maps names to cell classes; ``get_cell(name, **options)`` builds one and raises
a ValueError naming the valid cells for an unknown name.
"""

from __future__ import annotations

import dataclasses

from seqjax.cells._base import (ACTIVATIONS, CHRONO, INPUT_INITS, PRESET_CELLS, PRESETS,
                                RECURRENT_INITS, Array, Cell, CellBase, Params, check_choice,
                                check_chrono_tmax, check_gate_bias, check_input,
                                check_positive_int, check_preset, chrono_bias,
                                is_positive_int)
from seqjax.cells.classic import (CLASSIC_CELLS, GRU, GRU_GATES, LSTM, LSTM_GATES, RNN,
                                  LSTMCarry)
from seqjax.cells.modern import (LIF, LIF_RESETS, LRU, MODERN_CELLS, LIFCarry, MinGRU,
                                 MinLSTM, g, log_g, spike)
from seqjax.cells.presets import library_params
from seqjax.cells.spikes import latency_encode, rate_encode

CELLS: dict[str, type] = {**CLASSIC_CELLS, **MODERN_CELLS}


def get_cell(name: str, **options) -> Cell:
    """Build the cell registered as ``name`` with its step-time options (e.g. activation)."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(sorted(CELLS))}")
    cls = CELLS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(
            f"cell {name!r} has no option(s) {sorted(unknown)}; "
            f"its options: {sorted(fields) or 'none'}")
    return cls(**options)


__all__ = [
    "ACTIVATIONS", "CELLS", "CHRONO", "CLASSIC_CELLS", "GRU", "GRU_GATES", "INPUT_INITS", "LIF",
    "LIF_RESETS", "LRU", "LSTM", "LSTM_GATES", "MODERN_CELLS", "PRESETS", "PRESET_CELLS",
    "RECURRENT_INITS", "RNN", "Array", "Cell", "CellBase", "LIFCarry", "LSTMCarry", "MinGRU",
    "MinLSTM", "Params", "check_choice", "check_chrono_tmax", "check_gate_bias", "check_input",
    "check_positive_int", "check_preset", "chrono_bias", "g", "get_cell", "is_positive_int",
    "latency_encode", "library_params", "log_g", "rate_encode", "spike",
]
