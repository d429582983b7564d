"""The JSON header's encoding of extra data (arrays, scalars, bytes, tuples,
dicts with non-string keys) and the checks of stored parameter arrays.
"""
from __future__ import annotations

import math
import os
import zipfile
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .config import MAX_DEPTH
from .errors import ModelFileError


# tags of the extra data's JSON form: a dict with exactly one of these keys
_TAGS = ("__array__", "__scalar__", "__bytes__", "__tuple__", "__dict__")


# -- the checks save and load share ------------------------------------------------
def _param_problem(arr: np.ndarray) -> Optional[str]:
    """Why load refuses this parameter array (None when it accepts it)."""
    if arr.dtype.kind != "f":
        return f"has dtype {arr.dtype.name}, expected float32 or float64"
    finite = np.isfinite(arr)
    if not finite.all():
        return f"holds NaN or Inf (first at flat index {int(np.flatnonzero(~finite.ravel())[0])})"
    return None


def _dtype_problem(dtype: np.dtype) -> Optional[str]:
    """Why an array of this dtype cannot be stored and read back without pickle."""
    if dtype.hasobject:
        return "holds Python objects, which only pickle can read"
    try:
        back = np.lib.format.descr_to_dtype(np.lib.format.dtype_to_descr(dtype))
    except (TypeError, ValueError) as exc:
        return f"has dtype {dtype} that .npy cannot describe ({exc})"
    if back != dtype:
        return f"has dtype {dtype} that .npy reads back as {back}"
    return None


# -- nested extra data: arrays out to the archive, the rest to tagged JSON ----------
def _key_path(where: str, key: Any) -> str:
    return f"{where}[{key!r}]"


