"""Saving and loading models without pickle.

A model file is one ``.npz`` archive (members stored uncompressed) holding

    __rnnpy__        uint8 bytes of a JSON header: format marker, version, the
                     module tree's class names and constructor arguments, the
                     name, shape and dtype of every array, the state of every
                     random generator (dropout), and any extra data (an
                     optimizer's scalars, a vocabulary, ...) in a tagged JSON form
    param/<name>     every parameter under its name in ``model.params``
    extra/<n>        arrays (and NumPy scalars, bytes) of the extra data

Whatever save writes, load reads back exactly: save refuses, with an error
naming the parameter or the key, what load would refuse or change, and it
loads the written temporary file back and compares it with what it meant to
write before renaming it over the target.

The file is written to a temporary file beside the target, named after it
(``.rnnpy-<name>.<random>.tmp``) and locked (``flock``) while written, then
flushed to disk and renamed over the target, so a crash mid-save leaves the
previous file intact. A later write to the same target removes the
temporaries that dead writers left (those whose lock it can take); a live
writer's file is never removed.

Loading uses ``allow_pickle=False`` and checks the marker and the version,
then plans the model from its configuration without allocating anything and
checks every declared size against the archive's real member sizes; only
then does it build the model and read the arrays. A hostile file cannot make
the loader allocate much more than the file holds. Every member is read
exactly once: a member stored twice (zip readers disagree on which counts),
one the header does not declare, or encryption flags are refused. Whatever
is wrong with the content is one ModelFileError naming the file; what is
wrong with the path (not a path, a missing folder, a folder, no permission)
is a TypeError, ValueError or OSError naming the argument, raised before
anything is written.
"""
from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from typing import Any, BinaryIO, Dict, Optional, Tuple

import numpy as np

from .._validate import file_path, writable_file_path
from ..nn.locking import holds_model_lock
from ..nn.module import Module
from .atomic import atomic_write
from .codec import _decode, _difference, _encode, _member, _param_problem, _read
from .config import build_module, module_config, planned_params
from .errors import ModelFileError


FORMAT = "rnnpy-model"


VERSION = 1


HEADER = "__rnnpy__"


MAX_HEADER_BYTES = 64 * 2 ** 20  # the JSON header; large data belongs in arrays








# -- save and load ---------------------------------------------------------------
@holds_model_lock
def save(model: Module, path: str, extra: Optional[Dict[str, Any]] = None, *,
         verify: bool = True) -> None:
    """Writes model (and optional extra data) to path atomically.

    extra: a dict of None, bool, int, float (NaN and Inf too), str, bytes,
    NumPy arrays and scalars (any dtype without Python objects, any shape and
    memory order), lists, tuples and str-keyed dicts of them, nested freely
    (e.g. {"optimizer": opt.state_dict(), "epoch": 3}); load_with_extra gives
    it back exactly, types included. Anything else raises TypeError or
    ValueError naming its key path, e.g. ``extra['opt']['m'][2]``.
    Parameters holding NaN or Inf raise ValueError naming the parameter (load
    refuses them, so such a file would be lost work).
    verify: load the written file back and compare it with the model and extra
        before it replaces path (ValueError naming what differs).
    """
    path = writable_file_path(path)
    config = module_config(model)
    planned = planned_params(config, "model")
    arrays: Dict[str, np.ndarray] = {}
    params = {}
    for name, value in model.params.items():
        problem = _param_problem(value)
        if problem:
            raise ValueError(f"model: parameter {name!r} {problem}; load() refuses such a file, "
                             "so it is not written")
        arrays[f"param/{name}"] = np.array(value, order="C", copy=True)   # a consistent snapshot
        params[name] = {"shape": list(value.shape), "dtype": value.dtype.name}
    if planned != sum(a.size for a in arrays.values()):
        raise ValueError(f"model: {type(model).__name__} has {model.num_params} parameters but its "
                         f"configuration plans {planned}; it cannot be saved and loaded back")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "model": config,
        "params": params,
        "extra": _encode(extra, arrays, "extra", 0) if extra is not None else None,
        "rng": model.rng_state(),
    }
    raw = json.dumps(header).encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"extra: its JSON part takes {len(raw)} bytes, over the limit of "
                         f"{MAX_HEADER_BYTES}; store large data as NumPy arrays")
    arrays[HEADER] = np.frombuffer(raw, dtype=np.uint8)

    def check(tmp: str) -> None:
        try:
            loaded, back = load_with_extra(tmp)
        except ModelFileError as exc:
            raise ValueError(f"save: the file written for {path!r} does not load back ({exc})") from None
        diff = None
        if module_config(loaded) != config:
            diff = "the model's configuration"
        for name in params:
            if diff is None and not np.array_equal(loaded.params[name], arrays[f"param/{name}"]):
                diff = f"parameter {name!r}"
        if diff is None and loaded.rng_state() != header["rng"]:
            diff = "the random generators' states"
        if diff is None:
            diff = _difference(extra, back, "extra")
        if diff:
            raise ValueError(f"save: {diff} would not load back exactly from {path!r}; not written")

    atomic_write(path, lambda f: np.savez(f, **arrays), verify=check if verify else None)


