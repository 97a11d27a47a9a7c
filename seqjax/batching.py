"""The types data and tasks exchange: a batch, what the model reads, resumable iterators.

Both ``seqjax.data`` (which makes batches) and ``seqjax.tasks`` (which owns them) import
this module; it imports nothing of seqjax, so neither needs the other to name these types.

Batches are dicts of arrays, batch-first:
  ``inputs``   (B, T, D) float features, or (B, T) int32 tokens
  ``targets``  whatever the task's ``loss`` needs
  ``lengths``  (B,) int32, optional: valid steps per example (padding is masked)

Data iterators are checkpointable: ``get_state()`` returns a JSON-able object that
``set_state`` accepts, so a resumed run sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

Batch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What the model reads and emits.

    kind: "features" (float (B, T, dim)) or "tokens" (int (B, T), ``vocab`` ids).
    output_dim: size of the head's output (classes, or regression targets).
    readout: "last" (many-to-one: the head sees each example's final hidden state) or
      "all" (many-to-many: the head sees every h_t).
    """

    kind: str
    dim: int
    output_dim: int
    readout: str
    seq_len: int


class DataIterator:
    """Iterator protocol the trainer relies on: next batch, and a resumable position."""

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        raise NotImplementedError

    def get_state(self) -> Any:
        raise NotImplementedError

    def set_state(self, state: Any) -> None:
        raise NotImplementedError


class IndexedIterator(DataIterator):
    """Batch n is a pure function of n, so the position is just how many were drawn."""

    _n = 0

    def batch(self, n: int) -> Batch:
        raise NotImplementedError

    def __next__(self) -> Batch:
        batch = self.batch(self._n)
        self._n += 1
        return batch

    def get_state(self):
        return {"batches_drawn": self._n}

    def set_state(self, state):
        self._n = int(state["batches_drawn"])
