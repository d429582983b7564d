"""The contract every rnnpy model piece follows.

A module has an explicit ``forward`` and ``backward`` (backward differentiates
the most recent forward and ADDS parameter gradients into ``grads``), and its
parameters live in one flat vector: ``params`` and ``grads`` map names to views
of ``flat_params`` and ``flat_grads``. A container (``Sequential``) re-binds its
children to views of one buffer for the whole model, so optimizers, clipping and
gradient checks walk one array.

Recurrent modules return ``(out, state)`` from forward and ``(dx, dstate)`` from
backward; the others return one array. ``get_config`` gives the constructor
arguments, which is how models are saved without pickle.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ._validate import as_float_array, check_finite, check_shape

Shape = Tuple[int, ...]

# NumPy bit generators whose state a saved model may restore
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _plain(obj: Any) -> Any:
    """A generator state with its arrays (MT19937's key, Philox's counter) as lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _exclusive(method: Callable, name: str) -> Callable:
    """Wraps forward/backward so one module runs one call at a time: a call
    that arrives while another thread is inside the module (its kernels
    release the GIL) gets a RuntimeError instead of mixing two calls' caches.
    The owning thread may re-enter (a subclass calling super().forward)."""

    @functools.wraps(method)
    def guarded(self: "Module", *args: Any, **kwargs: Any) -> Any:
        lock = self.__dict__.get("_call_lock")
        if lock is None:   # a subclass that skipped Module.__init__
            return method(self, *args, **kwargs)
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"{type(self).__name__}.{name}: the module is in use by another "
                               "thread; a module runs one call at a time (use one model per "
                               "thread)")
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()

    guarded._exclusive = True  # type: ignore[attr-defined]
    return guarded


class LiveArrays(dict):
    """name -> array views of a module's flat buffer. Assigning to a name copies
    into the existing view (after a shape check), so ``params[name] = w`` changes
    the model as ``params[name][...] = w`` does, instead of detaching the name
    from the buffer the kernels and optimizers use."""

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self:
            raise KeyError(f"{name!r}: no such parameter; names are {sorted(self)}")
        dst = dict.__getitem__(self, name)
        src = as_float_array(value, f"params[{name!r}]", dst.dtype)
        check_shape(src, f"params[{name!r}]", dst.shape, "the parameter's shape")
        dst[...] = src

    def _set_view(self, name: str, view: np.ndarray) -> None:
        dict.__setitem__(self, name, view)


