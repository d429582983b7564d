"""rnnpy.no_grad(): forward passes that keep nothing for backward.

Inside ``with rnnpy.no_grad():`` the recurrent layers run their inference
path: nothing is kept for backward (the kernels write no cache and project the
input block by block in scratch that stays in cache), so forward is faster and
uses less memory, and a backward() after it raises. The outputs are bit for
bit those of an ordinary forward. The mode is per thread, as in PyTorch, and
nests; ``@rnnpy.no_grad()`` decorates a function. predict() and evaluate()
use it.

The mode is "this thread holds its own re-entrant lock": the lock's
__enter__ and __exit__ are C, so an interrupt (Ctrl-C) cannot land between
setting the mode and the with-block that undoes it, nor inside the undoing.
The object no_grad() returns binds them, when a with-block starts, to the
lock of the thread starting it.
"""
import _thread
import functools
import threading
from typing import Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

_local = threading.local()


def _mode_lock() -> Any:
    lock = getattr(_local, "lock", None)
    if lock is None:
        lock = _local.lock = _thread.RLock()
    return lock


def grad_enabled() -> bool:
    """False inside no_grad() on this thread."""
    return not _mode_lock()._is_owned()


class _ThreadLockMethod:
    """A descriptor: the method `name` of the lock of the thread looking it
    up, bound as it is when looked up on an instance (as ``with`` does), or
    taking the instance first when looked up on the class (as
    contextlib.ExitStack does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        method = getattr(_mode_lock(), self.name)
        if obj is None:
            return lambda _cm, *args: method(*args)
        return method


class _NoGrad:
    """The context manager (and decorator) no_grad() returns. ``with``
    looks __enter__ and __exit__ up when the block starts: both are then
    the C methods of the lock of the thread entering it, so one object may
    be entered from any thread without waiting on another thread's mode."""

    __slots__ = ()
    __enter__ = _ThreadLockMethod("__enter__")
    __exit__ = _ThreadLockMethod("__exit__")

    def __call__(self, fn: _F) -> _F:
        """fn run under no_grad() at every call."""
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)
        return wrapper   # type: ignore[return-value]


def no_grad() -> _NoGrad:
    """A context manager (or function decorator): forward passes inside keep
    nothing for backward (see the module)."""
    return _NoGrad()
