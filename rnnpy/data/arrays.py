"""Sets of sequences as arrays: padding (left or right) with lengths, one-hot
codes, a train/validation split, and shuffled minibatches.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._validate import array, new_array, positive_int, probability, seed_value
from .minibatches import minibatches
from .sequences import _as_sequence, _choice


def pad_sequences(sequences: Sequence[Any], maxlen: Optional[int] = None,
                  padding: str = "post", truncating: str = "post", value: Any = 0,
                  dtype: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """Pad (or truncate) variable-length sequences to one length T.

    sequences: B sequences, each (T_i,) (e.g. token ids) or (T_i, F...) (vectors);
    all must share the per-step shape.
    maxlen: T; default the longest T_i. Longer sequences are truncated.
    padding: "post" puts the ``value`` rows after the data, "pre" in front.
    truncating: "post" drops steps at the end, "pre" at the start.
    dtype: default the common dtype of the sequences.

    Returns ``(padded, lengths)``: padded (B, T, F...) and lengths (B,) int64, the
    number of real steps of each sequence after truncation. ``lengths`` is what
    the layers' ``lengths=`` argument expects for post-padded data (valid steps
    first). With padding="pre" the valid steps are the LAST lengths[b] steps;
    do not pass such lengths to a layer (pre-padding is usually run without them).
    """
    padding = _choice(padding, "padding", ("post", "pre"))
    truncating = _choice(truncating, "truncating", ("post", "pre"))
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences: expected a list of sequences, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError("sequences: expected at least one sequence, got 0")
    arrs = [_as_sequence(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
    if maxlen is not None:
        maxlen = positive_int(maxlen, "maxlen")
    step_shape = next((a.shape[1:] for a in arrs if a.shape[0] > 0), arrs[0].shape[1:])
    for i, a in enumerate(arrs):
        if a.shape[0] > 0 and a.shape[1:] != step_shape:
            raise ValueError(f"sequences[{i}]: expected steps of shape {step_shape} "
                             f"(as the first non-empty sequence), got {a.shape[1:]}")
    if dtype is None:
        # empty lists default to float64: let them not decide the dtype
        dt = np.result_type(*([a for a in arrs if a.size] or arrs))
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected a NumPy dtype, got {dtype!r}") from None
    T = max(a.shape[0] for a in arrs) if maxlen is None else maxlen
    out = new_array((len(arrs), T) + step_shape, dt, "maxlen" if maxlen is not None else "sequences",
                    maxlen if maxlen is not None else f"{len(arrs)} sequences of up to {T} steps",
                    fill=value, fill_name="value")
    lengths = np.zeros(len(arrs), dtype=np.int64)
    for i, a in enumerate(arrs):
        keep = a[:T] if truncating == "post" else a[a.shape[0] - min(a.shape[0], T):]
        L = keep.shape[0]
        lengths[i] = L
        if L == 0:
            continue
        if padding == "post":
            out[i, :L] = keep
        else:
            out[i, T - L:] = keep
    return out, lengths


def one_hot(indices: Any, num_classes: int, dtype: Any = "float32") -> np.ndarray:
    """Indicator vectors: (...) integer ids in [0, num_classes) -> (..., num_classes)."""
    num_classes = positive_int(num_classes, "num_classes")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a numeric dtype, got {dtype!r}") from None
    if dt.kind not in "biuf":
        raise TypeError(f"dtype: expected a numeric dtype, got {dtype!r}")
    idx = array(indices, "indices")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices: expected integers, got dtype {idx.dtype}")
    bad = (idx < 0) | (idx >= num_classes)
    if bad.any():
        k = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"indices: expected integers in [0, {num_classes}), "
                         f"got {int(idx.ravel()[k])} at flat index {k}")
    out = new_array(idx.shape + (num_classes,), dt, "num_classes", num_classes)
    np.put_along_axis(out, idx[..., None].astype(np.intp), 1, axis=-1)
    return out


def _aligned(arrays: Tuple[Any, ...]) -> List[np.ndarray]:
    if not arrays:
        raise ValueError("arrays: expected at least one array, got none")
    out = []
    for i, a in enumerate(arrays):
        arr = array(a, f"arrays[{i}]")
        if arr.ndim == 0:
            raise ValueError(f"arrays[{i}]: expected at least 1-D, got a scalar")
        if out and arr.shape[0] != out[0].shape[0]:
            raise ValueError(f"arrays[{i}]: expected {out[0].shape[0]} rows along axis 0 "
                             f"(as arrays[0]), got {arr.shape[0]}")
        out.append(arr)
    return out


def _val_count(n: int, val_fraction: float, name: str) -> int:
    """round(n * val_fraction), at least 1 when val_fraction > 0, leaving >= 1 for training."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n - n_val < 1:
        raise ValueError(f"{name}: expected enough rows for a training part with "
                         f"val_fraction = {val_fraction}, got {n}")
    return n_val


def train_val_split(*arrays: Any, val_fraction: float = 0.1, shuffle: bool = True,
                    seed: Optional[int] = None) -> Tuple[np.ndarray, ...]:
    """Split aligned arrays along axis 0 into training and validation parts.

    arrays: each (N, ...), same N. Returns ``(train_0, ..., train_k, val_0, ..., val_k)``
    with round(N * val_fraction) rows (at least 1 when val_fraction > 0) in each
    val part. The same rows go to the same part in every array. With
    ``shuffle=False`` the validation part is the last rows, in order.
    """
    arrs = _aligned(arrays)
    val_fraction = probability(val_fraction, "val_fraction")
    seed = seed_value(seed)
    n = arrs[0].shape[0]
    n_val = _val_count(n, val_fraction, "arrays")
    if shuffle:
        perm = np.random.default_rng(seed).permutation(n)
        tr, va = np.sort(perm[:n - n_val]), np.sort(perm[n - n_val:])
        return tuple(a[tr] for a in arrs) + tuple(a[va] for a in arrs)
    return tuple(a[:n - n_val] for a in arrs) + tuple(a[n - n_val:] for a in arrs)


def iterate_minibatches(*arrays: Any, batch_size: int, shuffle: bool = True,
                        seed: Optional[int] = None,
                        drop_last: bool = False) -> Iterator[Tuple[np.ndarray, ...]]:
    """Yield tuples of aligned minibatches, one slice of each (N, ...) array.

    Each tuple holds batch_size rows of every array (the same rows in each); the
    last one is smaller unless ``drop_last``. ``shuffle`` draws a fresh order
    from ``seed``; without it the rows come in order, as views.
    """
    arrs = _aligned(arrays)
    batch_size = positive_int(batch_size, "batch_size")
    seed = seed_value(seed)
    n = arrs[0].shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    stop = (n // batch_size) * batch_size if drop_last else n
    return minibatches(arrs, batch_size, order, stop)


def split_sequence(sequence: Any, val_fraction: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """One long sequence (N, ...) -> (train (N - V, ...), val (V, ...)), val the contiguous tail.

    V = round(N * val_fraction), at least 1 when val_fraction > 0. Keeping the
    order intact is what char-rnn needs: both parts are batchified separately.
    """
    seq = _as_sequence(sequence, "sequence")
    val_fraction = probability(val_fraction, "val_fraction")
    n = seq.shape[0]
    n_val = _val_count(n, val_fraction, "sequence")
    return seq[:n - n_val], seq[n - n_val:]
