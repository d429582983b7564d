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
import math
import numbers
import threading
from typing import Any, Callable, Dict, Iterator, List, Tuple

import numpy as np

from ._validate import FLOAT_DTYPES
from .module import bump_version, holds_model_lock, run_locked

__all__ = [
    "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "clip_grad_norm", "clip_grad_value",
    "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
]


# -- argument checks -----------------------------------------------------------

def _number(value: Any, name: str) -> float:
    """value as a finite float (0-d arrays accepted, bools refused)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def _in_range(value: Any, name: str, lo: float, hi: float = math.inf,
              lo_open: bool = False, hi_open: bool = True) -> float:
    """value as a float in the interval from lo to hi (open or closed ends)."""
    v = _number(value, name)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        want = ("(" if lo_open else "[") + f"{lo:g}, " + (f"{hi:g}" if hi < math.inf else "inf") \
            + (")" if hi_open or hi == math.inf else "]")
        raise ValueError(f"{name}: expected a number in {want}, got {v:g}")
    return v


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not isinstance(value, (bool, np.bool_, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _integer(value: Any, name: str, lo: int) -> int:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {lo}, got {value!r}")
    if value < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {value}")
    return int(value)


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


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start += weight * (end - start) in place, in PyTorch's rounding order."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        diff = end - start
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


# -- optimizers ------------------------------------------------------------------

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
        self._lr = _in_range(value, "lr", 0.0)

    def _validate(self, **hyper: Any) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_names(self) -> List[str]:
        return []

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

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
        steps = _integer(state["step"], "state['step']", 0)
        arrays = {}
        for k in wanted:
            a = np.asarray(state[k])
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


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

        g = grad + weight_decay * p
        buf = g (first step), else momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov), else buf       (when momentum != 0)
        p = p - lr * g
    """

    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, module: Any, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0) -> None:
        super().__init__(module, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)

    def _validate(self, lr: Any, momentum: Any, dampening: Any, weight_decay: Any,
                  nesterov: Any) -> Dict[str, Any]:
        h = {"lr": _in_range(lr, "lr", 0.0),
             "momentum": _in_range(momentum, "momentum", 0.0, 1.0),
             "dampening": _in_range(dampening, "dampening", 0.0, 1.0, hi_open=False),
             "weight_decay": _in_range(weight_decay, "weight_decay", 0.0),
             "nesterov": _flag(nesterov, "nesterov")}
        if h["nesterov"] and (h["momentum"] == 0 or h["dampening"] != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got momentum "
                             f"{h['momentum']:g} and dampening {h['dampening']:g}")
        return h

    def _state_names(self) -> List[str]:
        return ["momentum_buffer"] if self.momentum != 0 else []

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            buf = state["momentum_buffer"]
            if self.steps == 1:
                buf[...] = g
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop.

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        avg = sqrt(v - m^2) + eps with m = alpha * m + (1 - alpha) * g (centered),
              else sqrt(v) + eps
        buf = momentum * buf + g / avg; p = p - lr * buf  (momentum > 0)
        p = p - lr * g / avg                              (otherwise)
    """

    _hyper = ("lr", "alpha", "eps", "momentum", "centered", "weight_decay")

    def __init__(self, module: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(module, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         centered=centered, weight_decay=weight_decay)

    def _validate(self, lr: Any, alpha: Any, eps: Any, momentum: Any, centered: Any,
                  weight_decay: Any) -> Dict[str, Any]:
        return {"lr": _in_range(lr, "lr", 0.0),
                "alpha": _in_range(alpha, "alpha", 0.0, 1.0),
                "eps": _in_range(eps, "eps", 0.0, lo_open=True),
                "momentum": _in_range(momentum, "momentum", 0.0, 1.0),
                "centered": _flag(centered, "centered"),
                "weight_decay": _in_range(weight_decay, "weight_decay", 0.0)}

    def _state_names(self) -> List[str]:
        names = ["square_avg"]
        if self.centered:
            names.append("grad_avg")
        if self.momentum > 0:
            names.append("momentum_buffer")
        return names

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        sq = state["square_avg"]
        sq *= self.alpha
        sq += ((1.0 - self.alpha) * g) * g
        if self.centered:
            ga = state["grad_avg"]
            _lerp(ga, g, 1.0 - self.alpha)
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg
            p -= self.lr * buf
        else:
            p += (-self.lr * g) / avg


class Adam(Optimizer):
    """Adam (optionally AMSGrad), as torch.optim.Adam; weight decay is L2 (added
    to the gradient).

        g = grad + weight_decay * p
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g^2
        vmax = max(vmax, v) (amsgrad, used in place of v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")
    _decoupled = False

    def __init__(self, module: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise TypeError(f"betas: expected a pair of numbers (beta1, beta2), got {betas!r}")
        super().__init__(module, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps,
                         weight_decay=weight_decay, amsgrad=amsgrad)

    @property
    def betas(self) -> Tuple[float, float]:
        return (self.beta1, self.beta2)

    def _validate(self, lr: Any, beta1: Any, beta2: Any, eps: Any, weight_decay: Any,
                  amsgrad: Any) -> Dict[str, Any]:
        return {"lr": _in_range(lr, "lr", 0.0),
                "beta1": _in_range(beta1, "betas[0]", 0.0, 1.0),
                "beta2": _in_range(beta2, "betas[1]", 0.0, 1.0),
                "eps": _in_range(eps, "eps", 0.0, lo_open=True),
                "weight_decay": _in_range(weight_decay, "weight_decay", 0.0),
                "amsgrad": _flag(amsgrad, "amsgrad")}

    def _state_names(self) -> List[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.amsgrad else [])

    def _update(self, p: np.ndarray, g: np.ndarray, state: Dict[str, np.ndarray]) -> None:
        if self.weight_decay != 0:
            if self._decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp(m, g, 1.0 - self.beta1)
        v *= self.beta2
        v += ((1.0 - self.beta2) * g) * g
        t = float(self.steps)
        step_size = self.lr / (1.0 - self.beta1 ** t)
        bc2_sqrt = (1.0 - self.beta2 ** t) ** 0.5
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v)
        denom /= bc2_sqrt
        denom += self.eps
        p += (-step_size * m) / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: before the Adam
    step, p = p * (1 - lr * weight_decay)."""

    _decoupled = True

    def __init__(self, module: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(module, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


# -- gradient clipping -------------------------------------------------------------

@holds_model_lock
def clip_grad_norm(module: Any, max_norm: float) -> float:
    """Scales all gradients in place so that their global L2 norm is at most
    max_norm; returns the norm before clipping.

    As torch.nn.utils.clip_grad_norm_ (error_if_nonfinite=False): the factor is
    min(1, max_norm / (norm + 1e-6)); a NaN/Inf norm is returned as is and the
    gradients are multiplied by the resulting factor all the same.
    """
    max_norm = _in_range(max_norm, "max_norm", 0.0)
    return uninterrupted(_clip_norm, _buffers(module), max_norm)


def _clip_norm(pairs: List[Tuple[np.ndarray, np.ndarray]], max_norm: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        # norm of the per-array norms, as torch; sums of squares in float64
        squares = [float(np.dot(g64, g64)) for g64 in
                   (g.astype(np.float64, copy=False).ravel() for _, g in pairs)]
        total = math.sqrt(math.fsum(squares)) if not any(map(math.isnan, squares)) else math.nan
        coef = math.nan if math.isnan(total) else min(max_norm / (total + 1e-6), 1.0)
        if coef != 1.0:   # all gradients scaled, or none (see Optimizer.step)
            _scale_all([g for _, g in pairs], lambda g, out: np.multiply(g, coef, out=out))
    return total


@holds_model_lock
def clip_grad_value(module: Any, clip_value: float) -> None:
    """Clamps every gradient entry in place to [-clip_value, clip_value]
    (NaN stays NaN), as torch.nn.utils.clip_grad_value_."""
    clip_value = _in_range(clip_value, "clip_value", 0.0)
    pairs = _buffers(module)
    # all gradients clipped, or none (see Optimizer.step)
    uninterrupted(_scale_all, [g for _, g in pairs],
                  lambda g, out: np.clip(g, -clip_value, clip_value, out=out))


# -- learning-rate schedules ----------------------------------------------------------

class _Schedule:
    """Base class: sets optimizer.lr from get_lr() on each step, as
    torch.optim.lr_scheduler with its recursive (chainable) formulas.

    Construction counts as epoch 0 and leaves the learning rate as it is;
    call step() once per epoch, after the optimizer's steps.
    """

    _state = ("last_epoch", "base_lr", "last_lr")

    def __init__(self, optimizer: Any) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer: expected an optimizer with an lr attribute, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self.last_lr = self.base_lr

    def _next_lr(self, lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Advances one epoch and sets the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(float(self.optimizer.lr))
        self.last_lr = float(self.optimizer.lr)

    def get_last_lr(self) -> float:
        """The learning rate set by the latest step (or at construction)."""
        return self.last_lr

    def state_dict(self) -> Dict[str, Any]:
        """The schedule's progress as plain numbers (its hyperparameters come
        from the constructor; the optimizer's lr from the optimizer's state)."""
        return {k: getattr(self, k) for k in self._state}

    def check_state_dict(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """The checks load_state_dict makes, without changing anything; returns
        the checked values."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        missing = sorted(set(self._state) - set(state))
        extra = sorted(set(state) - set(self._state))
        if missing or extra:
            raise KeyError(f"state: missing {missing}, unexpected {extra}")
        return {k: self._check_state(k, state[k]) for k in self._state}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores a state_dict; nothing changes unless all of it is valid."""
        for k, v in self.check_state_dict(state).items():
            setattr(self, k, v)

    def _check_state(self, key: str, value: Any) -> Any:
        if key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            return _integer(value, f"state[{key!r}]", 0)
        if key == "best":
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"state['best']: expected a number, got {value!r}")
            return float(value)
        return _in_range(value, f"state[{key!r}]", 0.0)


class StepLR(_Schedule):
    """Multiplies the learning rate by gamma every step_size epochs."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _integer(step_size, "step_size", 1)
        self.gamma = _in_range(gamma, "gamma", 0.0, lo_open=True)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(_Schedule):
    """Multiplies the learning rate by gamma every epoch."""

    def __init__(self, optimizer: Any, gamma: float) -> None:
        self.gamma = _in_range(gamma, "gamma", 0.0, lo_open=True)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma


