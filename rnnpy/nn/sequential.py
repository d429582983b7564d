"""Sequential: a chain of modules whose parameters live in one buffer, with
the time layout and the lengths of padded batches carried along the chain.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .layers import Dense, Dropout, Embedding, LastStep
from .live_arrays import LiveArrays
from .module import Module


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
