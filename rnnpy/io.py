"""Saving and loading models without pickle.

A model file is one ``.npz`` archive holding

    __rnnpy__        uint8 bytes of a JSON header: format marker, version, the
                     module tree's class names and constructor arguments, the
                     name, shape and dtype of every array, the state of every
                     random generator (dropout), and any extra JSON-able data
                     (an optimizer's scalars, a vocabulary, ...)
    param/<name>     every parameter under its name in ``model.params``
    extra/<key>      arrays of the extra data (an optimizer's moments, ...)

It is written to a temporary file in the target's folder, flushed to disk
and renamed over the target, so a crash mid-save leaves the previous file
intact. Loading uses ``allow_pickle=False`` and checks the marker, the
version and every array's shape and dtype before building anything; each
array's declared shape is checked against its stored size before it is
read, so a hostile file cannot make the loader allocate what it does not hold.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple

import numpy as np

from .layers import GRU, LSTM, RNN
from .module import Module, holds_model_lock
from .nn import Dense, Dropout, Embedding, LastStep, Sequential

FORMAT = "rnnpy-model"
VERSION = 1
HEADER = "__rnnpy__"

MODULES = {cls.__name__: cls for cls in (RNN, LSTM, GRU, Dense, Embedding, LastStep, Dropout, Sequential)}


class ModelFileError(ValueError):
    """A model file that is missing, truncated, corrupted or not rnnpy's."""


# -- module trees <-> JSON ---------------------------------------------------------
def module_config(module: Module) -> Dict[str, Any]:
    """{"class": name, "config": constructor arguments} for a module tree."""
    name = type(module).__name__
    if name not in MODULES:
        raise TypeError(f"model: cannot save a {name}; savable modules are {sorted(MODULES)}")
    return {"class": name, "config": module.get_config()}


def build_module(spec: Any, where: str = "config") -> Module:
    """The module a module_config() describes (with fresh parameters)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
            or not isinstance(spec.get("config"), dict):
        raise ModelFileError(f"{where}: expected {{'class': str, 'config': dict}}, got {spec!r:.200}")
    cls = MODULES.get(spec["class"])
    if cls is None:
        raise ModelFileError(f"{where}: unknown module class {spec['class']!r}")
    config = dict(spec["config"])
    try:
        if cls is Sequential:
            children = config.get("modules")
            if not isinstance(children, list):
                raise ModelFileError(f"{where}: a Sequential needs a list of modules")
            return Sequential(*[build_module(c, f"{where}.modules[{i}]") for i, c in enumerate(children)])
        return cls(**config)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{where}: cannot build {spec['class']}: {exc}") from exc


# -- nested extra data: arrays out to the archive, the rest to JSON ------------------
def _split_extra(obj: Any, arrays: Dict[str, np.ndarray], path: str) -> Any:
    if isinstance(obj, np.ndarray):
        key = f"extra/{path}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"extra: keys must be strings, got {k!r} at {path or 'top level'}")
        return {k: _split_extra(v, arrays, f"{path}/{k}" if path else k) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_extra(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"extra: cannot save a {type(obj).__name__} at {path or 'top level'}")


def _join_extra(obj: Any, archive: Any, path: str) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if not isinstance(key, str) or key not in archive.files:
                raise ModelFileError(f"extra: array {key!r} is missing from the file")
            return _read(archive, key, path)
        return {k: _join_extra(v, archive, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_extra(v, archive, path) for v in obj]
    return obj


def _read(archive: Any, key: str, path: str, shape: Optional[Tuple[int, ...]] = None,
          dtype: Optional[np.dtype] = None, name: Optional[str] = None) -> np.ndarray:
    """The array stored under key, read only once its .npy header has been
    checked: no Python objects, the expected shape and dtype (when given),
    and a stored size that holds exactly the array it declares. Nothing is
    allocated before that; the zip member's CRC is checked on the way."""
    what = repr(name if name is not None else key)
    member = key + ".npy"
    stored = archive.zip.getinfo(member).file_size
    with archive.zip.open(member) as f:
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
        if (shape is not None and tuple(got_shape) != tuple(shape)) or \
                (dtype is not None and got_dtype != dtype):
            want = f"{dtype.name if dtype is not None else 'any dtype'} " \
                   f"{tuple(shape) if shape is not None else '(any shape)'}"
            raise ModelFileError(f"path: {path!r}: {what} expected {want}, "
                                 f"got {got_dtype.name} {tuple(got_shape)}")
        nbytes = int(np.prod(got_shape, dtype=object)) * got_dtype.itemsize
        if f.tell() + nbytes != stored:
            raise ModelFileError(f"path: {path!r}: {what} declares {got_dtype.name} "
                                 f"{tuple(got_shape)} but stores {stored - f.tell()} bytes; "
                                 "truncated or corrupted")
        data = bytearray(nbytes)
        if f.readinto(data) != nbytes or f.read(1):  # reading to the end checks the CRC
            raise ModelFileError(f"path: {path!r}: {what} is truncated")
    return np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C")


