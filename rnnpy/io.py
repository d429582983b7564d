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
import tempfile
import zipfile
import zlib
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Tuple

import numpy as np

from ._validate import file_path, writable_file_path
from .cells import family
from .layers import GRU, LSTM, RNN
from .module import Module, holds_model_lock
from .nn import Dense, Dropout, Embedding, LastStep, Sequential

try:  # POSIX: temporaries are locked while written, so dead writers' files can be told apart
    import fcntl
except ImportError:  # pragma: no cover - Windows: no clean-up of dead writers' temporaries
    fcntl = None  # type: ignore[assignment]

FORMAT = "rnnpy-model"
VERSION = 1
HEADER = "__rnnpy__"

MODULES = {cls.__name__: cls for cls in (RNN, LSTM, GRU, Dense, Embedding, LastStep, Dropout, Sequential)}

MAX_DEPTH = 64                  # nesting of extra data and of Sequential configs
MAX_MODULES = 4096              # modules in one saved model
MAX_HEADER_BYTES = 64 * 2 ** 20  # the JSON header; large data belongs in arrays

# tags of the extra data's JSON form: a dict with exactly one of these keys
_TAGS = ("__array__", "__scalar__", "__bytes__", "__tuple__", "__dict__")
_REFUSED_FLAGS = 0x1 | 0x20 | 0x40   # zip: encrypted, patched data, strong encryption
_RANDOM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")  # tempfile's names


class ModelFileError(ValueError):
    """A model file that is missing, truncated, corrupted or not rnnpy's."""


# -- module trees <-> JSON ---------------------------------------------------------
def module_config(module: Module) -> Dict[str, Any]:
    """{"class": name, "config": constructor arguments} for a module tree."""
    name = type(module).__name__
    if name not in MODULES:
        raise TypeError(f"model: cannot save a {name}; savable modules are {sorted(MODULES)}")
    return {"class": name, "config": module.get_config()}


def _checked_spec(spec: Any, where: str) -> Tuple[type, Dict[str, Any]]:
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
            or not isinstance(spec.get("config"), dict):
        raise ModelFileError(f"{where}: expected {{'class': str, 'config': dict}}, got {spec!r:.200}")
    cls = MODULES.get(spec["class"])
    if cls is None:
        raise ModelFileError(f"{where}: unknown module class {spec['class']!r:.100}")
    return cls, spec["config"]


def _size(config: Dict[str, Any], key: str, default: Any, where: str, cls: str,
          lo: int = 1) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ModelFileError(f"{where}: cannot build {cls}: {key}: expected an integer >= {lo}, "
                             f"got {value!r:.100}")
    return value


def planned_params(spec: Any, where: str = "model", depth: int = 0,
                   count: Optional[List[int]] = None) -> int:
    """Number of parameters of the module a module_config() describes, computed
    from the configuration alone (nothing is allocated), so that a file's
    declared sizes can be checked before its model is built. ModelFileError
    for unknown classes, bad sizes, nesting deeper than MAX_DEPTH or more than
    MAX_MODULES modules."""
    if count is None:
        count = [0]
    count[0] += 1
    if count[0] > MAX_MODULES:
        raise ModelFileError(f"{where.split('.')[0]}: more than {MAX_MODULES} modules in one model")
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where.split('.')[0]}: modules nested deeper than {MAX_DEPTH} levels")
    cls, config = _checked_spec(spec, where)
    name = cls.__name__
    if cls is Sequential:
        children = config.get("modules")
        if not isinstance(children, list) or not children:
            raise ModelFileError(f"{where}: a Sequential needs a non-empty list of modules")
        return sum(planned_params(c, f"{where}.modules[{i}]", depth + 1, count)
                   for i, c in enumerate(children))
    if cls is Dense:
        i, o = (_size(config, k, None, where, name) for k in ("in_features", "out_features"))
        return o * i + (o if config.get("bias", True) else 0)
    if cls is Embedding:
        return _size(config, "num_embeddings", None, where, name) * \
            _size(config, "embedding_dim", None, where, name)
    if cls in (LastStep, Dropout):
        return 0
    # recurrent layers, PyTorch's layout per layer and direction: w_ih, w_hh,
    # b_ih, b_hh, then peepholes (3, H), projection (P, H), layer-norm gains
    fam = family(cls)
    gates = fam.gates
    I = _size(config, "input_size", None, where, name)
    H = _size(config, "hidden_size", None, where, name)
    L = _size(config, "num_layers", 1, where, name)
    D = 2 if config.get("bidirectional", False) is True else 1
    P = _size(config, "proj_size", 0, where, name, lo=0) if "proj_size" in fam.options else 0
    Hs = P or H
    ln = config.get("layer_norm", False) is True
    G = gates * H
    total = 0
    for layer in range(min(L, 2)):   # layers above the first are all alike
        n_in = I if layer == 0 else D * Hs
        cell = G * n_in + G * Hs + 2 * G + P * H
        if "peephole" in fam.options:
            cell += 3 * H if config.get("peephole", False) is True else 0
        if fam.has_cell_state:   # the cell state's layer norm: gain and bias (H,) each
            cell += 2 * H if ln else 0
        cell += 2 * G if ln else 0
        total += D * cell * (1 if layer == 0 else L - 1)
    return total


