"""Optimizers, gradient clipping and learning-rate schedules.

The update rules are PyTorch's (torch.optim.SGD, RMSprop, Adam, AdamW), written
with the same operations in the same order, so that a float64 run follows
PyTorch's to the last few bits. An optimizer works on any module with
``params`` and ``grads`` dicts; when the module has ``flat_params`` and
``flat_grads`` (every rnnpy module does, and ``Sequential`` holds a whole
model in one buffer) each update is a handful of vector operations on one
array. Optimizer state is one flat vector per kind (e.g. ``exp_avg``) in the
parameters' storage order.

    opt = Adam(model, lr=1e-3)
    sched = StepLR(opt, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        for x, y in batches:
            model.zero_grad(); ...forward, loss, backward...
            clip_grad_norm(model, 5.0)
            opt.step()
        sched.step()

``state_dict()`` of optimizers and schedules is a flat dict of NumPy arrays
and plain numbers (savable with ``np.savez`` and loadable without pickle);
``load_state_dict`` resumes training exactly.
"""
from __future__ import annotations

import _signal
import functools
import threading
from typing import Any, Callable, Dict, Iterator, List, Tuple

import numpy as np

from .._validate import FLOAT_DTYPES, array, in_range, integer
from ..nn.locking import bump_version, run_locked


