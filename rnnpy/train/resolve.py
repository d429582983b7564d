"""Losses and optimizers given by name ("softmax_cross_entropy", "adam", ...) to
fit, evaluate and compile, resolved to the functions and objects the loop uses.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Tuple, Union

import numpy as np

from .. import _validate as _checks
from ..nn.module import Module
from . import losses as _losses


LossFn = Callable[..., Tuple[float, np.ndarray]]


LOSSES: Dict[str, str] = {
    "softmax_cross_entropy": "softmax_cross_entropy",
    "cross_entropy": "softmax_cross_entropy",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
    "bce_with_logits": "binary_cross_entropy_with_logits",
    "mse": "mse",
}


# -- helpers ---------------------------------------------------------------------------
def resolve_loss(loss: Union[str, LossFn]) -> LossFn:
    """A loss function from its name or itself."""
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return getattr(_losses, LOSSES[loss])
    raise ValueError(f"loss: expected a callable or one of {sorted(LOSSES)}, got {loss!r}")


def _class_weighted(loss_fn: LossFn, class_weight: Any) -> LossFn:
    """loss_fn with Keras's class_weight ({class: weight} or a (C,) sequence):
    torch's weight= for softmax cross-entropy, per-entry weights for binary."""
    if isinstance(class_weight, dict):
        items = list(class_weight.items())
    else:
        items = list(enumerate(_checks.real_array(class_weight, "class_weight").astype(np.float64)
                               .ravel().tolist()))
    for k, v in items:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (
                isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"class_weight: expected {{class index: non-negative weight}}, got {k!r}: {v!r}")
    if loss_fn is _losses.softmax_cross_entropy:
        def weighted(out: np.ndarray, y: Any, **kw: Any) -> Tuple[float, np.ndarray]:
            C = out.shape[-1]
            w = np.ones(C)
            for k, v in items:
                if not 0 <= k < C:
                    raise ValueError(f"class_weight: class {k} is outside [0, {C})")
                w[k] = v
            return loss_fn(out, y, weight=w, **kw)

        def class_weights_of(y: Any) -> np.ndarray:
            t = np.asarray(y)
            table = np.ones(max([int(k) for k, _ in items] + [int(t.max(initial=0))]) + 1)
            for k, v in items:
                table[k] = v
            return table[np.clip(t.astype(np.int64), 0, None)]
        weighted.position_weights = class_weights_of   # type: ignore[attr-defined]
        return weighted
    if loss_fn is _losses.binary_cross_entropy_with_logits:
        table = dict(items)
        if not set(table) <= {0, 1}:
            raise ValueError(f"class_weight: expected classes 0 and 1 for binary cross-entropy, "
                             f"got {sorted(table)}")

        def weighted_binary(out: np.ndarray, y: Any, **kw: Any) -> Tuple[float, np.ndarray]:
            pos = np.asarray(y, dtype=np.float64) >= 0.5
            sw = np.where(pos, table.get(1, 1.0), table.get(0, 1.0))
            return loss_fn(out, y, sample_weight=sw, **kw)

        def binary_weights_of(y: Any) -> np.ndarray:
            return np.where(np.asarray(y, dtype=np.float64) >= 0.5, table.get(1, 1.0),
                            table.get(0, 1.0))
        weighted_binary.position_weights = binary_weights_of   # type: ignore[attr-defined]
        return weighted_binary
    raise TypeError("class_weight: expected a cross-entropy loss (softmax or binary); weigh "
                    "other losses inside the loss function")


OPTIMIZERS: Dict[str, Tuple[str, Dict[str, float]]] = {
    "sgd": ("SGD", {"lr": 0.01}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
}


def resolve_optimizer(model: Module, optimizer: Any) -> Any:
    """An optimizer over model from its name ("adam", "sgd", "rmsprop",
    "adamw", with Keras's default learning rates), an optimizer class, or
    itself (an rnnpy.optim optimizer already built over model)."""
    from .. import optim as _optim

    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected an optimizer or one of {sorted(OPTIMIZERS)}, "
                             f"got {optimizer!r}")
        cls_name, kw = OPTIMIZERS[key]
        return getattr(_optim, cls_name)(model, **kw)
    if inspect.isclass(optimizer) and issubclass(optimizer, _optim.Optimizer):
        kw = {"lr": 0.01} if optimizer is _optim.SGD else {}
        return optimizer(model, **kw)
    if optimizer is None or not hasattr(optimizer, "step"):
        raise TypeError(f"optimizer: expected an rnnpy.optim optimizer or one of "
                        f"{sorted(OPTIMIZERS)}, got {type(optimizer).__name__}")
    _checks.optimizer_of(model, optimizer)
    return optimizer
