"""The contract every rnnpy model piece follows.

A module has an explicit ``forward`` and ``backward`` (backward differentiates
the most recent forward and ADDS parameter gradients into ``grads``), and its
parameters live in one flat vector: ``params`` and ``grads`` map names to views
of ``flat_params`` and ``flat_grads``. A container (``Sequential``) re-binds its
children to views of one buffer for the whole model, so optimizers, clipping and
gradient checks walk one array. That buffer is the only truth: a module belongs
to at most one live container, assigning to ``params``/``grads``/``flat_params``/
``flat_grads`` copies into it, and a module's parameter names cannot be removed.

backward differentiates the parameters its forward used: every write through
rnnpy (an optimizer step, load_state_dict, assigning params / flat_params,
reset_parameters) gives the model's parameters a new version, and a backward
after such a write is refused (RuntimeError: call forward again). Writes made
directly into the NumPy views (``flat_params[...] = v``, ``params[k] += d``)
cannot be seen: make them between a backward and the next forward.

Recurrent modules return ``(out, state)`` from forward and ``(dx, dstate)`` from
backward; the others return one array. ``get_config`` gives the constructor
arguments, which is how models are saved without pickle.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ._validate import as_float_array, check_finite, check_shape

Shape = Tuple[int, ...]

# NumPy bit generators whose state a saved model may restore
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _plain(obj: Any) -> Any:
    """A generator state with its arrays (MT19937's key, Philox's counter) as lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def _non_owning(buf: np.ndarray) -> np.ndarray:
    """buf itself when it is a view, else a view of all of it (same memory)."""
    return buf[...] if buf.flags.owndata else buf


class ModelLock:
    """The lock of one model tree (a module and every module inside it: a
    container shares its lock with its children, whose parameters are views of
    its buffer).

    The rule: forward and backward run one at a time; a thread calling them
    while another thread is inside a forward or backward of the same model
    gets a RuntimeError ("... in use by another thread ..."). Every other call
    that reads or writes parameters, gradients, random state or an optimizer's
    state (zero_grad, state_dict, load_state_dict, save, optimizer steps,
    clipping, gradcheck, a fit step from forward to optimizer step, predict,
    evaluate) holds the lock for its whole duration and waits for the call in
    progress, so it sees and leaves a state that exists between two calls.

    Whatever exception ends a call (a KeyboardInterrupt included) releases the
    lock: it is taken only where CPython cannot deliver an asynchronous
    exception between taking it and the try that releases it.
    """

    __slots__ = ("mutex", "computing", "version", "__weakref__")

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.computing = 0   # ident of the thread inside forward/backward, 0 if none
        # the parameters' version: a new number at every write through rnnpy
        # (unique across models, so a module that changed model differs too)
        self.version = next(_VERSIONS)
        _LOCKS.add(self)

    def _after_fork(self) -> None:
        # a thread of the parent that held the lock does not exist in the child:
        # its hold is void, so the child starts with a free lock
        self.mutex = threading.RLock()
        self.computing = 0


_LOCKS: "weakref.WeakSet[ModelLock]" = weakref.WeakSet()
_VERSIONS = itertools.count(1)


def bump_version(obj: Any) -> None:
    """Marks obj's model parameters as changed (called by every write through
    rnnpy: optimizer steps, load_state_dict, params/flat_params assignment,
    reset_parameters), so that a backward of a forward made before the write
    is refused. Writes straight into the NumPy views (``flat_params[...] = v``,
    ``params[name] += d``) cannot be seen."""
    lock = model_lock(obj)
    if lock is not None:
        lock.version = next(_VERSIONS)


def _reset_locks_in_child() -> None:
    for lock in list(_LOCKS):
        lock._after_fork()


if hasattr(os, "register_at_fork"):   # POSIX
    os.register_at_fork(after_in_child=_reset_locks_in_child)


def model_lock(obj: Any) -> Optional[ModelLock]:
    """The ModelLock of an rnnpy module (of its whole model tree), else None."""
    d = getattr(obj, "__dict__", None)
    lock = d.get("_call_lock") if isinstance(d, dict) else None
    return lock if isinstance(lock, ModelLock) else None