def build_module(spec: Any, where: str = "config", depth: int = 0) -> Module:
    """The module a module_config() describes (with fresh parameters)."""
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{where.split('.')[0]}: modules nested deeper than {MAX_DEPTH} levels")
    cls, config = _checked_spec(spec, where)
    config = dict(config)
    try:
        if cls is Sequential:
            children = config.get("modules")
            if not isinstance(children, list):
                raise ModelFileError(f"{where}: a Sequential needs a list of modules")
            return Sequential(*[build_module(c, f"{where}.modules[{i}]", depth + 1)
                                for i, c in enumerate(children)])
        return cls(**config)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{where}: cannot build {spec['class']}: {exc}") from exc


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


def _temp_prefix(path: str) -> Tuple[str, str]:
    """(folder, prefix) of the temporaries written for path: the name ties them to it."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise IsADirectoryError(f"path: expected a file path, got the folder {path!r}")
    base = base.encode("utf-8", "surrogateescape")[:160].decode("utf-8", "ignore")
    return folder, f".rnnpy-{base}."


def remove_dead_temporaries(path: str, suffix: str = ".tmp") -> List[str]:
    """Removes the temporaries that writers of path left when they died
    (killed mid-save): those named for path whose lock can be taken. A live
    writer holds its lock, so its file is never touched. Returns the removed
    paths. A no-op where fcntl is unavailable."""
    if fcntl is None:
        return []
    folder, prefix = _temp_prefix(os.fspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        middle = name[len(prefix):len(name) - len(suffix)]
        if not middle or not set(middle) <= _RANDOM_CHARS:
            continue   # another target's temporary, or not ours at all
        full = os.path.join(folder, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue   # its writer is alive
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and os.path.samestat(os.lstat(full), st):
                os.unlink(full)
                removed.append(full)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _locked_temporary(folder: str, prefix: str, suffix: str) -> Tuple[int, str]:
    """A new temporary file, exclusively locked, still under its name."""
    for _ in range(100):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.path.samestat(os.stat(tmp), os.fstat(fd)):
                return fd, tmp
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)   # a clean-up took it between its creation and our lock: take another
    raise OSError(f"path: could not create a temporary file in {folder!r}")


def atomic_write(path: str, write: Callable[[BinaryIO], Any], suffix: str = ".tmp",
                 verify: Optional[Callable[[str], None]] = None) -> None:
    """Calls write(f) on a temporary file beside path, flushes it to disk and
    renames it over path, so path holds either its old content or all of the
    new one, never part of it.

    The temporary is named after path and locked while written; temporaries
    of path left by dead writers are removed first (remove_dead_temporaries).
    verify(tmp), when given, runs on the complete temporary before the
    rename; if it raises, path is left as it was. The temporary is removed if
    anything fails."""
    path = writable_file_path(path)
    folder, prefix = _temp_prefix(path)
    remove_dead_temporaries(path, suffix)
    try:
        fd, tmp = _locked_temporary(folder, prefix, suffix)
    except PermissionError as exc:
        raise PermissionError(f"path: no permission to write in the folder {folder!r}; "
                              f"{path!r} was not written") from None
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb", closefd=False) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)   # releases the lock
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


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
