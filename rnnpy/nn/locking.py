"""The lock of a model tree: one forward or backward at a time, every other
call that touches parameters, gradients or random state after the call in
progress, and the parameters' version that lets backward refuse to mix the
weights of two steps (see ModelLock).
"""
from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
import weakref
from typing import Any, Callable, Optional



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
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
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
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
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
