"""The echo task: repeat a random binary series ``echo_step`` steps later.

Each batch row is its own series of fair coin flips x_t; the target is
y_t = x_{t - echo_step}, and 0 for the first echo_step steps. A network can only
do this by keeping the last echo_step inputs in its state, so the series is fed
in consecutive chunks of ``truncated_length`` with the state carried from chunk
to chunk (reset at the start of each series). The course draws a new series
every epoch: call ``echo_data`` again with another seed.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from .._validate import positive_int, seed_value

__all__ = ["echo_data", "echo_chunks", "num_chunks"]


def echo_data(series_length: int = 20000, batch_size: int = 5, echo_step: int = 3,
              seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Random binary series and their echoes.

    Returns ``(x, y)``, both (batch_size, series_length) float32 of 0s and 1s:
    x Bernoulli(0.5) per element (independent rows), y[:, t] = x[:, t - echo_step]
    for t >= echo_step and y[:, :echo_step] = 0.
    """
    series_length = positive_int(series_length, "series_length")
    batch_size = positive_int(batch_size, "batch_size")
    if (isinstance(echo_step, bool) or not isinstance(echo_step, numbers.Integral)
            or not 0 <= echo_step < series_length):
        raise ValueError(f"echo_step: expected an integer in [0, series_length) = "
                         f"[0, {series_length}), got {echo_step!r}")
    rng = np.random.default_rng(seed_value(seed))
    x = rng.integers(0, 2, size=(batch_size, series_length)).astype(np.float32)
    y = np.zeros_like(x)
    y[:, echo_step:] = x[:, :series_length - echo_step]
    return x, y


def num_chunks(series_length: int, truncated_length: int = 20) -> int:
    """How many chunks ``echo_chunks`` yields for a series of ``series_length``."""
    series_length = positive_int(series_length, "series_length")
    truncated_length = positive_int(truncated_length, "truncated_length")
    return -(-series_length // truncated_length)


def echo_chunks(x: Any, y: Any, truncated_length: int = 20
                ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Consecutive chunks of an echo batch, in time order.

    x, y: (B, S). Yields ``(x_chunk, y_chunk)``, both (B, L, 1) float32, covering
    steps [0, L), [L, 2L), ... exactly once; the last chunk is shorter when L
    does not divide S. Carry the state from one chunk into the next.
    """
    truncated_length = positive_int(truncated_length, "truncated_length")
    xs = np.asarray(x, dtype=np.float32)
    ys = np.asarray(y, dtype=np.float32)
    if xs.ndim != 2:
        raise ValueError(f"x: expected shape (B, S), got {tuple(xs.shape)}")
    if ys.shape != xs.shape:
        raise ValueError(f"y: expected shape (B, S) = {tuple(xs.shape)} (as x), got {tuple(ys.shape)}")
    xs, ys = xs[..., None], ys[..., None]
    S, L = xs.shape[1], truncated_length
    return ((xs[:, s:s + L], ys[:, s:s + L]) for s in range(0, S, L))
