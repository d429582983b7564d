"""Argument checks shared by the Python layer.

Every message names the argument and says what was expected and what came,
e.g. ``state: expected shape (num_layers*D, B, H) = (2, 4, 32), got (2, 4, 16)``.
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

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


def as_float_array(obj: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``dtype``.

    An ndarray must already be float32 or float64 (the other is converted);
    other array-likes (lists, scalars) may hold any real numbers.
    """
    if isinstance(obj, np.ndarray):
        if obj.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {obj.dtype}")
        return np.asarray(obj, dtype=dtype, order="C")
    try:
        arr = np.asarray(obj)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of real numbers, got {type(obj).__name__}") from exc
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


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
    """ValueError when arr holds NaN or Inf."""
    if not np.isfinite(arr).all():
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
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    arr = arr.ravel()
    bad = (arr < 0) | (arr >= size)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: expected integers in [0, {size}), got {int(arr[k])} at index {k}")
    return arr
