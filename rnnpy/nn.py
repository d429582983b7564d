"""Model pieces that compose with the recurrent layers.

    Dense      y = x W^T + b over the last axis             (..., in) -> (..., out)
    Embedding  integer tokens to vectors                     (B, T) ints -> (B, T, E)
    LastStep   the last step, or each sequence's last valid
               step under lengths                            (B, T, F) -> (B, F)
    Dropout    inverted dropout in training mode             any shape
    Sequential a chain of the above and recurrent layers, on one flat parameter buffer

Every piece has the same explicit contract as the layers: forward, then
backward of that forward, parameter gradients ADDED into ``grads``.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ._validate import (
    as_dtype,
    as_float_array,
    boolean,
    check_finite,
    check_shape,
    positive_int,
    probability,
    seed_value,
)
from .module import LiveArrays, Module


def _need_forward(module: Module, cache: Any) -> None:
    if cache is None:
        raise RuntimeError(f"{type(module).__name__}.backward: nothing to differentiate; "
                           "call forward first")


class Dense(Module):
    """Fully connected layer over the last axis: y = x W^T + b.

    weight (out_features, in_features) and bias (out_features,), as PyTorch's
    nn.Linear, initialised from U(-1/sqrt(in), 1/sqrt(in)).
    x: (..., in_features) -> y: (..., out_features).
    """

    _forward_cache = ("_x",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = "float32", seed: Optional[int] = None) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.use_bias = boolean(bias, "bias")
        self.dtype = as_dtype(dtype)
        self.seed = seed_value(seed)
        self._x: Optional[np.ndarray] = None
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
        self._x = x.copy()
        y = x @ self.params["weight"].T
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, dy: Any) -> np.ndarray:
        """dy: (..., out_features) -> dx (..., in_features); adds dW, db."""
        _need_forward(self, self._x)
        x = self._x
        dy = as_float_array(dy, "dy", self.dtype)
        check_shape(dy, "dy", x.shape[:-1] + (self.out_features,), "(..., out_features)")
        check_finite(dy, "dy")
        dy2 = dy.reshape(-1, self.out_features)
        self.grads["weight"] += dy2.T @ x.reshape(-1, self.in_features)
        if self.use_bias:
            self.grads["bias"] += dy2.sum(axis=0)
        return dy @ self.params["weight"]


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
        arr = np.asarray(ids)
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
        arr = np.asarray(ids)
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
        np.add.at(self.grads["weight"], ids, rows)
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
            idx = np.asarray(lengths)
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
        if not (getattr(self, "_reuse_masks", False) and self._mask is not None
                and self._mask.shape == x.shape):
            self._mask = ((self._rng.random(x.shape) < keep) / keep).astype(self.dtype)
        return x * self._mask

    def backward(self, dy: Any) -> np.ndarray:
        """dy: like the forward's x; returns dx = dy * mask."""
        _need_forward(self, self._mask)
        dy = as_float_array(dy, "dy", self.dtype)
        check_shape(dy, "dy", self._shape, "x's shape")
        check_finite(dy, "dy")
        return dy * self._mask


def padding_lengths(model: Module, x: Any) -> Optional[np.ndarray]:
    """Lengths from the padding of x when model starts with an Embedding that
    has a padding token (mask_zero or padding_idx), else None."""
    first = model
    while isinstance(first, Sequential) and first.modules:
        first = first.modules[0]
    if isinstance(first, Embedding) and first.pad_token is not None:
        return first.lengths_of(x)
    return None


@contextlib.contextmanager
def _naming(index: int, module: Module) -> Iterator[None]:
    """Prefixes a bad-input error raised inside a Sequential's child with the
    child's position and class ("Sequential[2] Dense: x: expected ..."), keeping
    the exception's type."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        if exc.args and isinstance(exc.args[0], str):
            exc.args = (f"Sequential[{index}] {type(module).__name__}: {exc.args[0]}",) + exc.args[1:]
        raise


def _layout_after(m: Module, layout: Optional[Tuple[Any, str]],
                  where: str) -> Optional[Tuple[Any, str]]:
    """The directions layout of m's output given its input's: (merge_mode,
    "where (Class)") after a bidirectional recurrent layer, None when the
    features are one direction's (or mixed by a Dense)."""
    if isinstance(m, Dropout):       # elementwise: keeps the layout
        return layout
    if isinstance(m, Sequential):
        for i, child in enumerate(m.modules):
            layout = _layout_after(child, layout, f"{where}.modules[{i}]")
        return layout
    if m.is_recurrent and getattr(m, "num_directions", 1) == 2:
        return (getattr(m, "merge_mode", "concat"), f"{where} ({type(m).__name__})")
    return None