def _encode(obj: Any, arrays: Dict[str, np.ndarray], where: str, depth: int) -> Any:
    """The JSON form of obj; arrays, NumPy scalars and bytes go to arrays as
    extra/<n>. Raises TypeError/ValueError naming the key path (where) for
    anything load would not give back exactly."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels (or a container "
                         "holds itself); cannot save")
    kind = type(obj)
    if obj is None or kind in (bool, int, str):
        return obj
    if kind is float:   # NaN and +-Inf included: Python's JSON reads them back as written
        return obj
    if kind is np.ndarray or isinstance(obj, np.generic):
        arr = obj if kind is np.ndarray else np.asarray(obj)
        problem = _dtype_problem(arr.dtype)
        if problem:
            raise TypeError(f"{where}: cannot save an array that {problem}")
        key = f"extra/{sum(k.startswith('extra/') for k in arrays)}"
        arrays[key] = arr.copy(order="K")
        return {"__array__" if kind is np.ndarray else "__scalar__": key}
    if kind is bytes:
        key = f"extra/{sum(k.startswith('extra/') for k in arrays)}"
        arrays[key] = np.frombuffer(obj, dtype=np.uint8).copy()
        return {"__bytes__": key}
    if kind is dict:
        out = {}
        for k, v in obj.items():
            if type(k) is not str:
                raise TypeError(f"{where}: keys must be strings, got {k!r:.100} "
                                f"({type(k).__name__}); JSON would turn it into a string")
            out[k] = _encode(v, arrays, _key_path(where, k), depth + 1)
        if len(out) == 1 and next(iter(out)) in _TAGS:   # a dict that looks like a tag
            return {"__dict__": out}
        return out
    if kind is list:
        return [_encode(v, arrays, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
    if kind is tuple:
        return {"__tuple__": [_encode(v, arrays, f"{where}[{i}]", depth + 1)
                              for i, v in enumerate(obj)]}
    hint = ""
    if isinstance(obj, (dict, list, tuple, np.ndarray, int, float, str, bytes)):
        hint = (f" (a subclass of {next(b.__name__ for b in (dict, list, tuple, np.ndarray, bool, int, float, str, bytes) if isinstance(obj, b))}"
                "; load would give back the base type; convert it first)")
    raise TypeError(f"{where}: cannot save a {kind.__name__}{hint}; extra takes None, bool, int, "
                    "float, str, bytes, NumPy arrays and scalars, and lists, tuples and "
                    "str-keyed dicts of them")


def _decode(obj: Any, archive: Any, path: str, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ModelFileError(f"path: {path!r}: {where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            tag, value = next(iter(obj.items()))
            if tag == "__dict__":
                if not isinstance(value, dict):
                    raise ModelFileError(f"path: {path!r}: {where} is a malformed dict entry")
                return {k: _decode(v, archive, path, _key_path(where, k), depth + 1)
                        for k, v in value.items()}
            if tag == "__tuple__":
                if not isinstance(value, list):
                    raise ModelFileError(f"path: {path!r}: {where} is a malformed tuple entry")
                return tuple(_decode(v, archive, path, f"{where}[{i}]", depth + 1)
                             for i, v in enumerate(value))
            if not isinstance(value, str) or not value.startswith("extra/") \
                    or value not in archive.files:
                raise ModelFileError(f"extra: array {value!r:.200} (at {where}) is missing "
                                     f"from the file {path!r}")
            arr = _read(archive, value, path)
            if tag == "__scalar__":
                if arr.ndim != 0:
                    raise ModelFileError(f"path: {path!r}: {where} should hold a scalar, "
                                         f"got shape {arr.shape}")
                return arr[()]
            if tag == "__bytes__":
                if arr.dtype != np.uint8 or arr.ndim != 1:
                    raise ModelFileError(f"path: {path!r}: {where} should hold bytes")
                return arr.tobytes()
            return arr
        return {k: _decode(v, archive, path, _key_path(where, k), depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, archive, path, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
    return obj


def _difference(a: Any, b: Any, where: str) -> Optional[str]:
    """The key path of the first place where b is not exactly a (None if equal)."""
    if type(a) is not type(b):
        return f"{where} ({type(a).__name__} came back as {type(b).__name__})"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where} (keys {list(a)!r:.200} came back as {list(b)!r:.200})"
        for k in a:
            d = _difference(a[k], b[k], _key_path(where, k))
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where} (length {len(a)} came back as {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape or \
                np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
            return f"{where} (array {a.dtype} {a.shape} came back as {b.dtype} {b.shape} or changed)"
        return None
    if isinstance(a, float):
        same = (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)
        return None if same else f"{where} ({a!r} came back as {b!r})"
    return None if a == b else f"{where} ({a!r:.100} came back as {b!r:.100})"


_REFUSED_FLAGS = 0x1 | 0x20 | 0x40   # zip: encrypted, patched data, strong encryption


def _member(archive: Any, key: str, path: str, what: str) -> zipfile.ZipInfo:
    """The zip entry of key, checked to be stored uncompressed inside the file:
    its declared size is then bytes the file really holds."""
    try:
        info = archive.zip.getinfo(key + ".npy")
    except KeyError:
        raise ModelFileError(f"path: {path!r} is missing the array {what}") from None
    total = os.fstat(archive.zip.fp.fileno()).st_size if hasattr(archive.zip.fp, "fileno") \
        else os.path.getsize(path)
    if info.flag_bits & _REFUSED_FLAGS:
        raise ModelFileError(f"path: {path!r}: {what} is marked encrypted or patched (zip flags "
                             f"{info.flag_bits:#x}); rnnpy writes plain stored members; corrupted "
                             "or hostile")
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size \
            or info.header_offset + info.file_size > total:
        raise ModelFileError(f"path: {path!r}: {what} declares {info.file_size} bytes stored "
                             f"as {info.compress_size} (method {info.compress_type}) in a file of "
                             f"{total} bytes; rnnpy writes plain stored members; corrupted or hostile")
    return info


def _read(archive: Any, key: str, path: str, shape: Optional[Tuple[int, ...]] = None,
          dtype: Optional[np.dtype] = None, name: Optional[str] = None) -> np.ndarray:
    """The array stored under key, read only once its .npy header has been
    checked: no Python objects, the expected shape and dtype (when given),
    and a stored size that holds exactly the array it declares. Nothing is
    allocated before that; the zip member's CRC is checked on the way."""
    what = repr(name if name is not None else key)
    stored = _member(archive, key, path, what).file_size
    used = getattr(archive, "_rnnpy_used", None)
    if used is not None:   # save writes each member for one use: a second is hostile
        if key in used:
            raise ModelFileError(f"path: {path!r}: the member {key!r} is referenced twice; "
                                 "rnnpy writes one member per array; corrupted or hostile")
        used.add(key)
    budget = getattr(archive, "_rnnpy_budget", None)
    if budget is not None:   # members read in all: never more than the file holds
        budget[0] -= stored
        if budget[0] < 0:
            raise ModelFileError(f"path: {path!r}: reading {what} would take more bytes than the "
                                 "file holds (a member read twice, or overlapping members); "
                                 "corrupted or hostile")
    with archive.zip.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"path: {path!r}: {what} uses .npy version {version}")
        if got_dtype.hasobject:
            raise ModelFileError(f"path: {path!r}: {what} holds Python objects, which only pickle "
                                 "can read; refused")
        # the other byte order holds the same values: read as stored, converted below
        same_values = dtype is not None and got_dtype.newbyteorder("=") == dtype.newbyteorder("=")
        if (shape is not None and tuple(got_shape) != tuple(shape)) or \
                (dtype is not None and not same_values):
            want = f"{dtype.name if dtype is not None else 'any dtype'} " \
                   f"{tuple(shape) if shape is not None else '(any shape)'}"
            got = got_dtype.name if got_dtype.isnative or got_dtype.itemsize == 1 else \
                f"{got_dtype.name} ({'big' if got_dtype.byteorder == '>' else 'little'}-endian byte order)"
            raise ModelFileError(f"path: {path!r}: {what} expected {want}, "
                                 f"got {got} {tuple(got_shape)}")
        nbytes = int(np.prod(got_shape, dtype=object)) * got_dtype.itemsize
        if f.tell() + nbytes != stored:
            raise ModelFileError(f"path: {path!r}: {what} declares {got_dtype.name} "
                                 f"{tuple(got_shape)} but stores {stored - f.tell()} bytes; "
                                 "truncated or corrupted")
        data = bytearray(nbytes)
        if f.readinto(data) != nbytes or f.read(1):  # reading to the end checks the CRC
            raise ModelFileError(f"path: {path!r}: {what} is truncated")
    arr = np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C")
    if dtype is not None and arr.dtype != dtype:   # the other byte order: the same values, native
        arr = arr.astype(dtype)
    return arr