class Module:
    """Base class: flat parameter storage, modes, gradients and state dicts.

    Threads: different modules may run in different threads at once (the C
    kernels release the GIL); one module is used by one thread at a time, and a
    second thread calling forward or backward on a busy module gets a
    RuntimeError.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("forward", "backward"):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_exclusive", False):
                setattr(cls, name, _exclusive(fn, name))

    is_recurrent = False     # forward returns (out, state); backward takes dstate
    accepts_lengths = False  # forward takes lengths=
    dtype: np.dtype

    def __init__(self) -> None:
        self._call_lock = threading.RLock()   # re-entrant: a subclass may call super().forward
        self.training = True
        self.params: Dict[str, np.ndarray] = LiveArrays()
        self.grads: Dict[str, np.ndarray] = LiveArrays()
        self.flat_params = np.zeros(0)
        self.flat_grads = np.zeros(0)

    # -- parameters -----------------------------------------------------------
    def param_spec(self) -> List[Tuple[str, Shape]]:
        """[(name, shape), ...] in storage order."""
        return []

    @property
    def num_params(self) -> int:
        return int(sum(int(np.prod(s)) for _, s in self.param_spec()))

    def _allocate(self) -> None:
        """Gives the module buffers of its own (called by constructors)."""
        n = self.num_params
        self.bind(np.zeros(n, dtype=self.dtype), np.zeros(n, dtype=self.dtype), copy=False)

    def bind(self, flat_params: np.ndarray, flat_grads: np.ndarray, copy: bool = True) -> None:
        """Moves the parameters into the given flat vectors (views of a larger
        buffer, typically), copying the current values when ``copy``."""
        n = self.num_params
        for name, buf in (("flat_params", flat_params), ("flat_grads", flat_grads)):
            if buf.shape != (n,) or buf.dtype != self.dtype or not buf.flags.c_contiguous:
                raise ValueError(f"{name}: expected a contiguous {self.dtype.name} vector of "
                                 f"{n} values, got {buf.dtype.name} of shape {buf.shape}")
        if copy and self.flat_params.size == n:
            flat_params[...] = self.flat_params
            flat_grads[...] = self.flat_grads
        self.flat_params, self.flat_grads = flat_params, flat_grads
        self.params, self.grads = LiveArrays(), LiveArrays()
        offset = 0
        for name, shape in self.param_spec():
            size = int(np.prod(shape))
            self.params._set_view(name, flat_params[offset:offset + size].reshape(shape))
            self.grads._set_view(name, flat_grads[offset:offset + size].reshape(shape))
            offset += size
        self._on_bind()

    def _on_bind(self) -> None:
        """Hook for modules whose kernels hold pointers into the buffers."""

    # -- modes and gradients --------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active); returns self."""
        self.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (no dropout); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Sets every gradient to zero."""
        self.flat_grads[...] = 0

    # -- state ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """name -> copy of the parameter."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Copies parameters by name; every name must be present with its exact
        shape, and nothing else may be. Nothing changes unless all are valid."""
        missing = sorted(set(self.params) - set(state))
        extra = sorted(set(state) - set(self.params))
        if missing or extra:
            raise KeyError(f"state: missing {missing}, unexpected {extra}")
        checked = {}
        for name, dst in self.params.items():
            src = as_float_array(np.asarray(state[name]), f"state[{name!r}]", self.dtype)
            check_shape(src, f"state[{name!r}]", dst.shape, "the parameter's shape")
            check_finite(src, f"state[{name!r}]")
            checked[name] = src
        for name, dst in self.params.items():
            dst[...] = checked[name]

    # -- random state (dropout masks) -------------------------------------------
    def rng_state(self) -> Dict[str, Any]:
        """{path: bit generator state} of every random generator in the module
        tree ("" is this module, "1" its child 1, "1.0" that child's child 0).
        JSON-able; saved with the model so that dropout resumes exactly."""
        states: Dict[str, Any] = {}
        rng = getattr(self, "_rng", None)
        if isinstance(rng, np.random.Generator):
            states[""] = _plain(rng.bit_generator.state)
        for i, child in enumerate(getattr(self, "modules", ())):
            for path, st in child.rng_state().items():
                states[f"{i}.{path}" if path else str(i)] = st
        return states

    def set_rng_state(self, states: Dict[str, Any]) -> None:
        """Restores what rng_state() gave: exactly this tree's paths, each a
        NumPy bit generator state. Nothing changes unless all are valid."""
        if not isinstance(states, dict):
            raise TypeError(f"states: expected a dict of path -> generator state, "
                            f"got {type(states).__name__}")
        owners = self._rng_owners("")
        if set(states) != set(owners):
            raise ValueError(f"states: expected generator states for {sorted(owners)}, "
                             f"got {sorted(states)}")
        fresh = {}
        for path, state in states.items():
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise ValueError(f"states[{path!r}]: expected the state of one of "
                                 f"{sorted(_BIT_GENERATORS)}, got {state!r:.200}")
            bitgen = getattr(np.random, name)()
            try:
                bitgen.state = state
            except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
                raise ValueError(f"states[{path!r}]: not a valid {name} state ({exc})") from None
            fresh[path] = np.random.Generator(bitgen)
        for path, rng in fresh.items():
            owners[path]._rng = rng

    def _rng_owners(self, prefix: str) -> Dict[str, "Module"]:
        owners: Dict[str, Module] = {}
        if isinstance(getattr(self, "_rng", None), np.random.Generator):
            owners[prefix] = self
        for i, child in enumerate(getattr(self, "modules", ())):
            owners.update(child._rng_owners(f"{prefix}.{i}" if prefix else str(i)))
        return owners

    def get_config(self) -> Dict[str, Any]:
        """The constructor's arguments (JSON-serialisable)."""
        raise NotImplementedError

    # -- conveniences over rnnpy.io and rnnpy.training --------------------------------
    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Writes the model to path atomically, without pickle (see rnnpy.io.save)."""
        from .io import save

        save(self, path, extra)

    def compile(self, optimizer: Any = "adam", loss: Any = None,
                metrics: Optional[Any] = None) -> "Module":
        """Keras's form: keeps the optimizer (a name such as "adam", "sgd",
        "rmsprop", or an rnnpy.optim optimizer), the loss and the metrics that
        fit and evaluate use when not given theirs. Returns self."""
        from .training import resolve_loss, resolve_optimizer

        if loss is None:
            raise TypeError("loss: expected a loss name or function")
        resolve_loss(loss)   # refuse a bad name now, not at fit
        self._compiled = {"optimizer": resolve_optimizer(self, optimizer), "loss": loss,
                          "metrics": metrics}
        return self

    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """rnnpy.fit(self, x, y, **kwargs): fit(x, y, epochs=, batch_size=,
        validation_data=, verbose=, callbacks=) after compile(), or
        fit((x, y[, lengths]) or batches, loss=, optimizer=, ...)."""
        from .training import fit

        if "train" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("train: given together with x (its other name); pass one")
            x = kwargs.pop("train")
        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Dict[str, float]:
        """rnnpy.evaluate(self, x, y, **kwargs)."""
        from .training import evaluate

        if "data" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("data: given together with x (its other name); pass one")
            x = kwargs.pop("data")
        return evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """rnnpy.predict(self, x, **kwargs)."""
        from .training import predict

        return predict(self, x, **kwargs)

    def summary(self, input_shape: Optional[Any] = None, print_fn: Any = print) -> str:
        """Prints (with print_fn) and returns a table of the modules, their
        output shapes (given input_shape, one example's shape without the
        batch axis: (T, I), or (T,) for token ids) and parameter counts."""
        from .summary import summary

        text = summary(self, input_shape)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