class CosineAnnealingLR(_Schedule):
    """Cosine annealing from the initial lr down to eta_min over T_max epochs
    (and back up over the next T_max, as PyTorch's recursive form does):
    lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _integer(T_max, "T_max", 1)
        self.eta_min = _in_range(eta_min, "eta_min", 0.0)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) \
            * (lr - lo) + lo


class ReduceLROnPlateau(_Schedule):
    """Multiplies the learning rate by factor once the metric has not improved
    for more than patience epochs, as torch.optim.lr_scheduler.ReduceLROnPlateau.

    mode "min" (lower is better) or "max"; an improvement must beat the best by
    threshold, relative (best * (1 -/+ threshold), threshold_mode "rel") or
    absolute ("abs"). After a reduction, cooldown epochs pass before bad epochs
    count again; the lr never goes below min_lr, and changes smaller than eps
    are skipped. Call step(metric) once per epoch.
    """

    _state = ("last_epoch", "base_lr", "last_lr", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _in_range(factor, "factor", 0.0, 1.0)
        self.patience = _integer(patience, "patience", 0)
        self.threshold = _in_range(threshold, "threshold", 0.0)
        self.cooldown = _integer(cooldown, "cooldown", 0)
        self.min_lr = _in_range(min_lr, "min_lr", 0.0)
        self.eps = _in_range(eps, "eps", 0.0)
        super().__init__(optimizer)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            bar = self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return a < bar
        bar = self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return a > bar

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Records one epoch's metric (a NaN counts as no improvement)."""
        if isinstance(metric, np.ndarray) and metric.size == 1:
            metric = metric.item()
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric: expected a number, got {metric!r}")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = float(self.optimizer.lr)
