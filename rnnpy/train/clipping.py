"""Gradient clipping over a module's one gradient buffer: by global norm and by value.
"""
from __future__ import annotations

import math
from typing import Any, List, Tuple

import numpy as np

from .._validate import in_range
from ..nn.locking import holds_model_lock
from .optimizer import _buffers, _scale_all, uninterrupted


@holds_model_lock
def clip_grad_norm(module: Any, max_norm: float) -> float:
    """Scales all gradients in place so that their global L2 norm is at most
    max_norm; returns the norm before clipping.

    As torch.nn.utils.clip_grad_norm_ (error_if_nonfinite=False): the factor is
    min(1, max_norm / (norm + 1e-6)); a NaN/Inf norm is returned as is and the
    gradients are multiplied by the resulting factor all the same.
    """
    max_norm = in_range(max_norm, "max_norm", 0.0)
    return uninterrupted(_clip_norm, _buffers(module), max_norm)


def _clip_norm(pairs: List[Tuple[np.ndarray, np.ndarray]], max_norm: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        # norm of the per-array norms, as torch; sums of squares in float64
        squares = [_sum_of_squares(g) for _, g in pairs]
        total = math.sqrt(math.fsum(squares)) if not any(map(math.isnan, squares)) else math.nan
        coef = math.nan if math.isnan(total) else min(max_norm / (total + 1e-6), 1.0)
        if coef != 1.0:   # all gradients scaled, or none (see Optimizer.step)
            _scale_all([g for _, g in pairs], lambda g, out: np.multiply(g, coef, out=out))
    return total


def _sum_of_squares(g: np.ndarray) -> float:
    """sum(g**2) accumulated in float64, without a float64 copy of g and
    without NumPy's BLAS (np.dot would run its threads beside the recurrent
    kernels' pool; einsum converts in small buffers on the calling thread)."""
    flat = g.ravel()
    return float(np.einsum("i,i->", flat, flat, dtype=np.float64))


@holds_model_lock
def clip_grad_value(module: Any, clip_value: float) -> None:
    """Clamps every gradient entry in place to [-clip_value, clip_value]
    (NaN stays NaN), as torch.nn.utils.clip_grad_value_."""
    clip_value = in_range(clip_value, "clip_value", 0.0)
    pairs = _buffers(module)
    # all gradients clipped, or none (see Optimizer.step)
    uninterrupted(_scale_all, [g for _, g in pairs],
                  lambda g, out: np.clip(g, -clip_value, clip_value, out=out))