def _pool_directions(layout: Optional[Tuple[Any, str]], i: int, m: Module) -> int:
    """LastStep's ``directions`` for an input of this layout; refuses merged halves."""
    if layout is None:
        return 1
    mode, source = layout
    if mode == "concat":
        return 2
    raise ValueError(
        f"modules[{i}] (LastStep): its input comes from {source}, bidirectional with "
        f"merge_mode={mode!r}, which combines the two directions at every step, so the "
        "reverse direction's final output (at t = 0) cannot be taken apart from the forward "
        "direction's last step; use merge_mode='concat' (LastStep then takes each "
        "direction's final output) and combine after it")


def _time_layout(modules: Sequence[Module], layout: Optional[Tuple[bool, str]],
                 prefix: str) -> Optional[Tuple[bool, str]]:
    """Walks the chain with the time layout of its input, (time_major, "where
    (Class)") of the module that set it, or None when unknown; refuses a module
    that reads the time axis (a recurrent layer, LastStep) with the other layout
    than the module before it gives, which would take the batch axis for time
    and give wrong numbers without an error. Returns the layout of the output."""
    for i, m in enumerate(modules):
        where = f"{prefix}[{i}]"
        if isinstance(m, Sequential):
            layout = _time_layout(m.modules, layout, f"{where}.modules")
            continue
        if isinstance(m, (Dropout, Dense, Embedding)):
            continue   # elementwise, over the last axis, or per token: keeps the axes
        reads_time = isinstance(m, LastStep) or m.is_recurrent
        mine = getattr(m, "time_major", None)
        if reads_time and isinstance(mine, bool) and layout is not None and layout[0] != mine:
            def form(tm: bool) -> str:
                return "time-major (T, B, F)" if tm else "batch-first (B, T, F)"
            raise ValueError(
                f"{where} ({type(m).__name__}): has time_major={mine}, but its input comes "
                f"from {layout[1]}, which gives {form(layout[0])} output; it would read the "
                f"batch axis as time. Give {type(m).__name__}(..., time_major={layout[0]})")
        if isinstance(m, LastStep):
            layout = None   # (B, F): no time axis left
        elif reads_time and isinstance(mine, bool):
            layout = (mine, f"{where} ({type(m).__name__})")
        else:
            layout = None   # a module whose output layout is not known
    return layout


def _check_used_once(modules: Sequence[Module]) -> None:
    """Refuses a module that appears twice in the tree (tied weights) or that
    already belongs to another model. A module keeps one forward's cache, so a
    second use would overwrite what the first use's backward needs, and its
    parameters can live in one buffer only."""
    seen: Dict[int, str] = {}

    def walk(ms: Sequence[Module], prefix: str) -> None:
        for i, m in enumerate(ms):
            where = f"{prefix}[{i}]"
            if id(m) in seen:
                raise ValueError(
                    f"{where} ({type(m).__name__}): the same module is already at "
                    f"{seen[id(m)]}; a module can be used once in a model (its forward "
                    "cache and its parameters have one place each). For tied weights, "
                    "use two modules and keep their weights equal yourself")
            seen[id(m)] = where
            if isinstance(m, Sequential):
                walk(m.modules, f"{where}.modules")

    walk(modules, "modules")
    for i, m in enumerate(modules):
        owner = m._container()
        if owner is not None:
            raise ValueError(f"modules[{i}] ({type(m).__name__}): already belongs to another "
                             f"{type(owner).__name__}, whose buffer holds its parameters; a "
                             "module can be part of one model (build a second module and copy "
                             "the weights: new.load_state_dict(old.state_dict()))")


