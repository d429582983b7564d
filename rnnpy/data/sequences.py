"""One long sequence into batches (seed 003): cut into batch_size rows, walk
windows of seq_len with targets shifted by one, the state carried across
windows (truncated BPTT).
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator, Sequence, Tuple

import numpy as np

from .._validate import array, positive_int


def _as_sequence(obj: Any, name: str) -> np.ndarray:
    """obj as an array with at least one axis (the time axis); no strings."""
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"{name}: expected an array-like of tokens, got {type(obj).__name__} "
                        "(encode text to ids first, e.g. with CharVocab)")
    arr = array(obj, name)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected a sequence (at least 1-D), got a scalar")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def _choice(value: Any, name: str, options: Sequence[str]) -> str:
    if value not in options:
        want = " or ".join(repr(o) for o in options)
        raise ValueError(f"{name}: expected {want}, got {value!r}")
    return value


def batchify(sequence: Any, batch_size: int) -> np.ndarray:
    """Cut one long sequence into ``batch_size`` rows of equal length.

    sequence: (N, ...) array-like, e.g. N token ids. Row b is the b-th contiguous
    chunk ``sequence[b*n:(b+1)*n]`` with ``n = N // batch_size``; the last
    ``N % batch_size`` elements are dropped.

    Returns an array of shape (batch_size, n, ...) (a copy, C-contiguous).
    """
    batch_size = positive_int(batch_size, "batch_size")
    seq = _as_sequence(sequence, "sequence")
    n = seq.shape[0] // batch_size
    if n == 0:
        raise ValueError(f"sequence: expected at least batch_size = {batch_size} elements, "
                         f"got {seq.shape[0]}")
    return np.ascontiguousarray(seq[:batch_size * n].reshape((batch_size, n) + seq.shape[1:]))


def num_windows(data: Any, seq_len: int, drop_last: bool = False) -> int:
    """How many windows ``windows(data, seq_len, drop_last)`` yields.

    data: the (B, n, ...) array from ``batchify``, or its number of columns n.
    """
    seq_len = positive_int(seq_len, "seq_len")
    if isinstance(data, numbers.Integral) and not isinstance(data, bool):
        if data < 0:
            raise ValueError(f"data: expected a number of columns >= 0, got {data}")
        n = int(data)
    else:
        n = _batched(data).shape[1]
    return n // seq_len if drop_last else -(-n // seq_len)


def _batched(data: Any) -> np.ndarray:
    arr = _as_sequence(data, "data")
    if arr.ndim < 2:
        raise ValueError(f"data: expected shape (B, n, ...) from batchify, got {tuple(arr.shape)}")
    return arr


def _successors(data: np.ndarray, next_value: Any) -> np.ndarray:
    """The next-step target of every element of the batchified ``data``.

    Rows are consecutive chunks of one sequence, so the successor of a row's last
    element is the first element of the next row. The very last element has no
    successor inside ``data``: it gets ``next_value``, or wraps to data[0, 0].
    """
    B, n = data.shape[:2]
    if B * n == 0:
        raise ValueError(f"data: expected at least one element, got shape {tuple(data.shape)}")
    flat = data.reshape((B * n,) + data.shape[2:])
    nxt = np.empty_like(flat)
    nxt[:-1] = flat[1:]
    if next_value is None:
        nxt[-1] = flat[0]
    else:
        last = array(next_value, "next_value")
        if last.shape != flat.shape[1:]:
            raise ValueError(f"next_value: expected shape {tuple(flat.shape[1:])} "
                             f"(one element of data), got {tuple(last.shape)}")
        nxt[-1] = last
    return nxt.reshape(data.shape)


def windows(data: Any, seq_len: int, drop_last: bool = False,
            next_value: Any = None) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Walk windows of ``seq_len`` columns over batchified data.

    data: (B, n, ...) from ``batchify``. Yields ``(inputs, targets)``, both of
    shape (B, L, ...) with L = seq_len (the last window is shorter when
    seq_len does not divide n, unless ``drop_last``). ``targets`` is the input
    shifted by one step: the element that follows each input in the original
    sequence. For a row's last column that is the first element of the next row
    (rows are consecutive chunks), so every target is the true next element
    except the single last one of the last row, which has no successor in
    ``data``: it is ``next_value`` when given (``sequence_batches`` passes the
    element that batchify dropped, when there is one), otherwise it wraps around
    to ``data[0, 0]``, as if the sequence were circular.

    Example (seed layout): batchify(1..12, 2) then windows(., 3) yields
    inputs [[1,2,3],[7,8,9]], targets [[2,3,4],[8,9,10]], then
    inputs [[4,5,6],[10,11,12]], targets [[5,6,7],[11,12,1]].
    """
    arr = _batched(data)
    seq_len = positive_int(seq_len, "seq_len")
    nxt = _successors(arr, next_value)
    n = arr.shape[1]
    stop = (n // seq_len) * seq_len if drop_last else n
    # validated above, at the call; the walk itself is lazy
    return ((arr[:, s:s + seq_len], nxt[:, s:s + seq_len]) for s in range(0, stop, seq_len))


class SequenceBatches:
    """Re-iterable windows over one batchified sequence, with a length.

    ``iter()`` yields ``(inputs, targets)`` of shape (B, L, ...) exactly as
    ``windows``; ``len()`` is the number of windows per pass (one epoch).
    ``data`` is the (B, n, ...) batchified array.
    """

    def __init__(self, data: np.ndarray, seq_len: int, drop_last: bool = False,
                 next_value: Any = None) -> None:
        self.data = _batched(data)
        self.seq_len = positive_int(seq_len, "seq_len")
        self.drop_last = bool(drop_last)
        self.next_value = next_value
        _successors(self.data, next_value)  # validate next_value now, not mid-epoch

    @property
    def batch_size(self) -> int:
        return int(self.data.shape[0])

    def __len__(self) -> int:
        return num_windows(self.data.shape[1], self.seq_len, self.drop_last)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        return windows(self.data, self.seq_len, self.drop_last, self.next_value)

    def __repr__(self) -> str:
        return (f"SequenceBatches(batch_size={self.batch_size}, columns={self.data.shape[1]}, "
                f"seq_len={self.seq_len}, windows={len(self)})")


def sequence_batches(sequence: Any, batch_size: int, seq_len: int,
                     drop_last: bool = False) -> SequenceBatches:
    """``batchify`` then ``windows``, as a re-iterable object with ``len()``.

    sequence: (N, ...). Each pass yields (inputs, targets) of shape
    (batch_size, L, ...). When batchify drops elements at the end, the first
    dropped element is the target of the last input, so every target is the true
    next element; otherwise that one target wraps to sequence[0] (see ``windows``).
    """
    seq = _as_sequence(sequence, "sequence")
    data = batchify(seq, batch_size)
    used = data.shape[0] * data.shape[1]
    next_value = seq[used] if seq.shape[0] > used else None
    return SequenceBatches(data, seq_len, drop_last, next_value)
