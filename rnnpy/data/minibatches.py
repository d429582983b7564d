"""The one minibatch iterator: rows of aligned arrays in order or in a seeded
random order, batch_size at a time. data.iterate_minibatches and fit's batching use it.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple
import numpy as np


def _minibatches(arrs: List[np.ndarray], order: Optional[np.ndarray], batch_size: int,
                 stop: int) -> Iterator[Tuple[np.ndarray, ...]]:
    for s in range(0, stop, batch_size):
        if order is None:
            yield tuple(a[s:s + batch_size] for a in arrs)
        else:
            idx = order[s:s + batch_size]
            yield tuple(a[idx] for a in arrs)