# -- save and load ---------------------------------------------------------------
@holds_model_lock
def save(model: Module, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
    """Writes model (and optional extra data) to path atomically.

    extra: a dict of JSON-able values and NumPy arrays, nested freely (e.g.
    {"optimizer": opt.state_dict(), "epoch": 3}); returned by load_with_extra.
    """
    path = os.fspath(path)
    arrays: Dict[str, np.ndarray] = {}
    params = {}
    for name, value in model.params.items():
        arrays[f"param/{name}"] = np.ascontiguousarray(value)
        params[name] = {"shape": list(value.shape), "dtype": value.dtype.name}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "model": module_config(model),
        "params": params,
        "extra": _split_extra(extra, arrays, "") if extra is not None else None,
        "rng": model.rng_state(),
    }
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(path: str, write: Callable[[BinaryIO], Any], suffix: str = ".tmp") -> None:
    """Calls write(f) on a temporary file beside path, flushes it to disk and
    renames it over path, so path holds either its old content or all of the
    new one, never part of it. The temporary is removed if anything fails."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnpy-", suffix=suffix, dir=folder)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load_with_extra(path: str) -> Tuple[Module, Any]:
    """(model, extra) from a file written by save()."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no model file at {path!r}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"path: {path!r} is not a readable rnnpy model file ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy file
        raise ModelFileError(f"path: {path!r} has no rnnpy header; not an rnnpy model file")
    with archive:
        try:
            if not hasattr(archive, "files") or HEADER not in archive.files:
                raise ModelFileError(f"path: {path!r} has no rnnpy header; not an rnnpy model file")
            raw = _read(archive, HEADER, path, None, np.dtype(np.uint8))
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ModelFileError(f"path: {path!r} has a malformed header")
            try:
                header = json.loads(raw.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelFileError(f"path: {path!r} has a corrupted header ({exc})") from exc
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ModelFileError(f"path: {path!r} is not an rnnpy model file (format marker missing)")
            if header.get("version") != VERSION:
                raise ModelFileError(f"path: {path!r} has format version {header.get('version')!r}; "
                                     f"this rnnpy reads version {VERSION}")
            model = build_module(header.get("model"), "model")
            declared = header.get("params")
            if not isinstance(declared, dict) or set(declared) != set(model.params):
                raise ModelFileError(f"path: {path!r} lists parameters that do not match its model")
            state = {}
            for name, dst in model.params.items():
                key = f"param/{name}"
                if key not in archive.files:
                    raise ModelFileError(f"path: {path!r} is missing the array {name!r}")
                arr = _read(archive, key, path, dst.shape, dst.dtype, name)
                if not np.isfinite(arr).all():
                    raise ModelFileError(f"path: {path!r}: {name!r} holds NaN or Inf")
                state[name] = arr
            model.load_state_dict(state)
            rng = header.get("rng")
            if rng is not None:  # files without it restart dropout from the seeds
                try:
                    model.set_rng_state(rng)
                except (TypeError, ValueError) as exc:
                    raise ModelFileError(f"path: {path!r} has bad random generator states ({exc})") from None
            extra = _join_extra(header.get("extra"), archive, path)
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, zlib.error) as exc:
            raise ModelFileError(f"path: {path!r} is truncated or corrupted ({exc})") from exc
    return model, extra


def load(path: str) -> Module:
    """The model saved at path (see save)."""
    return load_with_extra(path)[0]
