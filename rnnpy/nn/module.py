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

import contextlib
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .._validate import array, as_float_array, check_finite, check_shape
from .live_arrays import LiveArrays
from .generators import generator_from_state, generator_state
from .locking import (_EXCLUSIVE, _SERIALIZED, ModelLock, _exclusive, _serialized, bump_version,
                      run_locked)


Shape = Tuple[int, ...]


def _non_owning(buf: np.ndarray) -> np.ndarray:
    """buf itself when it is a view, else a view of all of it (same memory)."""
    return buf[...] if buf.flags.owndata else buf


def _buffer_property(name: str, copy: str, doc: str) -> property:
    """A property over self._<name> whose assignment copies the value into the
    existing buffer through the method named copy (_copy_flat / _copy_named)."""

    def get(self: Any) -> Any:
        return getattr(self, "_" + name)

    def put(self: Any, value: Any) -> None:
        getattr(self, copy)(self.__dict__.get("_" + name), value, name)

    return property(get, put, doc=doc)


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
    ``params[name] = value``). ``training`` and ``threads`` stay settable, and so
    does configuration held by a property with a setter (a recurrent layer's
    ``compute_dtype``), which checks the value itself.

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
    flat_params = _buffer_property(
        "flat_params", "_copy_flat",
        "(num_params,) every parameter, in param_spec order; params are views of it.")
    flat_grads = _buffer_property(
        "flat_grads", "_copy_flat", "(num_params,) every gradient, laid out as flat_params.")
    params = _buffer_property(
        "params", "_copy_named",
        "name -> view of flat_params (live: writing into it changes the model).")
    grads = _buffer_property("grads", "_copy_named", "name -> view of flat_grads.")

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

    # -- random masks (dropout, zoneout, recurrent dropout) ---------------------
    # True while masks_held() is active: a training-mode forward reuses the
    # masks of the previous forward (when their shapes still fit)
    _masks_held = False

    @contextlib.contextmanager
    def masks_held(self) -> Iterator["Module"]:
        """Within the block, training-mode forwards of this module and of every
        module inside it reuse the random masks (dropout, zoneout, recurrent
        dropout) of the latest forward instead of drawing new ones, so that the
        model is one deterministic function, as a finite-difference check needs
        (rnnpy.gradcheck). A forward whose input shape differs draws new masks.
        Leaving the block restores what was held before. Yields self."""
        tree, stack = [], [self]
        while stack:
            m = stack.pop()
            tree.append(m)
            stack.extend(getattr(m, "modules", ()))
        before = [m.__dict__.get("_masks_held") for m in tree]
        try:
            for m in tree:
                m.__dict__["_masks_held"] = True
            yield self
        finally:
            for m, held in zip(tree, before):
                if held is None:
                    m.__dict__.pop("_masks_held", None)
                else:
                    m.__dict__["_masks_held"] = held

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
            src = as_float_array(array(state[name], f"state[{name!r}]"), f"state[{name!r}]", self.dtype)
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
            states[""] = generator_state(rng)
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
            fresh[path] = generator_from_state(state, f"states[{path!r}]")
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
