"""Argument checks of the training API (fit, evaluate, predict, callbacks,
gradcheck): each refusal names the argument and says what was expected."""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterator, Optional

import numpy as np


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def flag(value: Any, name: str) -> bool:
    """True or False (NumPy bools and 0/1 accepted); TypeError otherwise."""
    value = _plain(value)
    if not isinstance(value, (bool, np.bool_, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"{name}: expected True or False, got {value!r:.60}")
    return bool(value)


def integer(value: Any, name: str, lo: int, none: bool = False) -> Optional[int]:
    """An int >= lo (or None when none)."""
    value = _plain(value)
    if value is None and none:
        return None
    want = f"an integer >= {lo}" + (" or None" if none else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {want}, got {value!r:.60}")
    if value < lo:
        raise ValueError(f"{name}: expected {want}, got {value}")
    return int(value)


def number(value: Any, name: str, lo: float = -math.inf, positive: bool = False,
           none: bool = False) -> Optional[float]:
    """A finite float >= lo (> lo when positive), or None when none."""
    value = _plain(value)
    if value is None and none:
        return None
    want = ("a finite number " + (f"> {lo:g}" if positive else f">= {lo:g}")
            + (" or None" if none else ""))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {want}, got {value!r:.60}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (positive and v == lo):
        raise ValueError(f"{name}: expected {want}, got {v:g}")
    return v


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name}: expected a non-empty string, got {value!r:.60}")
    return value


def path(value: Any, name: str, none: bool = False) -> Any:
    """A str or os.PathLike naming a file (None when none)."""
    if value is None and none:
        return None
    try:
        p = os.fspath(value)
    except TypeError:
        raise TypeError(f"{name}: expected a file path (str or os.PathLike)"
                        + (" or None" if none else "") + f", got {type(value).__name__}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p or "\0" in p:
        raise ValueError(f"{name}: expected a file path, got {p!r:.100}")
    return value


def model(obj: Any, name: str = "model") -> None:
    """An rnnpy module (forward, train/eval, parameters in flat_params)."""
    if not all(hasattr(obj, a) for a in ("forward", "train", "eval", "flat_params")):
        raise TypeError(f"{name}: expected an rnnpy module (Sequential, LSTM, ...), got "
                        f"{type(obj).__name__}")


def _tree(root: Any) -> Iterator[Any]:
    stack = [root]
    while stack:
        m = stack.pop()
        yield m
        stack.extend(getattr(m, "modules", ()) or ())


def belongs_to(obj: Any, root: Any) -> bool:
    """Whether obj is root or a module inside it, or (for objects that are no
    rnnpy module) its parameters are part of root's buffer."""
    if any(m is obj for m in _tree(root)):
        return True
    fp, mine = getattr(obj, "flat_params", None), getattr(root, "flat_params", None)
    if isinstance(fp, np.ndarray) and isinstance(mine, np.ndarray) and fp.size and mine.size:
        return bool(np.shares_memory(fp, mine))
    params = getattr(obj, "params", None)
    if isinstance(params, dict) and isinstance(mine, np.ndarray) and params:
        return all(isinstance(p, np.ndarray) and np.shares_memory(p, mine) for p in params.values())
    return False


def optimizer_of(model_: Any, optimizer: Any, name: str = "optimizer") -> None:
    """Refuses an optimizer built over another model (its steps would leave
    model untouched); one over a module inside model (fine-tuning) is fine."""
    module = getattr(optimizer, "module", None)
    if module is None:   # an optimizer-like object of the user's: nothing to compare
        return
    if not belongs_to(module, model_):
        raise ValueError(f"{name}: built for another model ({type(module).__name__} at "
                         f"{id(module):#x}), not for model ({type(model_).__name__} at "
                         f"{id(model_):#x}) or a module inside it: its steps would not train "
                         "model (build it as rnnpy.optim.Adam(model, ...))")


def scheduler_of(scheduler: Any, optimizer: Any) -> None:
    """A schedule with step() and state, driving the optimizer fit steps."""
    if scheduler is None:
        return
    if not callable(getattr(scheduler, "step", None)) or not hasattr(scheduler, "optimizer"):
        raise TypeError(f"scheduler: expected an rnnpy.optim schedule (StepLR, ...) or None, got "
                        f"{type(scheduler).__name__}")
    if scheduler.optimizer is not optimizer:
        raise ValueError(f"scheduler: built for another optimizer ({type(scheduler.optimizer).__name__}"
                         f" at {id(scheduler.optimizer):#x}) than the one fit steps "
                         f"({type(optimizer).__name__} at {id(optimizer):#x}): its learning rates "
                         "would not reach training")


def sequence(value: Any, name: str) -> list:
    """A list or tuple (of callbacks, metrics...)."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: expected a list, got {type(value).__name__}")
    return list(value)


def metrics(value: Any) -> None:
    if value is None or isinstance(value, str) or callable(value):
        return
    sequence(value, "metrics")


def verbosity(progress: Any) -> None:
    if progress is not None:
        flag(progress, "progress")