def run_locked(obj: Any, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) holding obj's model lock (waiting for the call in
    progress in another thread); fn alone when obj has no lock."""
    lock = model_lock(obj)
    if lock is None:
        return fn(*args, **kwargs)
    # RLock.__enter__/__exit__ are C: nothing can be raised between the acquire
    # and the with-block that releases it
    with lock.mutex:
        return fn(*args, **kwargs)


def holds_model_lock(fn: Callable) -> Callable:
    """Decorates fn(model, ...) to run holding model's lock (see ModelLock);
    the model is fn's first argument, given by position or by name."""
    first = next(iter(inspect.signature(fn).parameters))

    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        lock = model_lock(args[0] if args else kwargs.get(first))
        if lock is None:
            return fn(*args, **kwargs)
        with lock.mutex:
            return fn(*args, **kwargs)

    return locked


def _exclusive(method: Callable, name: str) -> Callable:
    """Wraps forward/backward (see ModelLock): refused while another thread is
    inside a forward or backward of the model, waits for any other call.
    The owning thread may re-enter (a container calling its children, a
    subclass calling super().forward). A forward interrupted or failing other
    than on a bad argument leaves nothing for backward to differentiate; a
    backward that fails leaves the gradients as they were."""

    @functools.wraps(method)
    def guarded(self: "Module", *args: Any, **kwargs: Any) -> Any:
        lock = self.__dict__.get("_call_lock")
        if not isinstance(lock, ModelLock):   # a subclass that skipped Module.__init__
            return method(self, *args, **kwargs)
        me = threading.get_ident()
        mutex = lock.mutex
        held = mutex._is_owned()        # this thread is already inside a call of the model
        outer = lock.computing != me    # the outermost forward/backward of this thread
        saved = None
        # From here to the finally, an asynchronous exception (KeyboardInterrupt)
        # can only come out of a call; every acquire is inside the try, and the
        # finally releases only what this thread holds (release() of a lock
        # this thread does not hold raises RuntimeError, which is swallowed).
        try:
            if not held and not mutex.acquire(blocking=False):
                if lock.computing:
                    raise RuntimeError(
                        f"{type(self).__name__}.{name}: the module is in use by another thread; "
                        "a model runs one forward or backward at a time (use one model per "
                        "thread)")
                mutex.acquire()          # a short read or write of another thread: wait
            lock.computing = me
            if name == "backward":
                seen = self.__dict__.get("_forward_version")
                if seen is not None and seen != lock.version:
                    raise RuntimeError(
                        f"{type(self).__name__}.backward: the parameters changed since "
                        "forward (an optimizer step, load_state_dict, a params or "
                        "flat_params assignment or reset_parameters in between), so the "
                        "gradients would mix the old and the new weights; call forward "
                        "again before backward")
                if outer:
                    saved = self.flat_grads.copy()
            result = method(self, *args, **kwargs)
            if name == "forward":
                # what backward checks: the parameters it differentiates are forward's
                self.__dict__["_forward_version"] = lock.version
            return result
        except BaseException as exc:
            if lock.computing == me and outer:
                if saved is not None:
                    self.flat_grads[...] = saved
                elif name == "forward" and not isinstance(exc, (TypeError, ValueError)):
                    # interrupted or failed inside: some caches may be this call's
                    # (a bad argument is refused before anything changes)
                    self._forget_forward()
            raise
        finally:
            if outer and lock.computing == me:
                lock.computing = 0
            if not held:
                try:
                    mutex.release()
                except RuntimeError:     # never acquired: refused, or interrupted while waiting
                    pass

    guarded._exclusive = True  # type: ignore[attr-defined]
    return guarded


def _serialized(method: Callable) -> Callable:
    """Wraps a method that reads or writes parameters, gradients or random
    state: it runs holding the model's lock, after the call in progress. The
    methods that write parameters (_WRITERS) give them a new version, also
    when interrupted (a refused argument changes nothing and keeps it)."""
    writes = method.__name__ in _WRITERS

    @functools.wraps(method)
    def guarded(self: "Module", *args: Any, **kwargs: Any) -> Any:
        lock = self.__dict__.get("_call_lock")
        if not isinstance(lock, ModelLock):
            return method(self, *args, **kwargs)
        with lock.mutex:
            if not writes:
                return method(self, *args, **kwargs)
            try:
                result = method(self, *args, **kwargs)
            except (TypeError, ValueError, KeyError):
                raise
            except BaseException:
                lock.version = next(_VERSIONS)
                raise
            lock.version = next(_VERSIONS)
            return result

    guarded._exclusive = True  # type: ignore[attr-defined]
    return guarded


