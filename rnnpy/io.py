"""Saving and loading models without pickle.

A model file is one ``.npz`` archive holding

    __rnnpy__        uint8 bytes of a JSON header: format marker, version, the
                     module tree's class names and constructor arguments, the
                     name, shape and dtype of every array, and any extra
                     JSON-able data (an optimizer's scalars, a vocabulary, ...)
    param/<name>     every parameter under its name in ``model.params``
    extra/<key>      arrays of the extra data (an optimizer's moments, ...)

It is written to a temporary file in the target's folder, flushed to disk
and renamed over the target, so a crash mid-save leaves the previous file
intact. Loading uses ``allow_pickle=False`` and checks the marker, the
version and every array's shape and dtype before building anything.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .layers import GRU, LSTM, RNN
from .module import Module
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


def _join_extra(obj: Any, archive: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if key not in archive.files:
                raise ModelFileError(f"extra: array {key!r} is missing from the file")
            return archive[key]
        return {k: _join_extra(v, archive) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_extra(v, archive) for v in obj]
    return obj


# -- save and load ---------------------------------------------------------------
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
    }
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnpy-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
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
    with archive:
        try:
            if not hasattr(archive, "files") or HEADER not in archive.files:
                raise ModelFileError(f"path: {path!r} has no rnnpy header; not an rnnpy model file")
            raw = archive[HEADER]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ModelFileError(f"path: {path!r} has a malformed header")
            try:
                header = json.loads(raw.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
                arr = archive[key]
                if arr.shape != dst.shape or arr.dtype != dst.dtype:
                    raise ModelFileError(
                        f"path: {path!r}: {name!r} expected {dst.dtype.name} {dst.shape}, "
                        f"got {arr.dtype.name} {arr.shape}")
                if not np.isfinite(arr).all():
                    raise ModelFileError(f"path: {path!r}: {name!r} holds NaN or Inf")
                state[name] = arr
            model.load_state_dict(state)
            extra = _join_extra(header.get("extra"), archive)
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, zlib.error) as exc:
            raise ModelFileError(f"path: {path!r} is truncated or corrupted ({exc})") from exc
    return model, extra


def load(path: str) -> Module:
    """The model saved at path (see save)."""
    return load_with_extra(path)[0]
