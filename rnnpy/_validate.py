"""Argument checks shared by the Python layer.

Every message names the argument and says what was expected and what came,
e.g. ``state: expected shape (num_layers*D, B, H) = (2, 4, 32), got (2, 4, 16)``.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterator, Optional

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """np.float32 or np.float64 from a name, type or dtype; TypeError otherwise."""
    if dtype is None:
        raise TypeError(f"{name}: expected 'float32' or 'float64', got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


COMPUTE_DTYPES = ("bfloat16", "auto")   # besides None and the layer's own dtype name


def compute_dtype_name(value: Any, dtype: np.dtype, name: str = "compute_dtype") -> str:
    """The spelling of a recurrent layer's compute precision, checked against
    its dtype: None -> dtype's name; the dtype's name; "bfloat16" (float32
    layers only); "auto". TypeError for a non-string, ValueError otherwise.
    Whether the CPU can run bfloat16 is rnnpy.nn.precision's question."""
    if value is None:
        return dtype.name
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        value = np.dtype(value).name   # np.float32 for "float32"
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected None, {dtype.name!r}, 'bfloat16' or 'auto', "
                        f"got {value!r:.100} ({type(value).__name__})")
    if value not in (dtype.name,) + COMPUTE_DTYPES:
        raise ValueError(f"{name}: expected None, {dtype.name!r} (the layer's dtype), 'bfloat16' "
                         f"or 'auto', got {value!r:.100}")
    if value == "bfloat16" and dtype != np.float32:
        raise ValueError(f"{name}: 'bfloat16' needs a float32 layer (parameters and states stay "
                         f"float32, only the products' operands are rounded); this layer is "
                         f"{dtype.name}")
    return value


_INT64 = np.iinfo(np.int64)


def _is_rows(e: Any) -> bool:
    return isinstance(e, (list, tuple)) or (isinstance(e, np.ndarray) and e.ndim > 0)


def _ragged_where(obj: Any, name: str) -> str:
    """Where a nested list first stops being rectangular, as " (x[0] has length
    2, x[1] length 1)" with x for the argument; "" when not found in the first
    levels. Every element at one depth must be a sequence of one length."""
    level: list = [((), obj)]
    for _ in range(32):
        rows = [(p, e) for p, e in level if _is_rows(e)]
        if not rows:
            return ""
        if len(rows) != len(level):
            (p, _), (q, _) = rows[0], next(x for x in level if not _is_rows(x[1]))
            return f" ({name}{_at(p)} is a sequence, {name}{_at(q)} is not)"
        n = len(rows[0][1])
        other = next(((p, e) for p, e in rows if len(e) != n), None)
        if other is not None:
            return (f" ({name}{_at(rows[0][0])} has length {n}, {name}{_at(other[0])} "
                    f"length {len(other[1])})")
        level = [(p + (i,), e) for p, seq in rows for i, e in enumerate(seq)]
    return ""


def _at(path: tuple) -> str:
    return "".join(f"[{i}]" for i in path)


def array(obj: Any, name: str) -> np.ndarray:
    """np.asarray(obj) for an argument given by the user: the one conversion of
    user arrays. Refuses, naming the argument, what NumPy would refuse with a
    message naming nothing or turn into an object array silently: ragged nested
    sequences (ValueError: rows of different lengths) and Python integers
    outside int64 (ValueError). An ndarray comes back as it is."""
    if isinstance(obj, np.ndarray):
        arr = obj
    else:
        try:
            arr = np.asarray(obj)
        except ValueError as exc:
            raise ValueError(f"{name}: expected an array-like of equal-length rows (pad "
                             f"variable-length sequences with rnnpy.data.pad_sequences), got a "
                             f"ragged {type(obj).__name__}"
                             + _ragged_where(obj, name)) from exc
        except (TypeError, OverflowError) as exc:
            raise TypeError(f"{name}: expected an array-like of numbers, got "
                            f"{type(obj).__name__}") from exc
    if arr.dtype == object and arr.size:
        for k, v in enumerate(arr.flat):
            if isinstance(v, numbers.Integral) and not isinstance(v, bool) \
                    and not _INT64.min <= v <= _INT64.max:
                raise ValueError(f"{name}: expected integers in the int64 range [-2**63, 2**63), "
                                 f"got {v} at flat index {k}")
    return arr


def new_array(shape: tuple, dtype: Any, name: str, value: Any, fill: Any = 0,
              fill_name: str = "value") -> np.ndarray:
    """np.full(shape, fill, dtype) for a shape that the argument ``name`` (given
    as ``value``) sets; ValueError naming it when no such array can be made:
    more bytes than an address space holds, or than this machine can allocate.
    A fill that does not fit dtype: TypeError naming ``fill_name``."""
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    want = f"{name}: expected a size whose result, shape {tuple(shape)} of {np.dtype(dtype)}"
    if nbytes > np.iinfo(np.intp).max:
        raise ValueError(f"{want} ({nbytes:.3g} bytes), fits in memory, got {value!r:.60}")
    try:
        return np.full(shape, fill, dtype=dtype)
    except MemoryError:
        raise ValueError(f"{want} ({nbytes:.3g} bytes), can be allocated, got "
                         f"{value!r:.60}") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{fill_name}: expected a value of dtype {np.dtype(dtype)}, got "
                        f"{fill!r:.60}") from exc


def real_array(obj: Any, name: str, kinds: str = "fiu") -> np.ndarray:
    """array(obj, name), refused (TypeError naming the argument) unless it holds
    real numbers: dtype kinds among ``kinds`` (f float, i/u integers, b bool)."""
    arr = array(obj, name)
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    return arr


