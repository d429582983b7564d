"""Metrics fit and evaluate report by name (accuracy, top-k accuracy, mae, mse),
masked by the batch's lengths, and their running means over an epoch.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Sequence, Tuple

import numpy as np

from .._validate import array
from . import losses as _losses
from .resolve import LOSSES


def _masked_pairs(out: np.ndarray, y: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(y, out) at the unmasked positions, flattened over the masked axes."""
    y = array(y, "targets")
    if mask is None:
        return y, out
    keep = array(mask, "mask").astype(bool)
    return y[keep], out[keep]


def _top_k_accuracy(k: int) -> Callable[..., float]:
    def top_k(out: np.ndarray, y: Any, mask: Any = None) -> float:
        t, o = _masked_pairs(out, y, mask)
        if o.ndim < 1 or o.shape[-1] < 1 or t.shape != o.shape[:-1]:
            raise ValueError(f"metrics: top-{k} accuracy needs class scores (..., C) and integer "
                             f"targets (...), got {o.shape} and {t.shape}")
        if t.size == 0:
            return 0.0
        kk = min(k, o.shape[-1])
        best = np.argpartition(-o, kk - 1, axis=-1)[..., :kk]
        return float((best == t[..., None].astype(np.int64)).any(axis=-1).mean())
    return top_k


def _mae(out: np.ndarray, y: Any, mask: Any = None) -> float:
    t, o = _masked_pairs(out, y, mask)
    return float(np.abs(o - t).mean()) if o.size else 0.0


def _mse(out: np.ndarray, y: Any, mask: Any = None) -> float:
    t, o = _masked_pairs(out, y, mask)
    return float(np.square(o - t).mean()) if o.size else 0.0


METRICS: Dict[str, Callable[..., float]] = {
    "accuracy": lambda out, y, mask=None: _losses.accuracy(out, y, mask=mask),
    "acc": lambda out, y, mask=None: _losses.accuracy(out, y, mask=mask),
    "top_5_accuracy": _top_k_accuracy(5),
    "mae": _mae,
    "mse": _mse,
}


def _metric(m: Any) -> Tuple[str, Callable[..., float]]:
    """(name, fn(out, y, mask)) from a metric's name or a callable.

    A callable follows Keras's order, ``fn(y_true, y_pred) -> float``, and sees
    only the unmasked positions; its name is its ``__name__``."""
    if isinstance(m, str):
        if m in METRICS:
            return m, METRICS[m]
        if m.startswith("top_") and m.endswith("_accuracy") and m[4:-9].isdigit() and int(m[4:-9]) > 0:
            return m, _top_k_accuracy(int(m[4:-9]))
        raise ValueError(f"metrics: unknown metric {m!r}; available: {sorted(METRICS)}, "
                         "'top_<k>_accuracy' or a callable fn(y_true, y_pred)")
    if callable(m):
        def call(out: np.ndarray, y: Any, mask: Any = None) -> float:
            t, o = _masked_pairs(out, y, mask)
            return float(m(t, o))
        return getattr(m, "__name__", type(m).__name__), call
    raise TypeError(f"metrics: expected names or callables, got {type(m).__name__}")


def _default_metrics(loss: Any) -> Tuple[str, ...]:
    """Accuracy for classification losses, mean absolute error for MSE."""
    name = LOSSES.get(loss) if isinstance(loss, str) else getattr(loss, "__name__", None)
    if name == "mse":
        return ("mae",)
    if name in ("softmax_cross_entropy", "binary_cross_entropy_with_logits"):
        return ("accuracy",)
    return ()


class _Meter:
    """Running means of the loss and the metrics, weighted by batch size."""

    def __init__(self, metrics: Sequence[Any]) -> None:
        if isinstance(metrics, str) or callable(metrics):
            metrics = (metrics,)
        self.metrics = [_metric(m) for m in metrics]
        self.sums: Dict[str, float] = {"loss": 0.0, **{m: 0.0 for m, _ in self.metrics}}
        self.count = 0

    def add(self, n: int, value: float, out: np.ndarray, y: Any, mask: Any) -> None:
        self.count += n
        self.sums["loss"] += value * n
        for name, fn in self.metrics:
            self.sums[name] += float(fn(out, y, mask)) * n

    def means(self, where: str) -> Dict[str, float]:
        if self.count == 0:
            raise ValueError(f"{where}: the data gave no batches")
        return {k: v / self.count for k, v in self.sums.items()}
