"""Initialisations for long time lags: the checks of init / t_max / forget_bias /
recurrent_init, and the orthogonal draw (the draws themselves run in
_RNNBase.reset_parameters, from the layer's seeded stream).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Tuple

import numpy as np

from .._validate import choice


INITS = ("uniform", "chrono")


RECURRENT_INITS = ("uniform", "orthogonal")


def _init_options(cls: str, keep_gate: Optional[int], init: Any, t_max: Any, forget_bias: Any,
                  recurrent_init: Any) -> Tuple[str, Optional[float], Optional[float], str]:
    """Checks the initialisation options; returns (init, t_max, forget_bias, recurrent_init)."""
    choice(init, "init", INITS)
    choice(recurrent_init, "recurrent_init", RECURRENT_INITS)
    gated = keep_gate is not None
    if init == "chrono":
        if not gated:
            raise ValueError(f"init: 'chrono' sets gate biases; {cls} has no gates "
                             "(use an LSTM or a GRU)")
        if t_max is None:
            raise ValueError("t_max: init='chrono' needs t_max, the longest time lag in steps "
                             "(e.g. the sequence length), a number > 2")
        if isinstance(t_max, (bool, np.bool_)) or not isinstance(t_max, numbers.Real):
            raise TypeError(f"t_max: expected a number > 2, got {t_max!r}")
        if not (math.isfinite(float(t_max)) and float(t_max) > 2):
            raise ValueError(f"t_max: expected a finite number > 2 (chrono draws biases from "
                             f"log U(1, t_max - 1)), got {t_max!r}")
        t_max = float(t_max)
    elif t_max is not None:
        raise ValueError(f"t_max: only used with init='chrono', got t_max={t_max!r} with init={init!r}")
    if forget_bias is not None:
        if not gated:
            raise ValueError(f"forget_bias: {cls} has no forget gate (use an LSTM or a GRU)")
        if init == "chrono":
            raise ValueError("forget_bias: init='chrono' already sets the forget-gate bias; "
                             "give one of the two")
        if isinstance(forget_bias, (bool, np.bool_)) or not isinstance(forget_bias, numbers.Real) \
                or not math.isfinite(float(forget_bias)):
            raise TypeError(f"forget_bias: expected a finite number or None, got {forget_bias!r}")
        forget_bias = float(forget_bias)
    return init, t_max, forget_bias, recurrent_init


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """(rows, cols), rows >= cols, with orthonormal columns (Q^T Q = I_cols): Q of
    the QR decomposition of a standard normal matrix, column signs fixed by diag(R)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)
