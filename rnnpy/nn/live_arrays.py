"""LiveArrays: a module's name -> array views of its one flat buffer, where
assignment copies into the view instead of detaching the name.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from .._validate import as_float_array, check_finite, check_shape
from .locking import bump_version, run_locked


class LiveArrays(dict):
    """name -> array views of a module's flat buffer. Assigning to a name copies
    into the existing view (after a shape check), so ``params[name] = w`` changes
    the model as ``params[name][...] = w`` does, instead of detaching the name
    from the buffer the kernels and optimizers use. ``update``, ``|=`` and
    ``setdefault`` copy the same way (all values are checked before any is
    copied); removing a name (``del``, ``pop``, ``popitem``, ``clear``) is
    refused, since the names are the module's parameters."""

    def _checked(self, name: Any, value: Any) -> Tuple[np.ndarray, np.ndarray]:
        if name not in self:
            raise KeyError(f"{name!r}: no such parameter; names are {sorted(self)}")
        dst = dict.__getitem__(self, name)
        src = as_float_array(value, f"params[{name!r}]", dst.dtype)
        check_shape(src, f"params[{name!r}]", dst.shape, "the parameter's shape")
        if self._holds_params():   # as load_state_dict: a parameter is finite
            check_finite(src, f"params[{name!r}]")
        return dst, src

    def _holds_params(self) -> bool:
        owner = self._owner_ref() if self._owner_ref is not None else None
        return owner is not None and owner.__dict__.get("_params") is self

    def __init__(self, owner: Optional[Any] = None) -> None:
        super().__init__()
        # the module whose model lock a write takes (weak: the module holds this dict)
        self._owner_ref = weakref.ref(owner) if owner is not None else None

    def _locked(self, fn: Callable, *args: Any) -> Any:
        owner = self._owner_ref() if self._owner_ref is not None else None
        return run_locked(owner, fn, *args)

    def __setitem__(self, name: str, value: Any) -> None:
        dst, src = self._checked(name, value)
        self._locked(self._write, [(dst, src)])

    def _write(self, pairs: List[Tuple[np.ndarray, np.ndarray]]) -> None:
        """Copies each src into its dst view (holding the model lock) and, for
        parameters, gives them a new version (see bump_version)."""
        try:
            for dst, src in pairs:
                np.copyto(dst, src)
        finally:
            if self._holds_params():
                bump_version(self._owner_ref())

    def _assign(self, values: Any, exact: bool) -> None:
        """Copies a mapping (or (name, value) pairs) into the views; every name
        must exist (and with ``exact`` every name must be given). Nothing
        changes unless all are valid."""
        items = list(values.items() if hasattr(values, "items") else values)
        if exact:
            given = [k for k, _ in items]
            missing, extra = sorted(set(self) - set(given)), sorted(set(given) - set(self))
            if missing or extra:
                raise KeyError(f"expected exactly the parameter names {sorted(self)}: "
                               f"missing {missing}, unexpected {extra}")
        pairs = [self._checked(k, v) for k, v in items]
        self._locked(self._write, pairs)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 positional argument, got {len(args)}")
        items = list((args[0].items() if hasattr(args[0], "items") else args[0]) if args else [])
        self._assign(items + list(kwargs.items()), exact=False)

    def __ior__(self, other: Any) -> "LiveArrays":  # type: ignore[override]
        self.update(other)
        return self

    def setdefault(self, name: str, default: Any = None) -> np.ndarray:  # type: ignore[override]
        if name not in self:
            raise KeyError(f"{name!r}: no such parameter; names are {sorted(self)} "
                           "(a module's parameter names are fixed)")
        return dict.__getitem__(self, name)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("the parameter names of a module are fixed: its arrays are views of "
                        "the module's one flat buffer, and removing one would detach it "
                        "(to change values, assign: params[name] = value)")

    __delitem__ = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def _set_view(self, name: str, view: np.ndarray) -> None:
        dict.__setitem__(self, name, view)
