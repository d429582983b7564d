"""How fit, evaluate and predict read their data argument: arrays (x, y[, lengths])
cut into minibatches, or any iterable of such batches; the mask of the lengths.
"""
from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple

import numpy as np

from .._validate import array
from .minibatches import minibatches


Batch = Tuple[Any, ...]


def lengths_mask(lengths: Any, B: int, T: int) -> np.ndarray:
    """(B, T) bool mask, True where step t < lengths[b]."""
    lengths = array(lengths, "lengths")
    return np.arange(T)[None, :] < lengths[:, None]


def _unpack(batch: Any, where: str) -> Tuple[Any, Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(f"{where}: expected batches (x, y) or (x, y, lengths), got "
                        f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                     if isinstance(batch, (tuple, list)) else ""))
    return batch[0], batch[1], (batch[2] if len(batch) == 3 else None)


def _batch_size_of(x: Any) -> int:
    shape = np.shape(x)
    if not shape:
        raise ValueError(f"x: expected a batch of inputs with a leading batch axis, "
                         f"got {type(x).__name__} {x!r:.50}")
    return int(shape[0])


def _minibatches(arrays: Sequence[Any], batch_size: int, shuffle: bool, seed: Optional[int],
                 epoch: int) -> Iterable[Batch]:
    # the order depends only on (seed, epoch), so a run resumed at any epoch sees
    # the same batches as one that never stopped
    order = None
    if shuffle:
        rng = np.random.default_rng(None if seed is None else [seed, epoch])
        order = rng.permutation(len(arrays[0]))
    yield from minibatches(arrays, batch_size, order)


def _as_column(a: Any, name: str) -> np.ndarray:
    """One array of a data tuple (x, y or lengths) as an ndarray with rows."""
    arr = array(a, name)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array-like with a leading batch axis, got "
                         f"{type(a).__name__} {a!r:.50}")
    return arr


def _is_batch_sequence(data: Any) -> bool:
    """A tuple of batches ((x1, y1), (x2, y2), ...), as opposed to (x, y[, lengths])."""
    return isinstance(data, tuple) and len(data) > 0 and all(isinstance(b, tuple) for b in data)


class _OneShot:
    """Batches from an iterator (a generator): steps per epoch when given, else
    everything it yields in the first epoch; a later epoch that finds it used
    up is an error naming the way out."""

    def __init__(self, it: Any, steps: Optional[int], where: str) -> None:
        self.it, self.steps, self.where, self.epochs = it, steps, where, 0

    def __call__(self, epoch: int) -> Iterable[Batch]:
        self.epochs += 1
        return self._walk(self.epochs)

    def _walk(self, nth: int) -> Iterable[Batch]:
        count = 0
        for batch in (self.it if self.steps is None else itertools.islice(self.it, self.steps)):
            count += 1
            yield batch
        if count == 0 and nth > 1:
            raise ValueError(f"{self.where}: the iterator of batches was used up before epoch "
                             f"{nth}; pass a list, a re-iterable object or a function returning "
                             "batches, or steps_per_epoch=")


def _batches(data: Any, batch_size: int, shuffle: bool, seed: Optional[int],
             where: str, steps: Optional[int] = None
             ) -> Tuple[Callable[[int], Iterable[Batch]], Optional[int]]:
    """A function giving an epoch's batches, and their number when known."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)
                              or steps <= 0):
        raise ValueError(f"steps_per_epoch: expected a positive integer or None, got {steps!r}")
    if callable(data) and not hasattr(data, "__iter__"):
        n = len(data) if hasattr(data, "__len__") else steps
        if steps is None:
            return (lambda epoch: data()), n
        return (lambda epoch: itertools.islice(data(), steps)), n
    if isinstance(data, tuple) and len(data) in (2, 3) and not _is_batch_sequence(data):
        arrays = [None if a is None else _as_column(a, f"{where}[{i}]") for i, a in enumerate(data)]
        n = len(arrays[0])
        for i, a in enumerate(arrays[1:], 1):
            if a is not None and len(a) != n:
                raise ValueError(f"{where}[{i}]: expected {n} rows like {where}[0], got {len(a)}")
        return ((lambda epoch: _minibatches(arrays, batch_size, shuffle, seed, epoch)),
                math.ceil(n / batch_size))
    if isinstance(data, (list, tuple)):
        return (lambda epoch: iter(data)), len(data)
    if isinstance(data, (str, bytes, dict, np.ndarray)) or not hasattr(data, "__iter__"):
        raise TypeError(f"{where}: expected arrays (x, y[, lengths]), a list or iterable of "
                        f"batches or a function returning batches, got {type(data).__name__}")
    if iter(data) is data:   # an iterator or generator: one pass only
        return _OneShot(data, steps, where), steps
    n = len(data) if hasattr(data, "__len__") else None
    if steps is not None:
        return (lambda epoch: itertools.islice(iter(data), steps)), steps
    return (lambda epoch: iter(data)), n