# methods run under the model's lock, wherever a subclass defines them
_EXCLUSIVE = ("forward", "backward")
_SERIALIZED = ("zero_grad", "state_dict", "load_state_dict", "rng_state", "set_rng_state",
               "train", "bind", "reset_parameters")
# of those, the methods that write parameter values
_WRITERS = ("load_state_dict", "reset_parameters")


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

    def __init__(self, owner: Optional["Module"] = None) -> None:
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


class _ModuleType(type):
    """Seals each module once its constructor (the whole chain of __init__s)
    has returned: from then on its configuration and parameter names cannot be
    rebound as attributes (see Module.__setattr__)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        if isinstance(obj, Module):
            obj._seal()
        return obj


class Module(metaclass=_ModuleType):
    """Base class: flat parameter storage, modes, gradients and state dicts.

    Attributes: after construction, the configuration (the keys of get_config
    and the attributes holding them, such as Dense's ``use_bias``) and the
    parameter names are fixed: assigning ``layer.hidden_size = 5`` or
    ``lstm.weight_hh_l0 = w`` raises AttributeError (the buffer and kernels are
    laid out for the configuration; parameter values are changed through
    ``params[name] = value``). ``training`` and ``threads`` stay settable.

    Threads: different models may run in different threads at once (the C
    kernels release the GIL); within one model tree the rule of ModelLock
    applies: a second thread's forward or backward is refused while one runs,
    and every other call that touches parameters, gradients or random state
    waits for the call in progress.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _EXCLUSIVE + _SERIALIZED:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_exclusive", False):
                setattr(cls, name, _exclusive(fn, name) if name in _EXCLUSIVE else _serialized(fn))

    # public attributes a user may set after construction
    _settable: Tuple[str, ...] = ("training", "threads")
    # attributes derived from the configuration, fixed with it
    _fixed: Tuple[str, ...] = ("num_directions", "dtype")

    def _seal(self) -> None:
        """Records the names assignment refuses from now on (called once the
        constructor returned): {name: "config" | "param" | "both"}."""
        try:
            config = self.get_config()
        except NotImplementedError:   # a module without a configuration
            config = {}
        sealed: Dict[str, str] = {}
        d = self.__dict__
        # every key (also one stored under another name, which would otherwise
        # become a new attribute that nothing reads), the attribute holding it,
        # and what is derived from the configuration
        for key in list(config) + [k for k in self._fixed if k in d]:
            prop = getattr(type(self), key, None)
            if isinstance(prop, property) and prop.fset is not None:
                continue   # a property with a setter says itself what assignment does
            sealed[key] = "config"
            if "use_" + key in d:
                sealed["use_" + key] = "config"
        params = d.get("_params")
        for name in (params if isinstance(params, dict) else ()):
            if isinstance(name, str) and name.isidentifier():
                sealed[name] = "both" if name in sealed else "param"
        for name in self._settable:
            sealed.pop(name, None)
        d["_sealed"] = sealed

    def _refused_attribute(self, name: str, action: str) -> AttributeError:
        cls = type(self).__name__
        kind = self.__dict__.get("_sealed", {}).get(name)
        param = (f"{name!r} is a parameter, a view of the module's one buffer: to change "
                 f"its values assign {cls}.params[{name!r}] = value (or use load_state_dict)")
        config = (f"{name!r} is configuration, fixed at construction since the parameters "
                  f"and kernels are laid out for it: build a new {cls} with the value you "
                  "want (and copy the weights that fit with load_state_dict)")
        why = param if kind == "param" else config if kind == "config" else \
            f"{param}; as {config}"
        return AttributeError(f"{cls}.{name}: cannot be {action}: {why}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__.get("_sealed", ()):
            raise self._refused_attribute(name, "assigned")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_sealed", ()):
            raise self._refused_attribute(name, "deleted")
        object.__delattr__(self, name)

    def __getattr__(self, name: str) -> Any:
        # only for names not found otherwise: a parameter name gets a pointer to params
        params = self.__dict__.get("_params")
        if isinstance(params, dict) and name in params:
            raise AttributeError(f"{type(self).__name__}.{name}: parameters are not "
                                 f"attributes; read {type(self).__name__}.params[{name!r}] "
                                 "(a live view of the module's buffer)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    is_recurrent = False     # forward returns (out, state); backward takes dstate
    accepts_lengths = False  # forward takes lengths=
    dtype: np.dtype

    def __init__(self) -> None:
        self._call_lock = ModelLock()   # shared with a container that takes this module in
        self.training = True
        self._params: LiveArrays = LiveArrays(self)
        self._grads: LiveArrays = LiveArrays(self)
        self._flat_params = np.zeros(0)
        self._flat_grads = np.zeros(0)
        self._owner: Optional[Callable[[], Optional["Module"]]] = None  # weakref to the container

    # -- the one parameter buffer -------------------------------------------------
    # flat_params/flat_grads and params/grads are fixed by bind(): assigning to
    # them copies values into the existing buffer (after checks), so forward,
    # optimizers, save() and the containing model keep seeing one truth.
    @property
    def flat_params(self) -> np.ndarray:
        """(num_params,) every parameter, in param_spec order; params are views of it."""
        return self._flat_params

    @flat_params.setter
    def flat_params(self, value: Any) -> None:
        self._copy_flat(self.__dict__.get("_flat_params"), value, "flat_params")

    @property
    def flat_grads(self) -> np.ndarray:
        """(num_params,) every gradient, laid out as flat_params."""
        return self._flat_grads

    @flat_grads.setter
    def flat_grads(self, value: Any) -> None:
        self._copy_flat(self.__dict__.get("_flat_grads"), value, "flat_grads")

    @property
    def params(self) -> Dict[str, np.ndarray]:
        """name -> view of flat_params (live: writing into it changes the model)."""
        return self._params

    @params.setter
    def params(self, value: Any) -> None:
        self._copy_named(self.__dict__.get("_params"), value, "params")

    @property
    def grads(self) -> Dict[str, np.ndarray]:
        """name -> view of flat_grads."""
        return self._grads

    @grads.setter
    def grads(self, value: Any) -> None:
        self._copy_named(self.__dict__.get("_grads"), value, "grads")

    def _copy_flat(self, dst: Optional[np.ndarray], value: Any, name: str) -> None:
        if dst is None:   # a subclass that skipped Module.__init__: nothing to detach yet
            self.__dict__["_" + name] = value
            return
        src = as_float_array(value, name, dst.dtype)
        check_shape(src, name, dst.shape, "(num_params,)")
        if name == "flat_params":   # as load_state_dict: parameters are finite
            check_finite(src, name)
        run_locked(self, self._write_flat, dst, src, name == "flat_params")

    def _write_flat(self, dst: np.ndarray, src: np.ndarray, params: bool) -> None:
        try:
            np.copyto(dst, src)
        finally:
            if params:
                bump_version(self)

    def _copy_named(self, dst: Optional[LiveArrays], value: Any, name: str) -> None:
        if dst is None:   # a subclass that skipped Module.__init__: nothing to detach yet
            self.__dict__["_" + name] = value
            return
        if value is dst:   # e.g. after `module.params |= {...}`
            return
        if not hasattr(value, "items"):
            raise TypeError(f"{name}: expected a dict of name -> array (copied into the "
                            f"module's buffer), got {type(value).__name__}")
        try:
            dst._assign(value, exact=True)
        except KeyError as exc:
            raise KeyError(f"{name}: {exc.args[0]}") from None

    def _container(self) -> Optional["Module"]:
        """The live container whose buffer holds this module's parameters, if any."""
        return self._owner() if self.__dict__.get("_owner") is not None else None

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
        self._bind(np.zeros(n, dtype=self.dtype), np.zeros(n, dtype=self.dtype), copy=False)

    def bind(self, flat_params: np.ndarray, flat_grads: np.ndarray, copy: bool = True) -> None:
        """Moves the parameters into the given flat vectors (views of a larger
        buffer, typically), copying the current values when ``copy``.

        Refused (RuntimeError) for a module that belongs to a container: its
        parameters live in the container's buffer, and moving them would leave
        the container, its optimizers and save() on an orphaned copy."""
        owner = self._container()
        if owner is not None:
            raise RuntimeError(f"{type(self).__name__}.bind: the module belongs to a "
                               f"{type(owner).__name__} whose buffer holds its parameters; "
                               "re-binding it would detach them from that model")
        if not copy and isinstance(flat_params, np.ndarray) and flat_params.dtype.kind == "f":
            check_finite(flat_params, "flat_params")   # its values become the parameters
        self._bind(flat_params, flat_grads, copy)
        bump_version(self)

    def _adopt(self, owner: "Module", where: str, flat_params: np.ndarray,
               flat_grads: np.ndarray) -> None:
        """Binds this module into a slice of owner's buffer, keeping its values.
        A module belongs to at most one live container."""
        current = self._container()
        if current is not None and current is not owner:
            raise ValueError(f"{where} ({type(self).__name__}): already belongs to another "
                             f"{type(current).__name__}, whose buffer holds its parameters; a "
                             "module can be part of one model (build a second module and copy "
                             "the weights: new.load_state_dict(old.state_dict()))")
        self._owner = weakref.ref(owner)
        self._bind(flat_params, flat_grads, True)

    def _checked_buffers(self, flat_params: np.ndarray,
                         flat_grads: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The two (num_params,) vectors a bind moves into, checked, as views
        that do not own their memory, so that resize() of the exposed vector
        (which would leave every parameter view on freed memory) is refused."""
        n = self.num_params
        for name, buf in (("flat_params", flat_params), ("flat_grads", flat_grads)):
            if buf.shape != (n,) or buf.dtype != self.dtype or not buf.flags.c_contiguous:
                raise ValueError(f"{name}: expected a contiguous {self.dtype.name} vector of "
                                 f"{n} values, got {buf.dtype.name} of shape {buf.shape}")
        return _non_owning(flat_params), _non_owning(flat_grads)

    def _bind(self, flat_params: np.ndarray, flat_grads: np.ndarray, copy: bool) -> None:
        n = self.num_params
        flat_params, flat_grads = self._checked_buffers(flat_params, flat_grads)
        if copy and self.flat_params.size == n:
            flat_params[...] = self.flat_params
            flat_grads[...] = self.flat_grads
        self._flat_params, self._flat_grads = flat_params, flat_grads
        self._params, self._grads = LiveArrays(self), LiveArrays(self)
        offset = 0
        for name, shape in self.param_spec():
            size = int(np.prod(shape))
            self._params._set_view(name, flat_params[offset:offset + size].reshape(shape))
            self._grads._set_view(name, flat_grads[offset:offset + size].reshape(shape))
            offset += size
        self._on_bind()

    def _on_bind(self) -> None:
        """Hook for modules whose kernels hold pointers into the buffers."""

    _forward_cache: Tuple[str, ...] = ()   # attributes forward keeps for backward

    def _forget_forward(self) -> None:
        """Drops what the latest forward kept, in this module and every module
        inside it (after a failed forward: backward then refuses to run)."""
        for attr in self._forward_cache:
            setattr(self, attr, None)
        for child in getattr(self, "modules", ()):
            child._forget_forward()

    def _share_lock(self, lock: ModelLock) -> None:
        """Makes this module and every module inside it use lock."""
        self._call_lock = lock
        for child in getattr(self, "modules", ()):
            child._share_lock(lock)

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
        before = self.flat_params.copy()
        try:
            for name, dst in self.params.items():
                dst[...] = checked[name]
        except BaseException:   # interrupted between two names: all or nothing
            self.flat_params[...] = before
            raise

    # -- random state (dropout masks) -------------------------------------------
    def rng_state(self) -> Dict[str, Any]:
        """{path: bit generator state} of every random generator in the module
        tree ("" is this module, "1" its child 1, "1.0" that child's child 0).
        JSON-able; saved with the model so that dropout resumes exactly."""
        states: Dict[str, Any] = {}
        rng = getattr(self, "_rng", None)
        if isinstance(rng, np.random.Generator):
            states[""] = _plain(rng.bit_generator.state)
        for i, child in enumerate(getattr(self, "modules", ())):
            for path, st in child.rng_state().items():
                states[f"{i}.{path}" if path else str(i)] = st
        return states

    def set_rng_state(self, states: Dict[str, Any]) -> None:
        """Restores what rng_state() gave: exactly this tree's paths, each a
        NumPy bit generator state. Nothing changes unless all are valid."""
        if not isinstance(states, dict):
            raise TypeError(f"states: expected a dict of path -> generator state, "
                            f"got {type(states).__name__}")
        owners = self._rng_owners("")
        if set(states) != set(owners):
            raise ValueError(f"states: expected generator states for {sorted(owners)}, "
                             f"got {sorted(states)}")
        fresh = {}
        for path, state in states.items():
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise ValueError(f"states[{path!r}]: expected the state of one of "
                                 f"{sorted(_BIT_GENERATORS)}, got {state!r:.200}")
            bitgen = getattr(np.random, name)()
            try:
                bitgen.state = state
            except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
                raise ValueError(f"states[{path!r}]: not a valid {name} state ({exc})") from None
            fresh[path] = np.random.Generator(bitgen)
        for path, rng in fresh.items():
            owners[path]._rng = rng

    def _rng_owners(self, prefix: str) -> Dict[str, "Module"]:
        owners: Dict[str, Module] = {}
        if isinstance(getattr(self, "_rng", None), np.random.Generator):
            owners[prefix] = self
        for i, child in enumerate(getattr(self, "modules", ())):
            owners.update(child._rng_owners(f"{prefix}.{i}" if prefix else str(i)))
        return owners

    def get_config(self) -> Dict[str, Any]:
        """The constructor's arguments (JSON-serialisable)."""
        raise NotImplementedError

    # -- conveniences over rnnpy.io and rnnpy.training --------------------------------
    def save(self, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
        """Writes the model to path atomically, without pickle (see rnnpy.io.save)."""
        from .io import save

        save(self, path, extra)

    def compile(self, optimizer: Any = "adam", loss: Any = None,
                metrics: Optional[Any] = None) -> "Module":
        """Keras's form: keeps the optimizer (a name such as "adam", "sgd",
        "rmsprop", or an rnnpy.optim optimizer), the loss and the metrics that
        fit and evaluate use when not given theirs. Returns self."""
        from .training import resolve_loss, resolve_optimizer

        if loss is None:
            raise TypeError("loss: expected a loss name or function")
        resolve_loss(loss)   # refuse a bad name now, not at fit
        self._compiled = {"optimizer": resolve_optimizer(self, optimizer), "loss": loss,
                          "metrics": metrics}
        return self

    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """rnnpy.fit(self, x, y, **kwargs): fit(x, y, epochs=, batch_size=,
        validation_data=, verbose=, callbacks=) after compile(), or
        fit((x, y[, lengths]) or batches, loss=, optimizer=, ...)."""
        from .training import fit

        if "train" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("train: given together with x (its other name); pass one")
            x = kwargs.pop("train")
        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Dict[str, float]:
        """rnnpy.evaluate(self, x, y, **kwargs)."""
        from .training import evaluate

        if "data" in kwargs:   # rnnpy's name for the data argument
            if x is not None:
                raise TypeError("data: given together with x (its other name); pass one")
            x = kwargs.pop("data")
        return evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> np.ndarray:
        """rnnpy.predict(self, x, **kwargs)."""
        from .training import predict

        return predict(self, x, **kwargs)

    def summary(self, input_shape: Optional[Any] = None, print_fn: Any = print) -> str:
        """Prints (with print_fn) and returns a table of the modules, their
        output shapes (given input_shape, one example's shape without the
        batch axis: (T, I), or (T,) for token ids) and parameter counts."""
        from .summary import summary

        text = summary(self, input_shape)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- copies ---------------------------------------------------------------
    def _rebuild(self) -> "Module":
        """A new module of the same class and configuration (fresh parameters)."""
        try:
            config = self.get_config()
        except NotImplementedError:
            raise TypeError(f"{type(self).__name__}: cannot be copied: it has no get_config, "
                            "which a copy is built from") from None
        return type(self)(**config)

    def _copy_tree(self) -> "Module":
        new = self._rebuild()
        pairs = [(self, new)]
        while pairs:   # every module of both trees, in the same order
            src, dst = pairs.pop()
            dst.__dict__["training"] = src.training
            if "_threads" in src.__dict__:
                dst.threads = src.threads
            pairs.extend(zip(getattr(src, "modules", ()), getattr(dst, "modules", ())))
        new.flat_params[...] = self.flat_params
        new.flat_grads[...] = self.flat_grads
        new.set_rng_state(self.rng_state())
        return new

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Module":
        """An independent model: a new module tree of the same configuration with
        the same parameters, gradients, random generator states and training
        modes, and its own buffer and lock (nothing of the original's forward is
        kept: call forward before backward)."""
        if id(self) in memo:
            return memo[id(self)]
        new = run_locked(self, self._copy_tree)
        pairs = [(self, new)]
        while pairs:   # a module inside this one, copied later in the same deepcopy, is this copy's
            src, dst = pairs.pop()
            memo[id(src)] = dst
            pairs.extend(zip(getattr(src, "modules", ()), getattr(dst, "modules", ())))
        return new

    def __copy__(self) -> "Module":
        """As deepcopy: a copy sharing the original's buffer and lock would be a
        second owner of its parameters."""
        return self.__deepcopy__({})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


for _name in _SERIALIZED:
    if _name in Module.__dict__:
        setattr(Module, _name, _serialized(Module.__dict__[_name]))
del _name
