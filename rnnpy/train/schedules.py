"""Learning-rate schedules (StepLR, ExponentialLR, CosineAnnealingLR,
ReduceLROnPlateau), with torch.optim.lr_scheduler's formulas.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict

import numpy as np

from .._validate import in_range, integer


class _Schedule:
    """Base class: sets optimizer.lr from get_lr() on each step, as
    torch.optim.lr_scheduler with its recursive (chainable) formulas.

    Construction counts as epoch 0 and leaves the learning rate as it is;
    call step() once per epoch, after the optimizer's steps.
    """

    _state = ("last_epoch", "base_lr", "last_lr")

    def __init__(self, optimizer: Any) -> None:
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer: expected an optimizer with an lr attribute, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self.last_lr = self.base_lr

    def _next_lr(self, lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Advances one epoch and sets the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(float(self.optimizer.lr))
        self.last_lr = float(self.optimizer.lr)

    def get_last_lr(self) -> float:
        """The learning rate set by the latest step (or at construction)."""
        return self.last_lr

    def state_dict(self) -> Dict[str, Any]:
        """The schedule's progress as plain numbers (its hyperparameters come
        from the constructor; the optimizer's lr from the optimizer's state)."""
        return {k: getattr(self, k) for k in self._state}

    def check_state_dict(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """The checks load_state_dict makes, without changing anything; returns
        the checked values."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        missing = sorted(set(self._state) - set(state))
        extra = sorted(set(state) - set(self._state))
        if missing or extra:
            raise KeyError(f"state: missing {missing}, unexpected {extra}")
        return {k: self._check_state(k, state[k]) for k in self._state}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores a state_dict; nothing changes unless all of it is valid."""
        for k, v in self.check_state_dict(state).items():
            setattr(self, k, v)

    def _check_state(self, key: str, value: Any) -> Any:
        if key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            return integer(value, f"state[{key!r}]", 0)
        if key == "best":
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"state['best']: expected a number, got {value!r}")
            return float(value)
        return in_range(value, f"state[{key!r}]", 0.0)


class StepLR(_Schedule):
    """Multiplies the learning rate by gamma every step_size epochs."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = integer(step_size, "step_size", 1)
        self.gamma = in_range(gamma, "gamma", 0.0, lo_open=True)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(_Schedule):
    """Multiplies the learning rate by gamma every epoch."""

    def __init__(self, optimizer: Any, gamma: float) -> None:
        self.gamma = in_range(gamma, "gamma", 0.0, lo_open=True)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma


class CosineAnnealingLR(_Schedule):
    """Cosine annealing from the initial lr down to eta_min over T_max epochs
    (and back up over the next T_max, as PyTorch's recursive form does):
    lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = integer(T_max, "T_max", 1)
        self.eta_min = in_range(eta_min, "eta_min", 0.0)
        super().__init__(optimizer)

    def _next_lr(self, lr: float) -> float:
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) \
            * (lr - lo) + lo


class ReduceLROnPlateau(_Schedule):
    """Multiplies the learning rate by factor once the metric has not improved
    for more than patience epochs, as torch.optim.lr_scheduler.ReduceLROnPlateau.

    mode "min" (lower is better) or "max"; an improvement must beat the best by
    threshold, relative (best * (1 -/+ threshold), threshold_mode "rel") or
    absolute ("abs"). After a reduction, cooldown epochs pass before bad epochs
    count again; the lr never goes below min_lr, and changes smaller than eps
    are skipped. Call step(metric) once per epoch.
    """

    _state = ("last_epoch", "base_lr", "last_lr", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer: Any, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = in_range(factor, "factor", 0.0, 1.0)
        self.patience = integer(patience, "patience", 0)
        self.threshold = in_range(threshold, "threshold", 0.0)
        self.cooldown = integer(cooldown, "cooldown", 0)
        self.min_lr = in_range(min_lr, "min_lr", 0.0)
        self.eps = in_range(eps, "eps", 0.0)
        super().__init__(optimizer)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            bar = self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return a < bar
        bar = self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return a > bar

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Records one epoch's metric (a NaN counts as no improvement)."""
        if isinstance(metric, np.ndarray) and metric.size == 1:
            metric = metric.item()
        if isinstance(metric, bool) or not isinstance(metric, numbers.Real):
            raise TypeError(f"metric: expected a number, got {metric!r}")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = float(self.optimizer.lr)
