"""Losses and accuracy on NumPy arrays.

Each loss returns ``(loss, grad)``: the loss as a Python float and its gradient
with respect to the input, of the input's shape and dtype, ready to hand to a
model's ``backward``. They are computed in float64 whatever the input dtype
(log-sum-exp for the softmax, a stable softplus for the sigmoid), so extreme
logits give finite, correctly rounded values.

    softmax_cross_entropy             logits (..., C), targets (...) ints in [0, C)
    binary_cross_entropy_with_logits  logits (...),    targets (...) reals in [0, 1]
    mse                               pred (...),      targets (...) reals

The leading shape ``...`` is anything: (B,) for the last step of a batch,
(B, T) for every step. ``mask`` marks the positions that count (1/True) and
those that do not (0/False, e.g. padded steps): masked positions contribute
nothing to the loss and get zero gradient, ``reduction="mean"`` averages over
the unmasked positions only, and an all-masked input gives loss 0 with a zero
gradient. For the element-wise losses the mask may also cover only the leading
axes (mask (B, T) for pred (B, T, F)), applying to every trailing entry.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .._validate import FLOAT_DTYPES, array, check_finite, real_array


__all__ = ["softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "accuracy"]

_REDUCTIONS = ("mean", "sum")
# float64 values of softmax_cross_entropy's work array per block of rows
_BLOCK_VALUES = 1 << 16


# -- argument checks -----------------------------------------------------------

def _float_input(obj: Any, name: str) -> np.ndarray:
    """The network output: a float32/float64 ndarray as is, other array-likes
    as float64; finite. (An integer ndarray is almost always a mix-up.)"""
    if isinstance(obj, np.ndarray):
        if obj.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {obj.dtype}")
        arr = obj
    else:
        arr = real_array(obj, name).astype(np.float64)
    check_finite(arr, name)
    return arr


def _real_targets(obj: Any, shape: Tuple[int, ...], name: str = "targets") -> np.ndarray:
    """Real-valued targets of exactly ``shape`` (bool, int or float), as float64."""
    arr = real_array(obj, name, "biuf")
    if arr.shape != shape:
        raise ValueError(f"{name}: expected the input's shape {shape}, got {arr.shape}")
    arr = arr.astype(np.float64)
    check_finite(arr, name)
    return arr


def _class_targets(obj: Any, shape: Tuple[int, ...], name: str = "targets") -> np.ndarray:
    """Integer class indices of exactly ``shape`` (range checked by the caller)."""
    arr = array(obj, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape logits.shape[:-1] = {shape}, got {arr.shape}")
    return arr.astype(np.int64)


def _check_range(targets: np.ndarray, keep: Optional[np.ndarray], C: int) -> None:
    """Targets at unmasked positions must lie in [0, C); masked ones may hold anything."""
    bad = (targets < 0) | (targets >= C)
    if keep is not None:
        bad &= keep > 0
    if bad.any():
        raise ValueError(f"targets: expected class indices in [0, C) = [0, {C}), "
                         f"got {targets[bad].ravel()[0]}")


def _mask(mask: Any, shape: Tuple[int, ...], leading_ok: bool) -> Optional[np.ndarray]:
    """None, or the mask as float64 0/1 broadcastable to ``shape`` (trailing
    axes of size 1 added when it covers only the leading axes)."""
    if mask is None:
        return None
    arr = array(mask, "mask")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mask: expected bool or 0/1 values, got dtype {arr.dtype}")
    if leading_ok:
        ok = arr.ndim <= len(shape) and arr.shape == shape[:arr.ndim]
        want = f"the input's shape {shape} or a leading part of it"
    else:
        ok = arr.shape == shape
        want = f"targets' shape {shape}"
    if not ok:
        raise ValueError(f"mask: expected {want}, got {arr.shape}")
    if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))].ravel()[0]
        raise ValueError(f"mask: expected bool or 0/1 values, got {bad}")
    arr = arr.astype(np.float64)
    return arr.reshape(arr.shape + (1,) * (len(shape) - arr.ndim))


def _reduction(reduction: Any) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    return reduction


def _scale(reduction: str, count: float) -> float:
    """The factor turning a masked sum into the requested reduction."""
    if reduction == "sum":
        return 1.0
    return 1.0 / count if count > 0 else 0.0


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for either sign."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# -- losses --------------------------------------------------------------------

def _weights(weights: Any, shape: Tuple[int, ...], name: str, leading_ok: bool) -> Optional[np.ndarray]:
    """None, or non-negative finite float64 weights broadcastable to ``shape``."""
    if weights is None:
        return None
    arr = array(weights, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real weights, got dtype {arr.dtype}")
    ok = arr.shape == shape or (leading_ok and arr.ndim <= len(shape) and arr.shape == shape[:arr.ndim])
    if not ok:
        raise ValueError(f"{name}: expected shape {shape}" + (" or a leading part of it" if leading_ok else "")
                         + f", got {arr.shape}")
    arr = arr.astype(np.float64)
    if not (np.isfinite(arr).all() and (arr >= 0).all()):
        raise ValueError(f"{name}: expected finite non-negative weights")
    return arr.reshape(arr.shape + (1,) * (len(shape) - arr.ndim))


def _combine(keep: Optional[np.ndarray], w: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if w is None:
        return keep
    return w if keep is None else keep * w


def softmax_cross_entropy(logits: Any, targets: Any, mask: Any = None,
                          reduction: str = "mean", weight: Any = None,
                          sample_weight: Any = None) -> Tuple[float, np.ndarray]:
    """Cross-entropy of softmax(logits) against class indices.

    logits: (..., C) float32/float64 scores. targets: (...) integers in [0, C)
    (at masked positions any integer, e.g. -100, is accepted). mask: None or
    (...) bool or 0/1. reduction: "mean" (over unmasked positions) or "sum".
    weight: None or (C,) class weights (torch's ``weight``); sample_weight:
    None or non-negative weights of targets' shape or of its leading axes (B,)
    (Keras's). Weighted, each position's loss is multiplied by its weights and
    "mean" divides by the sum of the weights, as torch does.
    Returns (loss, dlogits) with dlogits of logits' shape and dtype.
    Matches torch.nn.functional.cross_entropy with masked positions ignored.
    """
    reduction = _reduction(reduction)
    x = _float_input(logits, "logits")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits: expected shape (..., C) with C >= 1, got {x.shape}")
    C = x.shape[-1]
    t = _class_targets(targets, x.shape[:-1])
    keep = _mask(mask, t.shape, leading_ok=False)
    _check_range(t, keep, C)
    cw = _weights(weight, (C,), "weight", leading_ok=False)
    sw = _weights(sample_weight, t.shape, "sample_weight", leading_ok=True)

    t = t.reshape(-1)
    w = None if keep is None else keep.reshape(-1)
    if w is not None:
        t = np.where(w > 0, t, 0)
    if cw is not None:
        w = cw[t] if w is None else w * cw[t]
    if sw is not None:
        sw = np.broadcast_to(sw, x.shape[:-1]).reshape(-1)
        w = sw if w is None else w * sw
    count = float(t.size) if w is None else float(w.sum())
    scale = _scale(reduction, count)
    z = x.reshape(-1, C)
    N = z.shape[0]
    grad = np.empty(x.shape, dtype=x.dtype)
    g2 = grad.reshape(N, C)
    nll = np.empty(N)                     # -log softmax(x)[t] >= 0
    # blocks of rows whose float64 work array (~512 KiB) stays in the cache, each
    # updated in place: z - max, then exp, then the gradient
    rows = max(64, _BLOCK_VALUES // C)
    work = np.empty((min(rows, N), C))
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        zb, e = z[r0:r1], work[:r1 - r0]
        np.subtract(zb, zb.max(axis=1, keepdims=True), out=e, dtype=np.float64)
        at = np.arange(r1 - r0) * C + t[r0:r1]    # flat index of each row's target
        zt = e.take(at)                           # z[t] - max
        np.exp(e, out=e)
        s = e.sum(axis=1)
        np.subtract(np.log(s), zt, out=nll[r0:r1])
        e /= s[:, None]
        e.ravel()[at] -= 1.0                      # e is contiguous: ravel is a view
        np.multiply(e, scale if w is None else (w[r0:r1] * scale)[:, None], out=g2[r0:r1],
                    casting="same_kind")
    loss = (float(nll.sum()) if w is None else float(np.einsum("i,i->", nll, w))) * scale
    return loss, grad


def binary_cross_entropy_with_logits(logits: Any, targets: Any, mask: Any = None,
                                     reduction: str = "mean",
                                     sample_weight: Any = None) -> Tuple[float, np.ndarray]:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1].

    logits: (...) float32/float64. targets: (...) reals (bool, int or float)
    in [0, 1]. mask: None, or bool/0-1 of logits' shape or of its leading axes.
    reduction: "mean" (over unmasked entries) or "sum". sample_weight: None or
    non-negative weights of logits' shape or of its leading axes ("mean" then
    divides by the sum of the weights).
    Per entry: max(x, 0) - x*y + log(1 + exp(-|x|)); gradient sigmoid(x) - y.
    Returns (loss, dlogits) with dlogits of logits' shape and dtype.
    Matches torch.nn.functional.binary_cross_entropy_with_logits.
    """
    reduction = _reduction(reduction)
    x = _float_input(logits, "logits")
    y = _real_targets(targets, x.shape)
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"targets: expected values in [0, 1], got {y[(y < 0) | (y > 1)].ravel()[0]}")
    keep = _combine(_mask(mask, x.shape, leading_ok=True),
                    _weights(sample_weight, x.shape, "sample_weight", leading_ok=True))
    xd = x.astype(np.float64)
    per = np.maximum(xd, 0.0) - xd * y + np.log1p(np.exp(-np.abs(xd)))
    grad = _stable_sigmoid(xd) - y
    return _reduce(per, grad, keep, reduction, x.dtype)


def mse(pred: Any, targets: Any, mask: Any = None,
        reduction: str = "mean", sample_weight: Any = None) -> Tuple[float, np.ndarray]:
    """Mean squared error.

    pred: (...) float32/float64. targets: (...) reals of pred's shape. mask:
    None, or bool/0-1 of pred's shape or of its leading axes. reduction:
    "mean" (over unmasked entries) or "sum". sample_weight: None or
    non-negative weights of pred's shape or of its leading axes ("mean" then
    divides by the sum of the weights).
    Returns (loss, dpred) with dpred of pred's shape and dtype.
    Matches torch.nn.functional.mse_loss.
    """
    reduction = _reduction(reduction)
    p = _float_input(pred, "pred")
    y = _real_targets(targets, p.shape)
    keep = _combine(_mask(mask, p.shape, leading_ok=True),
                    _weights(sample_weight, p.shape, "sample_weight", leading_ok=True))
    diff = p.astype(np.float64) - y
    return _reduce(diff * diff, 2.0 * diff, keep, reduction, p.dtype)


def _reduce(per: np.ndarray, grad: np.ndarray, keep: Optional[np.ndarray], reduction: str,
            dtype: np.dtype) -> Tuple[float, np.ndarray]:
    """Masked sum or mean of per-entry losses, and the matching gradient."""
    if keep is None:
        count = float(per.size)
    else:
        keep = np.broadcast_to(keep, per.shape)
        count = float(keep.sum())
        per = np.where(keep > 0, per * keep, 0.0)
        grad = np.where(keep > 0, grad * keep, 0.0)
    scale = _scale(reduction, count)
    return float(per.sum()) * scale, (grad * scale).astype(dtype, copy=False)


def accuracy(logits: Any, targets: Any, mask: Any = None) -> float:
    """Fraction of unmasked positions predicted correctly (0.0 if all are masked).

    Class logits (..., C) with integer targets (...): argmax over C.
    Binary logits of targets' shape: logits > 0 against targets >= 0.5.
    mask: None or bool/0-1 of targets' shape (for binary logits also of its
    leading axes).
    """
    x = _float_input(logits, "logits")
    t = array(targets, "targets")
    binary = x.shape == t.shape
    if binary:
        y = _real_targets(t, x.shape)
        correct = (x > 0) == (y >= 0.5)
    else:
        if x.ndim < 1 or x.shape[-1] < 1:
            raise ValueError(f"logits: expected shape (..., C) with C >= 1, or targets' "
                             f"shape {t.shape}, got {x.shape}")
        t = _class_targets(t, x.shape[:-1])
        correct = np.argmax(x, axis=-1) == t
    keep = _mask(mask, correct.shape, leading_ok=binary)
    if keep is None:
        return float(correct.mean()) if correct.size else 0.0
    keep = np.broadcast_to(keep, correct.shape)
    count = float(keep.sum())
    return float((correct * keep).sum() / count) if count > 0 else 0.0