def _buffers(module: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(parameter, gradient) arrays to update in place, in storage order:
    the module's one flat pair when it has it, else each named pair."""
    fp, fg = getattr(module, "flat_params", None), getattr(module, "flat_grads", None)
    if isinstance(fp, np.ndarray) and isinstance(fg, np.ndarray):
        if fp.shape != fg.shape or fp.ndim != 1:
            raise ValueError(f"module: flat_params {fp.shape} and flat_grads {fg.shape} "
                             "must be vectors of one length")
        return [(fp, fg)]
    params, grads = getattr(module, "params", None), getattr(module, "grads", None)
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise TypeError(f"module: expected an object with params and grads dicts, "
                        f"got {type(module).__name__}")
    if set(params) != set(grads):
        raise ValueError(f"module: params and grads must have the same names, got "
                         f"{sorted(params)} and {sorted(grads)}")
    pairs = []
    for name, p in params.items():
        g = grads[name]
        if not isinstance(p, np.ndarray) or not isinstance(g, np.ndarray) or p.shape != g.shape:
            raise ValueError(f"module.grads[{name!r}]: expected an array of the parameter's "
                             f"shape {getattr(p, 'shape', None)}, got {getattr(g, 'shape', None)}")
        pairs.append((p, g))
    return pairs


def _dtype(pairs: List[Tuple[np.ndarray, np.ndarray]]) -> np.dtype:
    dtypes = {p.dtype for p, _ in pairs} | {g.dtype for _, g in pairs}
    if not dtypes:
        return np.dtype(np.float64)
    if len(dtypes) != 1 or next(iter(dtypes)) not in FLOAT_DTYPES:
        raise TypeError(f"module: expected float32 or float64 parameters and gradients of one "
                        f"dtype, got {sorted(d.name for d in dtypes)}")
    return next(iter(dtypes))


def _lerp(start: np.ndarray, end: np.ndarray, weight: float, tmp: Any = None) -> None:
    """start += weight * (end - start) in place, in PyTorch's rounding order;
    tmp: None or a scratch array of start's shape to compute in."""
    diff = np.subtract(end, start, out=tmp)
    if abs(weight) < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1.0 - weight
        np.subtract(end, diff, out=start)


def uninterrupted(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) with SIGINT (Ctrl-C, _thread.interrupt_main) held
    back while it runs and delivered, through the handler installed before,
    once it has returned or raised: an update is never stopped half way.

    Only the main thread receives signals in CPython, so in any other thread
    this is a plain call. A signal arriving before the handler is swapped in
    or after it is put back is delivered as usual, before or after the whole
    call. (One frame installs and restores, so that no exception can come
    between the two places the way it can between a context manager's
    __enter__ and its block; and _signal's functions are C, where signal's
    Python wrappers would give one more point where an exception can come.)"""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    try:
        previous = _signal.getsignal(_signal.SIGINT)
    except ValueError:   # pragma: no cover - not the main interpreter
        return fn(*args, **kwargs)
    caught: List[Tuple[int, Any]] = []
    try:   # installed inside the try: whatever is raised after, the finally puts it back
        _signal.signal(_signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
        return fn(*args, **kwargs)
    finally:
        _signal.signal(_signal.SIGINT, previous)
        if caught:
            signum, frame = caught[0]
            if callable(previous):
                previous(signum, frame)
            elif previous == _signal.SIG_DFL:   # pragma: no cover - the default kills the process
                _signal.raise_signal(signum)


def _scale_all(grads: List[np.ndarray], op: Callable[[np.ndarray, Any], Any]) -> None:
    """op(g, out) for every gradient, all or none: one array (every rnnpy
    module's flat buffer) in place, in one C call; several through copies
    committed at the end (_commit)."""
    if len(grads) == 1:
        op(grads[0], grads[0])
    else:
        _commit([(g, op(g, None)) for g in grads])


def _commit(pairs: List[Tuple[np.ndarray, np.ndarray]]) -> None:
    """Copies each computed array into its destination (dst, new); an exception
    part way (only an asynchronous one can come) finishes the copy before it
    propagates, so the destinations end all old or all new."""
    try:
        for dst, new in pairs:
            np.copyto(dst, new)
    except BaseException:
        for dst, new in pairs:
            np.copyto(dst, new)
        raise


def _on_module(method: Callable) -> Callable:
    """Runs an optimizer method holding its module's model lock, so that a step
    and a read of the state from another thread never interleave."""

    @functools.wraps(method)
    def locked(self: "Optimizer", *args: Any, **kwargs: Any) -> Any:
        return run_locked(self.module, method, self, *args, **kwargs)

    return locked


class Optimizer:
    """Base class: state vectors, step counting, lr, zero_grad and state dicts.

    Subclasses set ``_hyper`` (hyperparameter names, in state_dict order),
    implement ``_validate(**hyper) -> dict`` (checked values), ``_state_names()``
    (state vectors needed by the current hyperparameters) and
    ``_update(p, g, state)`` (one step on one parameter/gradient pair with the
    matching views of the state vectors; ``self.steps`` already counts it).
    """

    _hyper: Tuple[str, ...] = ("lr",)

    def __init__(self, module: Any, **hyper: Any) -> None:
        self.module = module
        pairs = _buffers(module)
        self.dtype = _dtype(pairs)
        self.size = int(sum(p.size for p, _ in pairs))
        for k, v in self._validate(**hyper).items():
            setattr(self, k, v)
        self.steps = 0
        self.state: Dict[str, np.ndarray] = {
            k: np.zeros(self.size, dtype=self.dtype) for k in self._state_names()}

    @property
    def lr(self) -> float:
        """The learning rate (schedules change it between steps)."""
        return self._lr

    @lr.setter
    def lr(self, value: Any) -> None:
        self._lr = in_range(value, "lr", 0.0)

    def _validate(self, **hyper: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_names(self) -> List[str]:
        return []

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _temp(self, slot: int, like: np.ndarray) -> np.ndarray:
        """Scratch array number ``slot`` of like's shape and dtype (contents
        undefined), kept between steps: an update computes into these with
        out= instead of allocating a temporary per operation (fresh large
        arrays cost page faults on every step)."""
        temps = self.__dict__.setdefault("_temps", {})
        buf = temps.get(slot)
        if buf is None or buf.size < like.size or buf.dtype != like.dtype:
            buf = temps[slot] = np.empty(like.size, dtype=like.dtype)
        return buf[:like.size].reshape(like.shape)

    def _chunks(self) -> Iterator[Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]]:
        """(param, grad, state views) per buffer, re-read from the module on every
        step so that re-binding (e.g. into a Sequential) cannot leave it stale."""
        pairs = _buffers(self.module)
        size = sum(p.size for p, _ in pairs)
        if size != self.size or _dtype(pairs) != self.dtype:
            raise RuntimeError(f"module: the optimizer was built for {self.size} "
                               f"{self.dtype.name} parameters, the module now has {size}")
        offset = 0
        for p, g in pairs:
            n = p.size
            views = {k: v[offset:offset + n].reshape(p.shape) for k, v in self.state.items()}
            yield p, g, views
            offset += n

    @_on_module
    def step(self) -> None:
        """Updates every parameter in place from its gradient.

        All or nothing: the new parameters, state vectors and step count are
        computed on copies and put in place at the end, with Ctrl-C held back
        meanwhile (uninterrupted); any exception leaves the parameters,
        the state and ``steps`` as they were before the step, or all as after."""
        bump_version(self.module)   # a forward before this step can no longer be differentiated
        uninterrupted(self._step)

    def _step(self) -> None:
        steps = self.steps
        chunks = list(self._chunks())
        # the step is computed on scratch copies (kept between steps: fresh
        # large arrays would cost page faults on every step) and swapped in
        scratch = self.__dict__.get("_scratch") or {}
        state = {}
        for k, v in self.state.items():
            buf = scratch.get(k)
            state[k] = buf if buf is not None and buf.shape == v.shape \
                and buf.dtype == v.dtype and buf is not v else np.empty_like(v)
            np.copyto(state[k], v)
        spare = self.__dict__.get("_scratch_params") or []
        new_params: List[Tuple[np.ndarray, np.ndarray]] = []
        offset = 0
        self.steps = steps + 1   # _update reads the count of the step it makes
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                for i, (p, g, _) in enumerate(chunks):
                    n = p.size
                    views = {k: v[offset:offset + n].reshape(p.shape) for k, v in state.items()}
                    new = spare[i] if i < len(spare) and spare[i].shape == p.shape \
                        and spare[i].dtype == p.dtype else np.empty_like(p)
                    np.copyto(new, p)
                    self._update(new, g, views)
                    new_params.append((p, new))
                    offset += n
        except BaseException:
            self.steps = steps
            raise
        previous = self.state
        # no call between here and the loop that could raise before the state
        # is in place; an exception in the loop finishes it (see _commit)
        try:
            self.state = state
            for dst, new in new_params:
                np.copyto(dst, new)
        except BaseException:
            self.state = state
            for dst, new in new_params:
                np.copyto(dst, new)
            raise
        self._scratch = previous
        self._scratch_params = [new for _, new in new_params]

    @_on_module
    def zero_grad(self) -> None:
        """Sets the module's gradients to zero."""
        if hasattr(self.module, "zero_grad"):
            self.module.zero_grad()
        else:
            for _, g in _buffers(self.module):
                g[...] = 0

    @_on_module
    def state_dict(self) -> Dict[str, Any]:
        """Hyperparameters (numbers), "step" (int) and copies of the state vectors
        (each of shape (num_params,))."""
        out: Dict[str, Any] = {k: getattr(self, k) for k in self._hyper}
        out["step"] = self.steps
        out.update({k: v.copy() for k, v in self.state.items()})
        return out

    def check_state_dict(self, state: Dict[str, Any]) -> Tuple[Dict[str, Any], int, Dict[str, np.ndarray]]:
        """The checks load_state_dict makes, without changing anything: raises
        TypeError/KeyError/ValueError naming the entry (e.g. a moment holding
        NaN or Inf); returns the checked (hyperparameters, step, state vectors)."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        missing = sorted(set(self._hyper) - set(state))
        if missing:
            raise KeyError(f"state: missing {missing}")
        hyper = self._validate(**{k: state[k] for k in self._hyper})
        names = set(self._hyper) | {"step"}
        saved = _Swap(self, hyper)
        with saved:
            wanted = self._state_names()
        missing = sorted((names | set(wanted)) - set(state))
        extra = sorted(set(state) - names - set(wanted))
        if missing or extra:
            raise KeyError(f"state: missing {missing}, unexpected {extra}")
        steps = integer(state["step"], "state['step']", 0)
        arrays = {}
        for k in wanted:
            a = array(state[k], f"state[{k!r}]")
            if a.dtype.kind != "f" or a.shape != (self.size,):
                raise ValueError(f"state[{k!r}]: expected a float vector of shape "
                                 f"(num_params,) = ({self.size},), got {a.dtype} {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"state[{k!r}]: expected finite values, found NaN or Inf at "
                                 f"flat index {int(np.flatnonzero(~np.isfinite(a))[0])}")
            arrays[k] = a.astype(self.dtype, copy=True)
        return hyper, steps, arrays

    @_on_module
    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores a state_dict of the same optimizer class on a module of the
        same size. Nothing changes unless all of it is valid (check_state_dict)."""
        hyper, steps, arrays = self.check_state_dict(state)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.steps = steps
        self.state = arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({args})"


class _Swap:
    """Temporarily sets hyperparameters (to ask which state they need)."""

    def __init__(self, opt: Optimizer, hyper: Dict[str, Any]) -> None:
        self.opt, self.hyper = opt, hyper
        self.old = {k: getattr(opt, k) for k in hyper}

    def __enter__(self) -> None:
        for k, v in self.hyper.items():
            setattr(self.opt, k, v)

    def __exit__(self, *exc: Any) -> None:
        for k, v in self.old.items():
            setattr(self.opt, k, v)
