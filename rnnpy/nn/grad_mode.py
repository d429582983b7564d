"""rnnpy.no_grad(): forward passes that keep nothing for backward.

Inside ``with rnnpy.no_grad():`` the recurrent layers run their inference
path: nothing is kept for backward (the LSTM kernel does not even write its
cache, and works step by step in scratch that stays in cache), so forward is
faster and uses less memory, and a backward() after it raises. The outputs
are those of an ordinary forward. The mode is per thread, as in PyTorch.
predict() and evaluate() use it.
"""
import contextlib
import threading
from typing import Iterator

_state = threading.local()


def grad_enabled() -> bool:
    """False inside no_grad() on this thread."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Forward passes inside keep nothing for backward (see the module)."""
    prev = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = prev