class Sequential(Module):
    """A chain of modules run in order, sharing one flat parameter buffer.

    Recurrent layers in the chain receive ``lengths`` and their own entry of
    ``state``; LastStep receives ``lengths``.

        model = Sequential(Embedding(V, E), LSTM(E, H), LastStep(), Dense(H, C))
        y, state = model.forward(x, state=None, lengths=None)
        dx, dstate = model.backward(dy, dstate=None)

    state is a list with one entry per recurrent layer (None = zeros); dx is
    None when the first module is an Embedding. Parameter names are
    "{index}.{name}", e.g. "1.weight_ih_l0".
    """

    is_recurrent = True
    accepts_lengths = True

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        if not modules:
            raise ValueError("modules: expected at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"modules[{i}]: expected an rnnpy module, got {type(m).__name__}")
        dtypes = {m.dtype for m in modules}
        if len(dtypes) != 1:
            raise TypeError(f"modules: expected one dtype for every module, got "
                            f"{sorted(d.name for d in dtypes)}")
        _check_used_once(modules)
        _time_layout(modules, None, "modules")
        # fixed at construction: the buffer below is laid out for exactly these modules
        self._modules: Tuple[Module, ...] = tuple(modules)
        self.dtype = modules[0].dtype
        n = self.num_params
        self._bind(np.zeros(n, dtype=self.dtype), np.zeros(n, dtype=self.dtype), copy=True)
        for m in self._modules:   # one buffer, one lock: a child's call locks the whole model
            m._share_lock(self._call_lock)

    @property
    def modules(self) -> Tuple[Module, ...]:
        """The chain, fixed at construction (a tuple)."""
        return self._modules

    @modules.setter
    def modules(self, value: Any) -> None:
        raise AttributeError("modules: fixed at construction, since the model's parameter "
                             "buffer is laid out for them; build a new Sequential")

    @property
    def recurrent_layers(self) -> List[Module]:
        return [m for m in self.modules if m.is_recurrent]

    def param_spec(self) -> List[Tuple[str, Tuple[int, ...]]]:
        return [(f"{i}.{name}", shape) for i, m in enumerate(self.modules)
                for name, shape in m.param_spec()]

    def _bind(self, flat_params: np.ndarray, flat_grads: np.ndarray, copy: bool) -> None:
        # children move into slices of the new buffer, keeping their values
        flat_params, flat_grads = self._checked_buffers(flat_params, flat_grads)
        offset = 0
        for i, m in enumerate(self.modules):
            n = m.num_params
            m._adopt(self, f"modules[{i}]", flat_params[offset:offset + n],
                     flat_grads[offset:offset + n])
            offset += n
        self._flat_params, self._flat_grads = flat_params, flat_grads
        self._params, self._grads = LiveArrays(self), LiveArrays(self)
        for i, m in enumerate(self.modules):
            for k, v in m.params.items():
                self._params._set_view(f"{i}.{k}", v)
            for k, v in m.grads.items():
                self._grads._set_view(f"{i}.{k}", v)

    def _rebuild(self) -> "Sequential":
        return type(self)(*[m._rebuild() for m in self.modules])

    def train(self, mode: bool = True) -> "Sequential":
        self.training = bool(mode)
        for m in self.modules:
            m.train(mode)
        return self

    def get_config(self) -> Dict[str, Any]:
        return {"modules": [{"class": type(m).__name__, "config": m.get_config()}
                            for m in self.modules]}

    def _states(self, state: Any, name: str) -> List[Any]:
        n = len(self.recurrent_layers)
        if state is None:
            return [None] * n
        if not isinstance(state, (list, tuple)) or len(state) != n:
            raise TypeError(f"{name}: expected a list of {n} states (one per recurrent layer) "
                            f"or None, got {type(state).__name__}"
                            + (f" of length {len(state)}" if isinstance(state, (list, tuple)) else ""))
        return list(state)

    def forward(self, x: Any, state: Optional[List[Any]] = None,
                lengths: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, List[Any]]:
        """Runs every module in order; returns (y, [final state of each recurrent layer])."""
        states = self._states(state, "state")
        if lengths is None:
            with _naming(0, self.modules[0]):
                lengths = padding_lengths(self, x)
        out_states, k = [], 0
        # the directions layout of x, for LastStep (None: one direction, or mixed)
        layout = self.__dict__.get("_input_layout")
        for i, m in enumerate(self.modules):
            # refused with its own message, which names modules[i] already
            directions = _pool_directions(layout, i, m) if isinstance(m, LastStep) else 1
            with _naming(i, m):
                if isinstance(m, LastStep):
                    x = m.forward(x, lengths, directions=directions)
                elif m.is_recurrent:
                    if isinstance(m, Sequential):
                        # told for this call only: called on its own, its input is its own
                        m._input_layout = layout
                        try:
                            x, st = m.forward(x, states[k], lengths)
                        finally:
                            m._input_layout = None
                    else:
                        x, st = m.forward(x, states[k], lengths)
                    out_states.append(st)
                    k += 1
                elif m.accepts_lengths:
                    x = m.forward(x, lengths)
                else:
                    x = m.forward(x)
            layout = _layout_after(m, layout, f"modules[{i}]")
        return x, out_states

    def backward(self, dy: Any, dstate: Optional[List[Any]] = None) -> Tuple[Optional[np.ndarray], List[Any]]:
        """Backward through every module in reverse; returns (dx, [dstate0 of each recurrent layer])."""
        dstates = self._states(dstate, "dstate")
        out_dstates: List[Any] = []
        k = len(dstates)
        for i in reversed(range(len(self.modules))):
            m = self.modules[i]
            with _naming(i, m):
                if m.is_recurrent:
                    k -= 1
                    dy, ds = m.backward(dy, dstates[k])
                    out_dstates.append(ds)
                else:
                    dy = m.backward(dy)
        out_dstates.reverse()
        return dy, out_dstates

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}) {m!r}" for i, m in enumerate(self.modules))
        return f"Sequential(\n{inner}\n)"