def _declared_params(declared: Any, path: str) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
    if not isinstance(declared, dict):
        raise ModelFileError(f"path: {path!r} lists parameters that do not match its model")
    out = {}
    for name, d in declared.items():
        shape = d.get("shape") if isinstance(d, dict) else None
        dt = d.get("dtype") if isinstance(d, dict) else None
        if not isinstance(shape, list) or len(shape) > 8 or dt not in ("float32", "float64") or \
                not all(type(s) is int and s >= 0 for s in shape):
            raise ModelFileError(f"path: {path!r}: parameter {name!r:.100} is declared as "
                                 f"{d!r:.200}; expected a shape and float32 or float64")
        out[name] = (tuple(shape), np.dtype(dt))
    return out


def _open_for_reading(path: Any, name: str) -> Tuple[str, BinaryIO]:
    """(path as a str, its file opened for reading). Errors of the path itself
    name the argument: TypeError/ValueError for what is not a path,
    FileNotFoundError (naming the missing folder when there is one),
    IsADirectoryError, PermissionError; ModelFileError for what is not a
    regular file (a fifo or a device is never read, so never waited on)."""
    p = file_path(path, name)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        folder = os.path.dirname(os.path.abspath(p))
        where = "" if os.path.isdir(folder) else f" (the folder {folder!r} does not exist)"
        raise FileNotFoundError(f"{name}: no model file at {p!r}{where}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{name}: expected a model file, got the folder "
                                f"{p!r}") from None
    except PermissionError:
        raise PermissionError(f"{name}: no permission to read {p!r}") from None
    except NotADirectoryError:
        raise NotADirectoryError(f"{name}: {p!r} goes through a file as if it "
                                 "were a folder") from None
    except OSError as exc:
        raise type(exc)(f"{name}: cannot open {p!r} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{name}: expected a model file, got the folder "
                                    f"{p!r}")
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{name}: {p!r} is not a regular file (a fifo, socket or device); "
                                 "not an rnnpy model file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return p, os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def load_with_extra(path: str) -> Tuple[Module, Any]:
    """(model, extra) from a file written by save().

    Errors of the path itself (not a path, no such file or folder, a folder,
    no permission) raise TypeError, ValueError or the matching OSError naming
    ``path``; anything wrong with the file's content raises ModelFileError
    naming the file."""
    return _load_with_extra(path, "path")


def _load_with_extra(path: Any, name: str) -> Tuple[Module, Any]:
    path, f = _open_for_reading(path, name)
    with f:
        try:
            return _load_open(path, f)
        except ModelFileError as exc:
            if repr(path) in str(exc):
                raise
            # the configuration's checks name the module, not the file
            raise ModelFileError(f"path: {path!r}: {exc}") from exc.__cause__
        except MemoryError:
            raise
        except Exception as exc:
            # whatever the zip, .npy and JSON readers raise on a damaged file
            # (NotImplementedError for a bogus zip version, RuntimeError for an
            # encryption flag, struct or seek errors, ...) is one ModelFileError
            raise ModelFileError(f"path: {path!r} is truncated or corrupted "
                                 f"({type(exc).__name__}: {exc})") from exc


