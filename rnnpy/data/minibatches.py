"""The one minibatch iterator: rows of aligned arrays, in order or in a given
order, batch_size at a time. rnnpy.data.iterate_minibatches and fit's batching
(rnnpy.data.batches) use it; each draws its own order from its own seed.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

from .._validate import array


def minibatches(arrays: Sequence[Any], batch_size: int, order: Optional[np.ndarray] = None,
                stop: Optional[int] = None) -> Iterator[Tuple[Optional[np.ndarray], ...]]:
    """Tuples of batch_size rows of each (N, ...) array (the same rows in each).

    arrays: array-likes of N rows; a None entry stays None in every batch.
    order: (N,) row indices to walk (a permutation); None walks rows 0..N-1 and
        yields views (slices), else copies.
    stop: rows to walk (default N): (N // batch_size) * batch_size drops the
        last, smaller batch.
    """
    arrs = [None if a is None else array(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    n = next(len(a) for a in arrs if a is not None)
    for s in range(0, n if stop is None else stop, batch_size):
        rows = slice(s, s + batch_size) if order is None else order[s:s + batch_size]
        yield tuple(None if a is None else a[rows] for a in arrs)
