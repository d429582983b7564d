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

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ._validate import as_float_array, check_finite, check_shape

Shape = Tuple[int, ...]


class Module:
    """Base class: flat parameter storage, modes, gradients and state dicts."""

    is_recurrent = False     # forward returns (out, state); backward takes dstate
    accepts_lengths = False  # forward takes lengths=
    dtype: np.dtype

    def __init__(self) -> None:
        self.training = True
        self.params: Dict[str, np.ndarray] = {}
        self.grads: Dict[str, np.ndarray] = {}
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
        self.params, self.grads = {}, {}
        offset = 0
        for name, shape in self.param_spec():
            size = int(np.prod(shape))
            self.params[name] = flat_params[offset:offset + size].reshape(shape)
            self.grads[name] = flat_grads[offset:offset + size].reshape(shape)
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

    def get_config(self) -> Dict[str, Any]:
        """The constructor's arguments (JSON-serialisable)."""
        raise NotImplementedError

    # -- conveniences over rnnpy.io and rnnpy.training --------------------------------
    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Writes the model to path atomically, without pickle (see rnnpy.io.save)."""
        from .io import save

        save(self, path, extra)

    def fit(self, train: Any, **kwargs: Any) -> Any:
        """rnnpy.fit(self, train, **kwargs)."""
        from .training import fit

        return fit(self, train, **kwargs)

    def evaluate(self, data: Any, **kwargs: Any) -> Dict[str, float]:
        """rnnpy.evaluate(self, data, **kwargs)."""
        from .training import evaluate

        return evaluate(self, data, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """rnnpy.predict(self, x, **kwargs)."""
        from .training import predict

        return predict(self, x, **kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