def _load_open(path: str, f: BinaryIO) -> Tuple[Module, Any]:
    size = os.fstat(f.fileno()).st_size
    try:
        archive = np.load(f, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"path: {path!r} is not a readable rnnpy model file ({exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy file
        raise ModelFileError(f"path: {path!r} has no rnnpy header; not an rnnpy model file")
    with archive:
        try:
            if not hasattr(archive, "files") or HEADER not in archive.files:
                raise ModelFileError(f"path: {path!r} has no rnnpy header; not an rnnpy model file")
            names = [info.filename for info in archive.zip.infolist()]
            if len(set(names)) != len(names):   # zipfile would silently take the last one
                dup = next(n for i, n in enumerate(names) if n in names[:i])
                raise ModelFileError(f"path: {path!r} holds the member {dup!r} more than once; "
                                     "zip readers disagree on which one counts; corrupted or hostile")
            archive._rnnpy_budget = [size]
            archive._rnnpy_used = set()
            if _member(archive, HEADER, path, "the header").file_size > MAX_HEADER_BYTES + 256:
                raise ModelFileError(f"path: {path!r} has a header over {MAX_HEADER_BYTES} bytes; "
                                     "refused")
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
            # sizes first, from the configuration and the archive's directory: nothing
            # is allocated until the declared parameters are bytes the file holds
            planned = planned_params(header.get("model"), "model")
            declared = _declared_params(header.get("params"), path)
            n_declared = sum(math.prod(s) for s, _ in declared.values())
            if n_declared != planned:
                raise ModelFileError(f"path: {path!r} declares {n_declared} parameter values but "
                                     f"its model's configuration has {planned}")
            stored = 0
            for name, (shape, dt) in declared.items():
                info = _member(archive, f"param/{name}", path, repr(name))
                if info.file_size < math.prod(shape) * dt.itemsize:
                    raise ModelFileError(f"path: {path!r}: {name!r} declares {dt.name} {shape} but "
                                         f"stores {info.file_size} bytes; truncated or corrupted")
                stored += info.file_size
            if stored > size:
                raise ModelFileError(f"path: {path!r}: its parameters declare {stored} bytes, more "
                                     "than the file holds; corrupted or hostile")
            model = build_module(header.get("model"), "model")
            if set(declared) != set(model.params):
                raise ModelFileError(f"path: {path!r} lists parameters that do not match its model")
            state = {}
            for name, dst in model.params.items():
                arr = _read(archive, f"param/{name}", path, dst.shape, dst.dtype, name)
                problem = _param_problem(arr)
                if problem:
                    raise ModelFileError(f"path: {path!r}: {name!r} {problem}")
                state[name] = arr
            model.load_state_dict(state)
            rng = header.get("rng")
            if rng is not None:  # files without it restart dropout from the seeds
                try:
                    model.set_rng_state(rng)
                except (TypeError, ValueError) as exc:
                    raise ModelFileError(f"path: {path!r} has bad random generator states ({exc})") from None
            extra = _decode(header.get("extra"), archive, path, "extra", 0)
            unused = sorted(set(names) - {k + ".npy" for k in archive._rnnpy_used})
            if unused:
                raise ModelFileError(f"path: {path!r} holds members its header does not declare: "
                                     f"{unused[:5]!r:.300}; corrupted or hostile")
        except ModelFileError:
            raise
        except RecursionError as exc:
            raise ModelFileError(f"path: {path!r} nests its data too deeply ({exc})") from None
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError, zlib.error) as exc:
            raise ModelFileError(f"path: {path!r} is truncated or corrupted ({exc})") from exc
    return model, extra


def load(path: str) -> Module:
    """The model saved at path (see save)."""
    return load_with_extra(path)[0]
