"""Thread counts of the recurrent layers: the default ($RNNPY_NUM_THREADS, else
1) and the check of a requested count against the C core's limit.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from .. import _core

# The C core's thread limit (RNN_MAX_THREADS in csrc), read from the binding:
# Python does not write the number.
MAX_THREADS: int = _core.MAX_THREADS


def default_threads() -> int:
    """Threads a layer uses when not told: $RNNPY_NUM_THREADS if set, else 1.

    One thread by default because on a machine whose cores are also busy with
    other work a second thread rarely pays (the pool then mostly runs the
    steps on the calling thread). Ask for threads=2 (or set RNNPY_NUM_THREADS)
    when the cores are yours."""
    env = os.environ.get("RNNPY_NUM_THREADS")
    if env:
        try:
            return resolve_threads(int(env))
        except ValueError as exc:
            raise ValueError(f"RNNPY_NUM_THREADS: expected an int in [1, {MAX_THREADS}], "
                             f"got {env!r}") from exc
    return 1


def resolve_threads(threads: Optional[int]) -> int:
    """A thread count: None means default_threads(); else a positive int."""
    if threads is None:
        return default_threads()
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads: expected a positive int or None, got {threads!r}")
    if not 1 <= int(threads) <= MAX_THREADS:
        raise ValueError(f"threads: expected an int in [1, {MAX_THREADS}] or None, got {threads!r}")
    return int(threads)


def model_threads(module: Any) -> int:
    """Threads of the model module belongs to: the most given to any layer of
    the tree of its outermost container (each recurrent layer's ``threads``,
    and a Dense's when set), else default_threads(). Layers without a count
    of their own (Dense) run their products with it, so that a model runs
    on one thread count, the one its recurrent layers were given."""
    root, owner = module, _owner(module)
    while owner is not None:
        root, owner = owner, _owner(owner)
    counts, stack = [], [root]
    while stack:   # through the instance dicts: Module.__getattr__ is slow to say "no"
        d = getattr(stack.pop(), "__dict__", {})
        own = d.get("_threads")
        if isinstance(own, (int, np.integer)) and not isinstance(own, bool):
            counts.append(int(own))
        stack.extend(d.get("_modules", ()))
    return max(counts) if counts else default_threads()


def _owner(module: Any) -> Any:
    """The live container module belongs to (Module._container), or None."""
    ref = getattr(module, "__dict__", {}).get("_owner")
    return ref() if ref is not None else None
