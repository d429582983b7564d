"""The non-recurrent building blocks: Dense, Embedding, LastStep (pooling over
time) and Dropout, each with an explicit forward and backward.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._validate import (array, as_dtype, as_float_array, boolean, check_finite, check_shape,
                         positive_int, probability, seed_value)
from .. import _core
from .module import Module
from .threads import model_threads, resolve_threads


def _need_forward(module: Module, cache: Any) -> None:
    if cache is None:
        raise RuntimeError(f"{type(module).__name__}.backward: nothing to differentiate; "
                           "call forward first")


class Dense(Module):
    """Fully connected layer over the last axis: y = x W^T + b.

    weight (out_features, in_features) and bias (out_features,), as PyTorch's
    nn.Linear, initialised from U(-1/sqrt(in), 1/sqrt(in)).
    x: (..., in_features) -> y: (..., out_features).

    The products run on rnnpy's own GEMM and thread pool (the recurrent
    kernels' pool), not on NumPy's BLAS, whose own threads would compete
    with the pool's for the cores. ``threads``: how many; None (the default)
    follows the model the layer is part of (model_threads: the count its
    recurrent layers were given). Results do not depend on it.
    """

    _forward_cache = ("_x",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = "float32", seed: Optional[int] = None,
                 threads: Optional[int] = None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.use_bias = boolean(bias, "bias")
        self.dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        if threads is not None:
            self.threads = threads
        self._x: Optional[np.ndarray] = None
        self._x_store: Optional[np.ndarray] = None   # _x's memory, kept across forwards
        self._allocate()
        k = 1.0 / math.sqrt(self.in_features)
        self.flat_params[...] = np.random.default_rng(self.seed).uniform(-k, k, self.num_params)

    def param_spec(self) -> List[Tuple[str, Tuple[int, ...]]]:
        spec = [("weight", (self.out_features, self.in_features))]
        return spec + ([("bias", (self.out_features,))] if self.use_bias else [])

    def get_config(self) -> Dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.use_bias, "dtype": self.dtype.name, "seed": self.seed}

    def forward(self, x: Any) -> np.ndarray:
        """x: (..., in_features) -> (..., out_features)."""
        x = as_float_array(x, "x", self.dtype)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., in_features) = (..., {self.in_features}), "
                             f"got {tuple(x.shape)}")
        check_finite(x, "x")
        # a copy: backward must use what forward saw, even if the caller edits x
        # (into the previous forward's memory when it fits: no fresh pages per step)
        keep = self._x_store
        if keep is None or keep.shape != x.shape or keep.dtype != x.dtype:
            keep = self._x_store = np.empty_like(x)
        np.copyto(keep, x)
        self._x = keep
        threads = self.threads
        y = np.empty(x.shape[:-1] + (self.out_features,), dtype=self.dtype)
        y2 = y.reshape(-1, self.out_features)
        if self.use_bias:
            y2[...] = self.params["bias"]
        _core.gemm(x.reshape(-1, self.in_features), self.params["weight"], trans_b=True,
                   beta=1.0 if self.use_bias else 0.0, c=y2, threads=threads)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        """dy: (..., out_features) -> dx (..., in_features); adds dW, db."""
        _need_forward(self, self._x)
        x = self._x
        dy = as_float_array(dy, "dy", self.dtype)
        check_shape(dy, "dy", x.shape[:-1] + (self.out_features,), "(..., out_features)")
        check_finite(dy, "dy")
        threads = self.threads
        dy2 = dy.reshape(-1, self.out_features)
        # dW += dy^T x, dx = dy W: the flat buffer's views are C-contiguous, written in place
        _core.gemm(dy2, x.reshape(-1, self.in_features), trans_a=True, beta=1.0,
                   c=self.grads["weight"], threads=threads)
        if self.use_bias:
            self.grads["bias"] += dy2.sum(axis=0)
        dx = np.empty(x.shape, dtype=self.dtype)
        _core.gemm(dy2, self.params["weight"], c=dx.reshape(-1, self.in_features), threads=threads)
        return dx

    @property
    def threads(self) -> int:
        """Threads of the layer's products; settable (None: follow the model,
        see the class docstring)."""
        own = self.__dict__.get("_threads")
        return own if own is not None else model_threads(self)

    @threads.setter
    def threads(self, value: Optional[int]) -> None:
        if value is None:
            self.__dict__.pop("_threads", None)
        else:
            self.__dict__["_threads"] = resolve_threads(value)


def _add_rows(table: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """table[ids[i]] += rows[i] for every i, repeated ids summed: the rows of
    each id are summed first (sorted by id, one reduceat) and each sum added
    once, several times faster than np.add.at's one row at a time.
    table (V, E), ids (N,) ints in [0, V), rows (N, E)."""
    if ids.size == 0:
        return
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    table[ids[starts]] += np.add.reduceat(rows[order], starts, axis=0)


class Embedding(Module):
    """Lookup table from integer tokens to vectors, as PyTorch's nn.Embedding.

    weight (num_embeddings, embedding_dim), initialised from N(0, 1).
    ids: integers in [0, num_embeddings), any shape S -> (*S, embedding_dim).
    backward returns None (tokens have no gradient).

    Padding: ``padding_idx=k`` (PyTorch's) marks token k as padding: its row
    starts at zero and gets no gradient. ``mask_zero=True`` (Keras's) is
    padding_idx=0 without touching the row. With either, ``lengths_of(ids)``
    gives each row's length under right padding (padding only at the end of
    a row), and a Sequential passes those lengths to the layers after the
    Embedding when it is called without lengths.
    """

    _forward_cache = ("_ids",)

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: Any = "float32",
                 seed: Optional[int] = None, padding_idx: Optional[int] = None,
                 mask_zero: bool = False) -> None:
        super().__init__()
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) or \
                    not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx: expected None or an integer in [-{self.num_embeddings}, "
                                 f"{self.num_embeddings}), got {padding_idx!r}")
            padding_idx = int(padding_idx) % self.num_embeddings
        if not isinstance(mask_zero, (bool, np.bool_)):
            raise TypeError(f"mask_zero: expected a bool, got {type(mask_zero).__name__}")
        if mask_zero and padding_idx not in (None, 0):
            raise ValueError(f"mask_zero: pads with token 0, but padding_idx={padding_idx} names "
                             "another padding token; give one of them")
        self.padding_idx = padding_idx
        self.mask_zero = bool(mask_zero)
        self._ids: Optional[np.ndarray] = None
        self._allocate()
        self.flat_params[...] = np.random.default_rng(self.seed).standard_normal(self.num_params)
        if padding_idx is not None:
            self.params["weight"][padding_idx] = 0

    @property
    def pad_token(self) -> Optional[int]:
        """The padding token (padding_idx, or 0 with mask_zero), or None."""
        return 0 if self.mask_zero else self.padding_idx

    def param_spec(self) -> List[Tuple[str, Tuple[int, ...]]]:
        return [("weight", (self.num_embeddings, self.embedding_dim))]

    def get_config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {"num_embeddings": self.num_embeddings,
                                  "embedding_dim": self.embedding_dim,
                                  "dtype": self.dtype.name, "seed": self.seed}
        if self.padding_idx is not None:
            config["padding_idx"] = self.padding_idx
        if self.mask_zero:
            config["mask_zero"] = True
        return config

    def lengths_of(self, ids: Any) -> Optional[np.ndarray]:
        """ids (B, T) -> (B,) lengths: the steps before each row's trailing
        padding; None without a padding token. Padding before a token (left
        padding) is refused: lengths describe right-padded rows."""
        pad = self.pad_token
        if pad is None:
            return None
        arr = array(ids, "ids")
        if arr.ndim != 2:
            raise ValueError(f"ids: expected (B, T) token ids to derive lengths from padding, "
                             f"got shape {arr.shape}")
        real = arr != pad
        lengths = np.where(real.any(axis=1), arr.shape[1] - np.argmax(real[:, ::-1], axis=1), 0)
        inside = (~real) & (np.arange(arr.shape[1])[None, :] < lengths[:, None])
        if inside.any():
            b, t = (int(v) for v in np.argwhere(inside)[0])
            raise ValueError(f"ids: padding token {pad} at row {b}, step {t} comes before a real "
                             "token; lengths describe right-padded rows (pad_sequences(..., "
                             "padding='post')), or pass lengths yourself")
        return lengths.astype(np.int64)

    def forward(self, ids: Any) -> np.ndarray:
        """ids: integer array of any shape S -> (*S, embedding_dim)."""
        arr = array(ids, "ids")
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integer token ids, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            bad = arr[(arr < 0) | (arr >= self.num_embeddings)].ravel()[0]
            raise ValueError(f"ids: expected values in [0, {self.num_embeddings}), got {bad}")
        self._ids = arr.astype(np.intp)
        return self.params["weight"][self._ids]

    def backward(self, dy: Any) -> None:
        """dy: (*S, embedding_dim); adds into grads['weight'] (not into the
        padding_idx row); returns None."""
        _need_forward(self, self._ids)
        dy = as_float_array(dy, "dy", self.dtype)
        check_shape(dy, "dy", self._ids.shape + (self.embedding_dim,), "(*ids.shape, embedding_dim)")
        check_finite(dy, "dy")
        ids = self._ids.ravel()
        rows = dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            ids, rows = ids[keep], rows[keep]
        _add_rows(self.grads["weight"], ids, rows)
        return None


class LastStep(Module):
    """Takes one step of a sequence: the last one, or under ``lengths`` each
    sequence's last valid step (zeros for a sequence of length 0).

    After a bidirectional layer (merge_mode "concat", ``directions=2``; a
    Sequential passes it) the features are [forward | reverse] halves, and each
    half is taken at its own final step: the forward half at the last valid
    step, the reverse half at t = 0, where the reverse direction has seen the
    whole sequence (as PyTorch's h_n and Keras's Bidirectional give).

    x: (B, T, F), or (T, B, F) with time_major=True -> (B, F).
    """

    accepts_lengths = True
    _forward_cache = ("_cache",)

    def __init__(self, time_major: bool = False, dtype: Any = "float32") -> None:
        super().__init__()
        self.time_major = boolean(time_major, "time_major")
        self.dtype = as_dtype(dtype)
        self._cache: Optional[tuple] = None
        self._allocate()

    def get_config(self) -> Dict[str, Any]:
        return {"time_major": self.time_major, "dtype": self.dtype.name}

    def forward(self, x: Any, lengths: Optional[Sequence[int]] = None,
                directions: int = 1) -> np.ndarray:
        """x: (B, T, F) (or (T, B, F)); lengths: optional (B,) ints in [0, T];
        directions: 1, or 2 when x is a bidirectional layer's concatenated output
        (F = 2*H: forward half at the last valid step, reverse half at t = 0).
        Returns (B, F)."""
        if directions not in (1, 2) or isinstance(directions, bool):
            raise ValueError(f"directions: expected 1 or 2, got {directions!r}")
        x = as_float_array(x, "x", self.dtype)
        check_shape(x, "x", (None, None, None), "(T, B, F)" if self.time_major else "(B, T, F)")
        xb = x.transpose(1, 0, 2) if self.time_major else x
        B, T, F = xb.shape
        if directions == 2 and F % 2:
            raise ValueError(f"x: expected an even number of features (two directions' halves) "
                             f"with directions=2, got {F}")
        if lengths is None:
            idx = np.full(B, T - 1)
        else:
            idx = array(lengths, "lengths")
            if idx.dtype.kind not in "iu":
                raise TypeError(f"lengths: expected integers, got dtype {idx.dtype}")
            check_shape(idx, "lengths", (B,), "(B,)")
            if idx.size and (idx.min() < 0 or idx.max() > T):
                raise ValueError(f"lengths: expected values in [0, T] = [0, {T}], got "
                                 f"{idx[(idx < 0) | (idx > T)][0]}")
            idx = idx.astype(np.intp) - 1
        valid = idx >= 0
        rows = np.arange(B)[valid]
        # (step per sequence, feature slice) of each half
        parts = [(idx[valid], slice(0, F))] if directions == 1 else \
            [(idx[valid], slice(0, F // 2)), (np.zeros(rows.size, np.intp), slice(F // 2, F))]
        y = np.zeros((B, F), dtype=self.dtype)
        for steps, cols in parts:
            y[valid, cols] = xb[rows, steps, cols]
        self._cache = (x.shape, valid, parts)
        return y

    def backward(self, dy: Any) -> np.ndarray:
        _need_forward(self, self._cache)
        shape, valid, parts = self._cache
        dy = as_float_array(dy, "dy", self.dtype)
        B = shape[1] if self.time_major else shape[0]
        check_shape(dy, "dy", (B, shape[2]), "(B, F)")
        check_finite(dy, "dy")
        dx = np.zeros(shape, dtype=self.dtype)
        dxb = dx.transpose(1, 0, 2) if self.time_major else dx
        rows = np.nonzero(valid)[0]
        for steps, cols in parts:
            dxb[rows, steps, cols] = dy[valid, cols]
        return dx


class Dropout(Module):
    """Inverted dropout: in training mode each entry is zeroed with probability
    p and the rest scaled by 1/(1-p); the identity in evaluation mode."""

    _forward_cache = ("_mask",)

    def __init__(self, p: float = 0.5, dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__()
        self.p = probability(p, "p")
        self.dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        self._rng = np.random.default_rng(self.seed)
        self._mask: Optional[np.ndarray] = None
        self._allocate()

    def get_config(self) -> Dict[str, Any]:
        return {"p": self.p, "dtype": self.dtype.name, "seed": self.seed}

    def forward(self, x: Any) -> np.ndarray:
        x = as_float_array(x, "x", self.dtype)
        self._shape = x.shape
        if not self.training or self.p == 0:
            self._mask = np.ones((), dtype=self.dtype)
            return x
        keep = 1.0 - self.p
        if not (self._masks_held and self._mask is not None
                and self._mask.shape == x.shape):
            self._mask = ((self._rng.random(x.shape) < keep) / keep).astype(self.dtype)
        # a dropped entry is 0 whatever it held (inf * 0 would be NaN)
        return np.multiply(x, self._mask, out=np.zeros_like(x), where=self._mask != 0)

    def backward(self, dy: Any) -> np.ndarray:
        """dy: like the forward's x; returns dx = dy * mask."""
        _need_forward(self, self._mask)
        dy = as_float_array(dy, "dy", self.dtype)
        check_shape(dy, "dy", self._shape, "x's shape")
        check_finite(dy, "dy")
        return dy * self._mask
