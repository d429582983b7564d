"""Data preparation for recurrent models: NumPy in, NumPy out.

    batchify / windows / sequence_batches   one long sequence -> (B, L) windows with
                                            next-step targets, for carried-state
                                            (truncated BPTT) training
    pad_sequences                           variable-length sequences -> (B, T, ...) + lengths
    one_hot                                 integer ids -> (..., C) indicator vectors
    train_val_split / split_sequence        hold out a validation part
    iterate_minibatches                     aligned minibatches of several arrays
    CharVocab                               characters <-> integer ids, saved as JSON

Sequence batching follows the classic char-rnn layout. The sequence 1..12 with
batch_size 2 is cut into two rows, one contiguous chunk each,

    [ 1  2  3  4  5  6]
    [ 7  8  9 10 11 12]

and windows of seq_len 3 walk the columns: inputs [[1,2,3],[7,8,9]], then
[[4,5,6],[10,11,12]]. Row b of every window continues row b of the previous one,
so the hidden state can be carried from window to window.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._validate import positive_int, probability, seed_value, token_ids

__all__ = [
    "batchify", "windows", "num_windows", "sequence_batches", "SequenceBatches",
    "pad_sequences", "one_hot", "train_val_split", "split_sequence",
    "iterate_minibatches", "CharVocab",
]


def _as_sequence(obj: Any, name: str) -> np.ndarray:
    """obj as an array with at least one axis (the time axis); no strings."""
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"{name}: expected an array-like of tokens, got {type(obj).__name__} "
                        "(encode text to ids first, e.g. with CharVocab)")
    try:
        arr = np.asarray(obj)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array-like, got {type(obj).__name__}") from exc
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


# ---------------------------------------------------------------- sequence batching

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
        last = np.asarray(next_value)
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


# ---------------------------------------------------------------- padding

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
    try:
        out = np.full((len(arrs), T) + step_shape, value, dtype=dt)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value: expected a value of dtype {dt}, got {value!r}") from exc
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


# ---------------------------------------------------------------- one-hot

def one_hot(indices: Any, num_classes: int, dtype: Any = "float32") -> np.ndarray:
    """Indicator vectors: (...) integer ids in [0, num_classes) -> (..., num_classes)."""
    num_classes = positive_int(num_classes, "num_classes")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a numeric dtype, got {dtype!r}") from None
    if dt.kind not in "biuf":
        raise TypeError(f"dtype: expected a numeric dtype, got {dtype!r}")
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"indices: expected integers, got dtype {idx.dtype}")
    bad = (idx < 0) | (idx >= num_classes)
    if bad.any():
        k = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"indices: expected integers in [0, {num_classes}), "
                         f"got {int(idx.ravel()[k])} at flat index {k}")
    out = np.zeros(idx.shape + (num_classes,), dtype=dt)
    np.put_along_axis(out, idx[..., None].astype(np.intp), 1, axis=-1)
    return out


# ---------------------------------------------------------------- splits and minibatches

def _aligned(arrays: Tuple[Any, ...]) -> List[np.ndarray]:
    if not arrays:
        raise ValueError("arrays: expected at least one array, got none")
    out = []
    for i, a in enumerate(arrays):
        arr = np.asarray(a)
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
    return _minibatches(arrs, order, batch_size, stop)


def _minibatches(arrs: List[np.ndarray], order: Optional[np.ndarray], batch_size: int,
                 stop: int) -> Iterator[Tuple[np.ndarray, ...]]:
    for s in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[s:s + batch_size] for a in arrs)
        else:
            idx = order[s:s + batch_size]
            yield tuple(a[idx] for a in arrs)


# ---------------------------------------------------------------- characters

class CharVocab:
    """Characters <-> integer ids for char-rnn.

    ``CharVocab(text)`` takes the sorted unique characters of ``text``; id k is
    ``chars[k]``. ``to_config()`` gives ``{"chars": [...]}`` (JSON-friendly, to
    save beside a model) and ``CharVocab.from_config`` rebuilds the same ids.
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text: expected a non-empty string, got ''")
        self._set_chars(sorted(set(text)))

    def _set_chars(self, chars: List[str]) -> None:
        self.chars: List[str] = list(chars)
        self.char_to_id: Dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._order = np.argsort(codes, kind="stable")
        self._sorted_codes = codes[self._order]

    @property
    def size(self) -> int:
        """Number of distinct characters (the model's input and output size)."""
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def encode(self, text: str) -> np.ndarray:
        """str of length N -> (N,) int64 ids; ValueError for a character not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if not text:
            return np.zeros(0, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"),
                              dtype="<u4").astype(np.int64)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos_c = np.minimum(pos, self.size - 1)
        miss = self._sorted_codes[pos_c] != codes
        if miss.any():
            k = int(np.flatnonzero(miss)[0])
            raise ValueError(f"text: character {text[k]!r} at index {k} is not in the vocabulary")
        return self._order[pos_c].astype(np.int64)

    def decode(self, ids: Any) -> str:
        """(N,) integer ids -> str of length N."""
        arr = token_ids(ids, self.size)
        chars = self.chars
        return "".join(chars[i] for i in arr.tolist())

    def to_config(self) -> Dict[str, Any]:
        """{"chars": [c_0, c_1, ...]}: JSON-serialisable, ids are list positions."""
        return {"chars": list(self.chars)}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "CharVocab":
        """Rebuild from ``to_config()`` output; ids keep their stored order."""
        chars = config.get("chars") if isinstance(config, dict) else None
        if not isinstance(chars, list) or not chars:
            raise ValueError("config: expected a dict with a non-empty list 'chars'")
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"config: expected single characters in 'chars', "
                                 f"got {c!r} at index {i}")
        if len(set(chars)) != len(chars):
            raise ValueError("config: expected unique characters in 'chars'")
        vocab = cls.__new__(cls)
        vocab._set_chars(chars)
        return vocab