def as_float_array(obj: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``dtype``.

    An ndarray must already be float32 or float64 (the other is converted);
    other array-likes (lists, scalars) may hold any real numbers.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {obj.dtype}")
        return np.asarray(obj, dtype=dtype, order="C")
    # not np.ascontiguousarray: it turns a scalar into shape (1,)
    return np.asarray(real_array(obj, name), dtype=dtype, order="C")


def check_shape(arr: np.ndarray, name: str, expected: tuple, symbols: str) -> None:
    """ValueError unless arr.shape matches expected (None entries match any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected)
        want += ",)" if len(expected) == 1 else ")"
        raise ValueError(f"{name}: expected shape {symbols} = {want}, got {tuple(arr.shape)}")


def check_finite(arr: np.ndarray, name: str) -> None:
    """ValueError when arr holds NaN or Inf (one pass in C for contiguous
    float32/float64 arrays, 4-16x faster than np.isfinite(arr).all(); made on
    every forward and backward, so it must cost little next to them)."""
    ok = _core.all_finite(arr)
    if ok is None:
        ok = bool(np.isfinite(arr).all())
    if not ok:
        bad = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise ValueError(f"{name}: expected finite values, found NaN or Inf at flat index {bad}")


def positive_int(value: Any, name: str) -> int:
    """value as an int > 0; TypeError for non-integers (bool included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def probability(value: Any, name: str) -> float:
    """value as a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
    return value


def seed_value(seed: Any, name: str = "seed") -> int | None:
    """None or a non-negative int."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"{name}: expected None or a non-negative integer, got {seed!r}")
    return int(seed)


def file_path(path: Any, name: str = "path") -> str:
    """path (str, bytes or os.PathLike) as a str; TypeError naming the argument
    for anything else, ValueError for '' or a NUL byte (file contents passed
    where a path was expected)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__}")
    try:
        p = os.fsdecode(os.fspath(path))
    except TypeError as exc:   # a PathLike whose __fspath__ returns something else
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__} ({exc})") from None
    if not p:
        raise ValueError(f"{name}: expected a file path, got an empty string")
    if "\0" in p:
        raise ValueError(f"{name}: expected a file path, got {len(p)} characters with a NUL byte "
                         f"at index {p.index(chr(0))} (file contents instead of a path?)")
    return p


def writable_file_path(path: Any, name: str = "path") -> str:
    """file_path(path), checked to be writable as a file: not a folder, in a
    folder that exists and that this process may write into. FileNotFoundError,
    NotADirectoryError, IsADirectoryError or PermissionError naming the
    argument and the folder; nothing is created."""
    p = file_path(path, name)
    folder = os.path.dirname(os.path.abspath(p))
    if p.endswith(os.sep) or (os.altsep and p.endswith(os.altsep)) or os.path.isdir(p):
        raise IsADirectoryError(f"{name}: expected a file path, got the folder {p!r}")
    if not os.path.exists(folder):
        missing = folder
        while not os.path.exists(os.path.dirname(missing)) and os.path.dirname(missing) != missing:
            missing = os.path.dirname(missing)
        raise FileNotFoundError(f"{name}: the folder {folder!r} does not exist "
                                f"({missing!r} is missing); create it before writing {p!r}")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{name}: {folder!r} is not a folder; cannot "
                                 f"write {p!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: no permission to write in the folder "
                              f"{folder!r}; {p!r} was not written")
    return p


def boolean(value: Any, name: str) -> bool:
    """value as a bool; TypeError naming the argument unless it is a bool or
    np.bool_ (not "yes", 1 or None: a string is always true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r:.100} ({type(value).__name__})")
    return bool(value)


def choice(value: Any, name: str, options: tuple) -> Any:
    """value, one of options (str or None); ValueError naming the argument for
    anything else (a NumPy string or an array of them included)."""
    if (value is None or isinstance(value, str)) and value in options:
        return value
    want = " or ".join(map(repr, options)) if len(options) == 2 else f"one of {options}"
    kind = "" if value is None or isinstance(value, str) else f" ({type(value).__name__})"
    raise ValueError(f"{name}: expected {want}, got {value!r:.100}{kind}")


def non_negative_int(value: Any, name: str) -> int:
    """value as an int >= 0; TypeError for non-integers (bool, float and str included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a non-negative integer, got {value!r:.100} "
                        f"({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value}")
    return int(value)


def real(value: Any, name: str) -> float:
    """value as a finite float; TypeError for non-numbers (bool and str included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r:.100} ({type(value).__name__})")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def token_ids(ids: Any, size: int, name: str = "ids") -> np.ndarray:
    """(N,) integer ids in [0, size) from any array-like (raveled); TypeError
    or ValueError naming the first bad one otherwise."""
    arr = array(ids, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    arr = arr.ravel()
    bad = (arr < 0) | (arr >= size)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: expected integers in [0, {size}), got {int(arr[k])} at index {k}")
    return arr


# -- numbers given as hyperparameters (optimizers, schedules) ------------------------
def finite_number(value: Any, name: str) -> float:
    """value as a finite float (0-d arrays accepted, bools refused)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def in_range(value: Any, name: str, lo: float, hi: float = math.inf,
              lo_open: bool = False, hi_open: bool = True) -> float:
    """value as a float in the interval from lo to hi (open or closed ends)."""
    v = finite_number(value, name)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        want = ("(" if lo_open else "[") + f"{lo:g}, " + (f"{hi:g}" if hi < math.inf else "inf") \
            + (")" if hi_open or hi == math.inf else "]")
        raise ValueError(f"{name}: expected a number in {want}, got {v:g}")
    return v


# -- the training API (fit, evaluate, predict, callbacks, gradcheck) ----------------
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
