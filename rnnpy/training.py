"""The training loop: fit, evaluate, predict, and callbacks.

    history = rnnpy.fit(model, (x, y), loss="softmax_cross_entropy",
                        optimizer=rnnpy.optim.Adam(model, lr=1e-3), epochs=10,
                        batch_size=32, val=(x_val, y_val))

Data is given as arrays (x, y) or (x, y, lengths) (NumPy arrays or nested
lists), cut into minibatches each epoch; or as a list of batches; or as any
re-iterable object giving batches (``rnnpy.data.SequenceBatches``); or as a
generator or iterator of batches (consumed by one epoch, or steps_per_epoch
batches per epoch); or as a function returning an iterable of batches for each
epoch (for streams such as consecutive text windows). Keras's form works too:

    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=32, validation_data=(x_val, y_val), verbose=2)

With stateful=True the final state of each batch is the initial state of the
next (truncated BPTT: no gradient flows across batches) and the state is reset
at the start of every epoch and whenever the batch size changes.

Resuming: ModelCheckpoint writes, with the model, everything fit needs to go
on bit-identically: the optimizer's state, the schedule's, every callback's
(``state_dict``/``load_state_dict``), the epoch, the shuffling seed and the
history (the model file holds the dropout generators). ``fit(...,
resume=path)`` restores all of it into the given model, optimizer, schedule
and callbacks, built as for the first run, and trains up to ``epochs`` in
total: the call that was interrupted, with resume added, finishes it exactly
as if it had not stopped.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import math
import numbers
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from threadpoolctl import ThreadpoolController

from . import distributed as _dist
from . import _train_checks as _checks
from . import losses as _losses
from ._validate import boolean, choice, file_path, non_negative_int, real, writable_file_path
from .module import Module, holds_model_lock, model_lock, run_locked

Batch = Tuple[Any, ...]
LossFn = Callable[..., Tuple[float, np.ndarray]]

LOSSES: Dict[str, str] = {
    "softmax_cross_entropy": "softmax_cross_entropy",
    "cross_entropy": "softmax_cross_entropy",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits",
    "bce_with_logits": "binary_cross_entropy_with_logits",
    "mse": "mse",
}


class History:
    """What fit measured: ``history[name]`` is a list with one value per epoch
    (loss, metrics, and val_* when validation data was given)."""

    def __init__(self) -> None:
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def state_dict(self) -> Dict[str, Any]:
        """{"epoch": [...], "history": {name: [...]}} (copies)."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores a state_dict (checked: lists of ints and of floats, one per epoch)."""
        epochs = state.get("epoch") if isinstance(state, dict) else None
        hist = state.get("history") if isinstance(state, dict) else None
        if not isinstance(epochs, list) or not all(type(e) is int for e in epochs) \
                or not isinstance(hist, dict) or not all(
                    isinstance(v, list) and len(v) == len(epochs)
                    and all(type(x) is float for x in v) for v in hist.values()):
            raise ValueError(f"state: expected {{'epoch': [int], 'history': {{name: [float]}}}} "
                             f"with one value per epoch, got {state!r:.200}")
        self.epoch = list(epochs)
        self.history = {k: list(v) for k, v in hist.items()}

    def append(self, epoch: int, logs: Dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> List[float]:
        return self.history[key]

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items()}
        return f"History(epochs={len(self.epoch)}, last={last})"


class Callback:
    """Hooks of the training loop; set ``trainer.stop = True`` to end training.

    Each epoch ends with on_epoch_end of every callback, in order, then
    on_epoch_complete of every callback (the epoch's state is final there:
    the place to save it). A callback that keeps state across epochs returns
    it from state_dict (JSON-able values and NumPy arrays) and takes it back
    in load_state_dict, so that a resumed fit continues it exactly.
    """

    def on_train_begin(self, trainer: "Trainer") -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        pass

    def on_epoch_complete(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        pass

    def state_dict(self) -> Dict[str, Any]:
        """The state a resumed fit needs (none by default)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restores what state_dict gave."""
        if state != {}:
            raise ValueError(f"state: {type(self).__name__} keeps no state, got {state!r:.200}")

    def on_train_end(self, trainer: "Trainer") -> None:
        pass


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _state_number(state: Dict[str, Any], key: str, kind: type) -> Any:
    value = state.get(key) if isinstance(state, dict) else None
    if type(value) is not kind:
        raise ValueError(f"state[{key!r}]: expected a {kind.__name__}, got {value!r:.100}")
    return value


def _check_mode(mode: str) -> str:
    return choice(mode, "mode", ("min", "max"))


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved by min_delta for ``patience``
    epochs; with restore_best (Keras: restore_best_weights), puts back the best
    epoch's parameters. mode "auto" is "max" for accuracies, else "min"."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min", restore_best: bool = True,
                 restore_best_weights: Optional[bool] = None) -> None:
        if restore_best_weights is not None:
            restore_best = boolean(restore_best_weights, "restore_best_weights")
        monitor = _checks.text(monitor, "monitor")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor = monitor
        self.patience = non_negative_int(patience, "patience")
        self.min_delta = real(min_delta, "min_delta")
        if self.min_delta < 0:
            raise ValueError(f"min_delta: expected a number >= 0, got {min_delta!r}")
        self.mode, self.restore_best = _check_mode(mode), boolean(restore_best, "restore_best")
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self._best_params: Optional[np.ndarray] = None

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(f"monitor: {self.monitor!r} is not measured; have {sorted(logs)}")
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_params = run_locked(trainer.model, trainer.model.flat_params.copy)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop = True

    def on_train_end(self, trainer: "Trainer") -> None:
        if self.restore_best and self._best_params is not None:
            # through the setter: checked, under the model's lock, and a forward made
            # before the restore can no longer be differentiated
            trainer.model.flat_params = self._best_params

    def state_dict(self) -> Dict[str, Any]:
        """best, best_epoch, wait and the best epoch's parameters (or None)."""
        return {"best": float(self.best), "best_epoch": self.best_epoch, "wait": self.wait,
                "best_params": None if self._best_params is None else self._best_params.copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        best = _state_number(state, "best", float)
        best_epoch, wait = _state_number(state, "best_epoch", int), _state_number(state, "wait", int)
        params = state.get("best_params")
        if params is not None and (type(params) is not np.ndarray or params.ndim != 1
                                   or params.dtype.kind != "f"):
            raise ValueError(f"state['best_params']: expected None or a float vector, got {params!r:.100}")
        if set(state) != {"best", "best_epoch", "wait", "best_params"}:
            raise ValueError(f"state: unexpected keys {sorted(set(state))}")
        self.best, self.best_epoch, self.wait = best, best_epoch, wait
        self._best_params = None if params is None else params.copy()


class ModelCheckpoint(Callback):
    """Saves the model after each epoch, or only on improvement of monitor,
    with everything fit(..., resume=path) needs to continue exactly: extra
    holds "epoch" (epochs done), "logs", "optimizer" (its state_dict) and
    "training" (schedule, callbacks, seed, history; see Trainer.training_state).

    The file is written once every callback has seen the epoch
    (on_epoch_complete), so their states are the epoch's final ones. When the
    epoch left parameters or optimizer state holding NaN or Inf (training
    diverged), nothing is written, the previous checkpoint stays as it was,
    and FloatingPointError says so: a loadable checkpoint is never replaced by
    one that cannot be loaded or resumed."""

    def __init__(self, path: str, monitor: str = "val_loss", mode: str = "min",
                 save_best_only: bool = False) -> None:
        # checked now, not after an epoch of training: the path and its folder
        self.path = writable_file_path(path, "path")
        self.monitor, self.mode = _checks.text(monitor, "monitor"), _check_mode(mode)
        self.save_best_only = boolean(save_best_only, "save_best_only")
        self.best = math.inf if mode == "min" else -math.inf
        self._due = False

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        self._due = True
        if self.save_best_only:
            if self.monitor not in logs:
                raise KeyError(f"monitor: {self.monitor!r} is not measured; have {sorted(logs)}")
            if not _improved(logs[self.monitor], self.best, self.mode, 0.0):
                self._due = False
                return
            self.best = logs[self.monitor]

    def on_epoch_complete(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        from .io import _param_problem, save

        if not self._due:
            return
        self._due = False
        extra: Dict[str, Any] = {"epoch": epoch + 1, "logs": dict(logs)}
        if hasattr(trainer.optimizer, "state_dict"):
            extra["optimizer"] = trainer.optimizer.state_dict()
        extra["training"] = trainer.training_state(epoch)
        problem = next((f"parameter {name!r} {p}" for name, p in
                        ((n, _param_problem(v)) for n, v in trainer.model.params.items()) if p), None)
        if problem is None:
            try:
                trainer.check_restorable(extra)
            except (TypeError, KeyError, ValueError) as exc:
                problem = str(exc)
        if problem:
            raise FloatingPointError(
                f"ModelCheckpoint: after epoch {epoch + 1} the {problem}: training diverged; "
                f"nothing was written and the previous checkpoint at {self.path!r} (if any) was "
                "kept (lower the learning rate or clip gradients)")
        if getattr(trainer, "is_main", True):   # one writer in a distributed fit
            save(trainer.model, self.path, extra=extra)

    def state_dict(self) -> Dict[str, Any]:
        """The best monitored value so far."""
        return {"best": float(self.best)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        best = _state_number(state, "best", float)
        if set(state) != {"best"}:
            raise ValueError(f"state: unexpected keys {sorted(set(state))}")
        self.best = best


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
        items = list(enumerate(np.asarray(class_weight, dtype=np.float64).ravel().tolist()))
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


def lengths_mask(lengths: Any, B: int, T: int) -> np.ndarray:
    """(B, T) bool mask, True where step t < lengths[b]."""
    lengths = np.asarray(lengths)
    return np.arange(T)[None, :] < lengths[:, None]


def _unpack(batch: Any, where: str) -> Tuple[Any, Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(f"{where}: expected batches (x, y) or (x, y, lengths), got "
                        f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                     if isinstance(batch, (tuple, list)) else ""))
    return batch[0], batch[1], (batch[2] if len(batch) == 3 else None)


def _batch_size_of(x: Any) -> int:
    shape = np.shape(x)
    if not shape:
        raise ValueError(f"x: expected a batch of inputs with a leading batch axis, "
                         f"got {type(x).__name__} {x!r:.50}")
    return int(shape[0])


def _minibatches(arrays: Sequence[Any], batch_size: int, shuffle: bool, seed: Optional[int],
                 epoch: int) -> Iterable[Batch]:
    n = len(arrays[0])
    # the order depends only on (seed, epoch), so a run resumed at any epoch sees
    # the same batches as one that never stopped
    rng = np.random.default_rng(None if seed is None else [seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(None if a is None else np.asarray(a)[idx] for a in arrays)


def _as_column(a: Any, name: str) -> np.ndarray:
    """One array of a data tuple (x, y or lengths) as an ndarray with rows."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except ValueError as exc:   # ragged nested lists
            raise ValueError(f"{name}: expected an array-like of equal-length rows (pad variable-"
                             f"length sequences with rnnpy.data.pad_sequences), got "
                             f"{type(a).__name__} ({exc})") from None
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array-like with a leading batch axis, got "
                         f"{type(a).__name__} {a!r:.50}")
    return arr


def _is_batch_sequence(data: Any) -> bool:
    """A tuple of batches ((x1, y1), (x2, y2), ...), as opposed to (x, y[, lengths])."""
    return isinstance(data, tuple) and len(data) > 0 and all(isinstance(b, tuple) for b in data)


class _OneShot:
    """Batches from an iterator (a generator): steps per epoch when given, else
    everything it yields in the first epoch; a later epoch that finds it used
    up is an error naming the way out."""

    def __init__(self, it: Any, steps: Optional[int], where: str) -> None:
        self.it, self.steps, self.where, self.epochs = it, steps, where, 0

    def __call__(self, epoch: int) -> Iterable[Batch]:
        self.epochs += 1
        return self._walk(self.epochs)

    def _walk(self, nth: int) -> Iterable[Batch]:
        count = 0
        for batch in (self.it if self.steps is None else itertools.islice(self.it, self.steps)):
            count += 1
            yield batch
        if count == 0 and nth > 1:
            raise ValueError(f"{self.where}: the iterator of batches was used up before epoch "
                             f"{nth}; pass a list, a re-iterable object or a function returning "
                             "batches, or steps_per_epoch=")


def _batches(data: Any, batch_size: int, shuffle: bool, seed: Optional[int],
             where: str, steps: Optional[int] = None
             ) -> Tuple[Callable[[int], Iterable[Batch]], Optional[int]]:
    """A function giving an epoch's batches, and their number when known."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)
                              or steps <= 0):
        raise ValueError(f"steps_per_epoch: expected a positive integer or None, got {steps!r}")
    if callable(data) and not hasattr(data, "__iter__"):
        n = len(data) if hasattr(data, "__len__") else steps
        if steps is None:
            return (lambda epoch: data()), n
        return (lambda epoch: itertools.islice(data(), steps)), n
    if isinstance(data, tuple) and len(data) in (2, 3) and not _is_batch_sequence(data):
        arrays = [None if a is None else _as_column(a, f"{where}[{i}]") for i, a in enumerate(data)]
        n = len(arrays[0])
        for i, a in enumerate(arrays[1:], 1):
            if a is not None and len(a) != n:
                raise ValueError(f"{where}[{i}]: expected {n} rows like {where}[0], got {len(a)}")
        return ((lambda epoch: _minibatches(arrays, batch_size, shuffle, seed, epoch)),
                math.ceil(n / batch_size))
    if isinstance(data, (list, tuple)):
        return (lambda epoch: iter(data)), len(data)
    if isinstance(data, (str, bytes, dict, np.ndarray)) or not hasattr(data, "__iter__"):
        raise TypeError(f"{where}: expected arrays (x, y[, lengths]), a list or iterable of "
                        f"batches or a function returning batches, got {type(data).__name__}")
    if iter(data) is data:   # an iterator or generator: one pass only
        return _OneShot(data, steps, where), steps
    n = len(data) if hasattr(data, "__len__") else None
    if steps is not None:
        return (lambda epoch: itertools.islice(iter(data), steps)), steps
    return (lambda epoch: iter(data)), n


def _require_batch_first(model: Module, where: str) -> None:
    """fit, evaluate and predict cut batches along axis 0, which is time for a
    time-major model: refuse rather than shuffle time steps into batches."""
    stack = [model]
    while stack:
        m = stack.pop()
        if getattr(m, "time_major", False):
            raise ValueError(f"{where}: model: {type(m).__name__} is time-major, but {where} "
                             "takes batch-first data (B, T, ...); build it with "
                             "time_major=False (the layers accept both layouts)")
        stack.extend(getattr(m, "modules", []))


def _forward(model: Module, x: Any, state: Any, lengths: Any) -> Tuple[np.ndarray, Any]:
    if model.is_recurrent:
        return model.forward(x, state, lengths)
    if model.accepts_lengths:
        return model.forward(x, lengths), None
    return model.forward(x), None


def _loss_and_grad(loss_fn: LossFn, out: np.ndarray, y: Any, lengths: Any) -> Tuple[float, np.ndarray, Any]:
    mask = None
    if lengths is not None and out.ndim == 3:
        mask = lengths_mask(lengths, out.shape[0], out.shape[1])
    value, grad = loss_fn(out, y, mask=mask) if mask is not None else loss_fn(out, y)
    return float(value), grad, mask


def _masked_pairs(out: np.ndarray, y: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(y, out) at the unmasked positions, flattened over the masked axes."""
    y = np.asarray(y)
    if mask is None:
        return y, out
    keep = np.asarray(mask, dtype=bool)
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


def _run_batches(model: Module, batches: Iterable[Any], loss_fn: LossFn, stateful: bool,
                 where: str, dist: Optional[_dist.Session] = None,
                 ) -> Iterable[Tuple[int, int, np.ndarray, Any, float, np.ndarray, Any]]:
    """Forward and loss for each batch: yields (index, batch size, out, y,
    loss, d loss/d out, mask). With stateful, each batch starts from the
    previous one's final state (reset when the batch size changes). With
    dist, each rank runs its rows of every batch; the batch size yielded is
    its share of the batch's rows and d loss/d out is weighted by its share
    (see rnnpy.distributed.Shard)."""
    state, last = None, -1
    for i, batch in enumerate(batches):
        x, y, lengths = _unpack(batch, where)
        n = _batch_size_of(x)
        if stateful and state is not None and last != n:
            state = None
        if lengths is None:   # an Embedding with a padding token gives them (masks the loss too)
            from .nn import padding_lengths

            lengths = padding_lengths(model, x)
        last = n
        shard = None
        if dist is not None:
            # a weighted loss (class_weight) divides by its positions' weights, not their count
            weights_of = getattr(loss_fn, "position_weights", None)
            shard = dist.shard(n, lengths, None if weights_of is None or y is None
                               else weights_of(y))
            x, y, lengths = shard.take(x, y, lengths)
        out, new_state = _forward(model, x, state if stateful else None, lengths)
        value, grad, mask = _loss_and_grad(loss_fn, out, y, lengths)
        if shard is not None:
            n, grad = shard.weigh(grad, mask, out.shape[1] if out.ndim > 1 else 1)
            value *= shard.loss_factor
        yield i, n, out, y, value, grad, mask
        if stateful:
            state = new_state


class _NoBar:
    """Stands in for a progress bar that is off (tqdm is not even imported)."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (where stderr is no terminal
    but a bar still shows)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None   # type: ignore[attr-defined]
    except Exception:   # pragma: no cover - an IPython without a shell
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _verbosity(verbose: Any, progress: Optional[bool]) -> int:
    """Keras's verbose: 0 silent, 1 a progress bar per epoch and a line at its
    end, 2 one line per epoch. "auto"/None: 1 on a terminal or in a notebook,
    else 2 (logs and files get a line per epoch). progress=True/False is 1/0."""
    if verbose is None or verbose == "auto":
        if progress is not None:
            return 1 if progress else 0
        return 1 if (_in_notebook() or sys.stderr.isatty()) else 2
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _progress(total: Optional[int], desc: str, verbosity: int) -> Any:
    if verbosity != 1:
        return _NoBar()
    try:
        if _in_notebook():
            try:   # the widget bar needs ipywidgets; without it tqdm.auto warns, so use text
                import ipywidgets  # noqa: F401

                from tqdm.auto import tqdm
            except ImportError:
                from tqdm.std import tqdm
        else:
            from tqdm.std import tqdm
    except ImportError:   # tqdm is a dependency; a broken install still gets the epoch lines
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def _epoch_line(epoch: int, last: int, seconds: float, logs: Dict[str, float]) -> str:
    shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
    return f"epoch {epoch}/{last}  {seconds:.2f}s  {shown}"


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
    from . import optim as _optim

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


def _rows(data: Any) -> Optional[int]:
    """The number of rows of array data (x, y[, lengths]), else None."""
    if isinstance(data, tuple) and len(data) in (2, 3) and not _is_batch_sequence(data):
        return int(np.shape(data[0])[0]) if np.ndim(data[0]) else None
    return None


def _run_arguments(loss: Any, metrics: Any, batch_size: int, clip_norm: Optional[float],
                   clip_value: Optional[float], shuffle: bool, stateful: bool,
                   steps_per_epoch: Optional[int], class_weight: Any, validation_split: Any,
                   train: Any, val: Any, n_batches: Optional[int]) -> Dict[str, Any]:
    """What determines the run besides the model, optimizer, schedule,
    callbacks and seed (fit's arguments and the data's size, when known), as
    JSON-able values: a resumed fit must be given the same."""
    def name(f: Any) -> Any:
        return f if isinstance(f, str) else getattr(f, "__qualname__", type(f).__name__)

    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    if class_weight is None:
        weights = None
    elif isinstance(class_weight, dict):
        weights = sorted([int(k), float(v)] for k, v in class_weight.items())
    else:
        weights = [float(v) for v in np.asarray(class_weight, dtype=np.float64).ravel()]
    return {
        "loss": name(loss), "metrics": [name(m) for m in metrics], "batch_size": int(batch_size),
        "clip_norm": clip_norm, "clip_value": clip_value, "shuffle": bool(shuffle),
        "stateful": bool(stateful), "steps_per_epoch": steps_per_epoch,
        "class_weight": weights, "validation_split": float(validation_split or 0.0),
        "validation": val is not None, "train_rows": _rows(train), "val_rows": _rows(val),
        "train_batches": n_batches,
    }


class Trainer:
    """State of one fit() call, visible to callbacks."""

    def __init__(self, model: Module, optimizer: Any, scheduler: Any = None,
                 callbacks: Sequence[Callback] = (), seed: Any = None,
                 history: Optional[History] = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.callbacks = list(callbacks)
        self.seed = seed
        self.history = history if history is not None else History()
        self.stop = False
        self.is_main = True   # False on the ranks of a distributed fit other than 0
        self.run: Optional[Dict[str, Any]] = None   # fit's arguments (_run_arguments)

    def training_state(self, epoch: int) -> Dict[str, Any]:
        """What a resumed fit needs besides the model and the optimizer's state,
        after epoch (0-based) is complete: epochs done, stop flag, shuffling
        seed, optimizer and schedule classes, the schedule's and every
        callback's state_dict, and the history."""
        sched = self.scheduler
        return {
            "epoch": epoch + 1,
            "stop": bool(self.stop),
            "seed": self.seed,
            "optimizer": type(self.optimizer).__name__,
            "scheduler": None if sched is None else {
                "class": type(sched).__name__,
                "state": sched.state_dict() if hasattr(sched, "state_dict") else {}},
            "callbacks": [{"class": type(cb).__name__,
                           "state": cb.state_dict() if hasattr(cb, "state_dict") else {}}
                          for cb in self.callbacks],
            "history": self.history.state_dict(),
            "run": self.run,
        }

    def check_restorable(self, extra: Dict[str, Any]) -> None:
        """Raises (naming the entry) unless the optimizer and the schedule would
        take back the state in extra (what ModelCheckpoint writes)."""
        if "optimizer" in extra and hasattr(self.optimizer, "check_state_dict"):
            self.optimizer.check_state_dict(extra["optimizer"])
        sched = extra["training"]["scheduler"]
        if sched is not None and hasattr(self.scheduler, "check_state_dict"):
            self.scheduler.check_state_dict(sched["state"])

    def resume(self, path: str) -> Dict[str, Any]:
        """Restores the checkpoint at path (written by ModelCheckpoint) into the
        model, optimizer, schedule, callbacks and history; returns its
        training state. Everything is checked before anything changes."""
        from .io import _load_with_extra, module_config

        path = file_path(path, "resume")
        where = f"resume: {path!r}"
        loaded, extra = _load_with_extra(path, "resume")
        if module_config(loaded) != module_config(self.model):
            raise ValueError(f"{where} holds a model configured as {module_config(loaded)!r:.300}, "
                             f"not as model {module_config(self.model)!r:.300}")
        state = extra.get("training") if isinstance(extra, dict) else None
        if not isinstance(state, dict) or "optimizer" not in extra:
            raise ValueError(f"{where} holds no training state (written by save(), not by "
                             "ModelCheckpoint); load the model with rnnpy.load instead")
        try:
            if self.seed is not None and self.seed != state["seed"]:
                raise ValueError(f"seed: the checkpoint's run shuffled with seed "
                                 f"{state['seed']!r}; pass that seed or None, got {self.seed!r}")
            if state["optimizer"] != type(self.optimizer).__name__:
                raise ValueError(f"optimizer: the checkpoint was written with "
                                 f"{state['optimizer']}, got {type(self.optimizer).__name__}")
            sched = state["scheduler"]
            have = None if self.scheduler is None else type(self.scheduler).__name__
            if (sched and sched["class"]) != have:
                raise ValueError(f"scheduler: the checkpoint was written with "
                                 f"{sched and sched['class']}, got {have}")
            saved_cbs = state["callbacks"]
            names = [type(cb).__name__ for cb in self.callbacks]
            if [c["class"] for c in saved_cbs] != names:
                raise ValueError(f"callbacks: the checkpoint was written with "
                                 f"{[c['class'] for c in saved_cbs]}, got {names}")
            self.check_restorable(extra)
            saved_run = state.get("run")   # None: written before runs were recorded
            if isinstance(saved_run, dict) and isinstance(self.run, dict):
                for key in list(self.run) + [k for k in saved_run if k not in self.run]:
                    was, now = saved_run.get(key), self.run.get(key)
                    if was != now:
                        raise ValueError(f"{key}: the checkpoint's run used {was!r:.100}, got "
                                         f"{now!r:.100}; resume with the arguments and data of "
                                         "the run that was interrupted")
            history = History()
            history.load_state_dict(state["history"])
            for cb, saved in zip(self.callbacks, saved_cbs):
                if hasattr(cb, "load_state_dict"):
                    cb.load_state_dict(saved["state"])
            if sched is not None and hasattr(self.scheduler, "load_state_dict"):
                self.scheduler.load_state_dict(sched["state"])
            if hasattr(self.optimizer, "load_state_dict"):
                self.optimizer.load_state_dict(extra["optimizer"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: malformed training state ({exc})") from None
        self.model.load_state_dict(loaded.state_dict())
        self.model.set_rng_state(loaded.rng_state())
        self.history.load_state_dict(history.state_dict())
        self.stop = bool(state.get("stop", False))
        return state


# -- NumPy's BLAS threads ----------------------------------------------------------
def _model_threads(model: Module) -> int:
    """Threads the model's recurrent layers use (the most of them), else 1."""
    layers = getattr(model, "recurrent_layers", None) or [model]
    counts = [getattr(m, "threads", None) for m in layers]
    return max((int(c) for c in counts
                if isinstance(c, (int, np.integer)) and not isinstance(c, bool)), default=1)


_CONTROLLER: List[ThreadpoolController] = []


def _blas_controller() -> ThreadpoolController:
    """One controller, made on first use: finding the loaded BLAS libraries
    costs ~0.15 ms, limiting through a known controller ~3 us (predict runs
    once per sampled character)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _blas_pinned(fn: Callable) -> Callable:
    """Runs fn(model, ...) with NumPy's BLAS limited to the model's thread count
    (Dense, losses and clipping run there), restored afterwards: a threads=1
    fit uses one core, and BLAS threads that busy-wait between calls do not
    stall the recurrent kernels' threads."""

    @functools.wraps(fn)
    def pinned(model: Module, *args: Any, **kwargs: Any) -> Any:
        with _blas_controller().limit(limits=_model_threads(model), user_api="blas"):
            return fn(model, *args, **kwargs)

    return pinned


def _split_off(train: Any, fraction: Any, val: Any) -> Tuple[Any, Any]:
    """(train, val) with the last ``fraction`` of the rows of array data as val."""
    if val is not None:
        raise TypeError("validation_split: given together with validation data; pass one")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"validation_split: expected a fraction in (0, 1), got {fraction!r}")
    if not (isinstance(train, tuple) and len(train) in (2, 3) and not _is_batch_sequence(train)):
        raise TypeError("validation_split: needs array data (x, y[, lengths]); with batches, "
                        "pass validation_data")
    arrays = [None if a is None else _as_column(a, f"train[{i}]") for i, a in enumerate(train)]
    n = len(arrays[0])
    cut = int(n * (1 - fraction))
    if cut < 1 or cut >= n:
        raise ValueError(f"validation_split: {fraction} of {n} rows leaves no training or no "
                         "validation rows")
    return (tuple(None if a is None else a[:cut] for a in arrays),
            tuple(None if a is None else a[cut:] for a in arrays))


class _KerasCallback(Callback):
    """Runs a callback written for Keras's hooks (epoch, logs) in rnnpy's loop."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb

    def on_train_begin(self, trainer: "Trainer") -> None:
        if hasattr(self.cb, "on_train_begin"):
            self.cb.on_train_begin({})

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Dict[str, float]) -> None:
        if hasattr(self.cb, "on_epoch_end"):
            self.cb.on_epoch_end(epoch, dict(logs))
        if getattr(getattr(self.cb, "model", None), "stop_training", False):
            trainer.stop = True

    def on_train_end(self, trainer: "Trainer") -> None:
        if hasattr(self.cb, "on_train_end"):
            self.cb.on_train_end({})


def _as_callback(cb: Any) -> Callback:
    """An rnnpy Callback as is; an object with Keras's hooks wrapped."""
    if isinstance(cb, Callback):
        return cb
    hook = getattr(cb, "on_epoch_end", None)
    if hook is not None:
        try:
            params = [p for p in inspect.signature(hook).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        if len(params) >= 3:   # rnnpy's hooks (trainer, epoch, logs) without subclassing
            return cb
    if any(hasattr(cb, h) for h in ("on_epoch_end", "on_train_begin", "on_train_end")):
        return _KerasCallback(cb)
    raise TypeError(f"callbacks: expected rnnpy Callbacks or objects with on_epoch_end(epoch, logs), "
                    f"got {type(cb).__name__}")


def _data_arg(data: Any, x: Any, y: Any, lengths: Any, where: str) -> Any:
    """The data argument from fit's/evaluate's forms: data alone, or Keras's
    x and y (and lengths) as separate arguments."""
    if x is not None:
        if data is not None:
            raise TypeError(f"x: given together with {where} (its other name); pass one")
        data = x
    if y is None:
        if lengths is not None:
            raise TypeError("lengths: expected together with y (fit(x, y, lengths=...)); with "
                            f"{where} as batches, put lengths in each batch (x, y, lengths)")
        if data is None:
            raise TypeError(f"{where}: expected data: arrays (x, y[, lengths]) or batches")
        return data
    return (data, y) if lengths is None else (data, y, lengths)


# -- the loop -----------------------------------------------------------------------
@_dist.abort_on_error
@_blas_pinned
def fit(
    model: Module,
    train: Any = None,
    y: Any = None,
    *,
    x: Any = None,
    lengths: Any = None,
    loss: Union[str, LossFn, None] = None,
    optimizer: Any = None,
    epochs: int = 1,
    batch_size: int = 32,
    val: Any = None,
    validation_data: Any = None,
    metrics: Optional[Sequence[Any]] = None,
    clip_norm: Optional[float] = None,
    clip_value: Optional[float] = None,
    stateful: bool = False,
    shuffle: bool = True,
    seed: Optional[int] = None,
    scheduler: Any = None,
    callbacks: Sequence[Callback] = (),
    progress: Optional[bool] = None,
    verbose: Any = "auto",
    initial_epoch: int = 0,
    steps_per_epoch: Optional[int] = None,
    class_weight: Any = None,
    validation_split: float = 0.0,
    resume: Optional[str] = None,
    distributed: bool = False,
) -> History:
    """Trains model; returns the History of per-epoch loss and metrics.

    train, val: arrays (x, y) or (x, y, lengths) (minibatched, shuffled unless
        stateful), a list, tuple or re-iterable object of such batches (e.g.
        rnnpy.data.SequenceBatches), a generator of them (steps_per_epoch
        batches per epoch, or all of it in one epoch), or a function returning
        an iterable of them for each epoch. Keras's form also works:
        fit(model, x, y, lengths=...) with x (B, T, ...) and y (B, ...) as
        arrays or lists; validation_data is val's Keras name.
    loss: a name ("softmax_cross_entropy", "binary_cross_entropy_with_logits",
        "mse") or a function (out, y[, mask=]) -> (loss, d loss/d out). With
        lengths and outputs over all steps (B, T, C), padded steps are masked.
        Defaults to what model.compile() set.
    optimizer: an rnnpy.optim optimizer over model, or a name ("adam", "sgd",
        "rmsprop", "adamw"); defaults to model.compile()'s.
    metrics: names ("accuracy", "top_<k>_accuracy", "mae", "mse") or callables
        fn(y_true, y_pred) -> float; default accuracy for classification
        losses, mae for mse.
    clip_norm / clip_value: global-norm or value clipping of the gradients.
    stateful: carry each batch's final state into the next (see module doc).
    scheduler: an rnnpy.optim schedule, stepped once per epoch (a plateau
        schedule gets val_loss, or loss without validation).
    verbose: 0 silent, 1 a progress bar (the notebook bar in Jupyter) and a
        line per epoch, 2 one line per epoch (loss, metrics, seconds) on
        stderr; "auto" is 1 on a terminal or in a notebook, else 2.
        progress=True/False is the older spelling of 1/0.
    class_weight: {class: weight} for the cross-entropy losses (Keras's).
    validation_split: the fraction of the rows of array data (the last rows,
        before shuffling, as Keras) held out as validation data.
    callbacks: rnnpy Callbacks, or objects with Keras's hooks
        (on_epoch_end(epoch, logs), on_train_begin(logs), on_train_end(logs)).
    seed: the shuffling order of each epoch depends only on (seed, epoch); with
        None a seed is drawn once for the run (and kept in checkpoints).
    resume: path of a checkpoint written by ModelCheckpoint: its parameters,
        generator states, optimizer, schedule, callbacks' states and history
        are restored into model, optimizer, scheduler and callbacks (built as
        for the interrupted run, same classes in the same order), and training
        continues from its epoch up to ``epochs`` in total; the returned
        History holds every epoch. Bit-identical to a run that never stopped.
    distributed: data-parallel over the ranks of an MPI job (run under
        ``mpiexec -n N``; needs ``pip install "rnnpy[mpi]"``). Every rank
        calls fit with the same model, data and arguments; rank 0's initial
        parameters and seed are broadcast, each batch of batch_size rows (the
        global batch) is split into contiguous blocks of rows, one per rank
        (with stateful, rank r keeps its rows of every batch and their state),
        and the gradients are summed across ranks, weighted by each rank's
        share of the batch, so that the step is the one a single process takes
        on that batch (to rounding). Losses must average over their unmasked
        positions, as rnnpy.losses do. Metrics, validation included, are
        reduced over ranks; only rank 0 shows progress and writes checkpoints;
        dropout draws per rank from (seed, epoch, rank). A checkpoint written by
        N ranks resumes on any number. An exception on one rank aborts the
        job (see rnnpy.distributed).
        The optimizer's hyperparameters (lr, betas, ...) come from the
        checkpoint. The other arguments that determine the run (loss,
        metrics, batch_size, clip_norm, clip_value, shuffle, stateful,
        steps_per_epoch, class_weight, validation_split, whether there is
        validation data, and the data's rows and batches when known) must be
        those of the interrupted run: a difference is a ValueError naming the
        argument; epochs, verbose, progress and callbacks' paths may differ.
    Raises FloatingPointError, naming the epoch and batch, when the loss is not finite.
    """
    _checks.model(model)
    compiled = getattr(model, "_compiled", None) or {}
    loss = compiled.get("loss") if loss is None else loss
    if loss is None:
        raise TypeError("loss: expected a loss name or function (or call model.compile first)")
    optimizer = compiled.get("optimizer") if optimizer is None else optimizer
    optimizer = resolve_optimizer(model, optimizer)
    _checks.scheduler_of(scheduler, optimizer)
    _checks.metrics(metrics)
    callbacks = _checks.sequence(callbacks, "callbacks")
    clip_norm = _checks.number(clip_norm, "clip_norm", 0.0, none=True)
    clip_value = _checks.number(clip_value, "clip_value", 0.0, none=True)
    stateful, shuffle = _checks.flag(stateful, "stateful"), _checks.flag(shuffle, "shuffle")
    _checks.verbosity(progress)
    initial_epoch = _checks.integer(initial_epoch, "initial_epoch", 0)
    _checks.path(resume, "resume", none=True)
    if class_weight is not None and not isinstance(class_weight, (dict, list, tuple, np.ndarray)):
        raise TypeError(f"class_weight: expected {{class: weight}} or a sequence of weights, got "
                        f"{type(class_weight).__name__}")
    if metrics is None:
        metrics = compiled.get("metrics")
    if metrics is None:
        metrics = _default_metrics(loss)
    train = _data_arg(train, x, y, lengths, "train")
    if val is not None and validation_data is not None:
        raise TypeError("validation_data: given together with val (its other name); pass one")
    val = validation_data if val is None else val
    if validation_split:
        train, val = _split_off(train, validation_split, val)
    callbacks = [_as_callback(cb) for cb in callbacks]
    level = _verbosity(verbose, progress)
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs: expected a non-negative integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    loss_fn = val_loss_fn = resolve_loss(loss)
    if class_weight is not None:   # training only, as Keras: validation stays unweighted
        loss_fn = _class_weighted(loss_fn, class_weight)
    _require_batch_first(model, "fit")
    from . import optim as _optim

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed: expected None or a non-negative integer, got {seed!r}")
    if resume is not None and initial_epoch:
        raise ValueError("initial_epoch: resume takes the epoch from the checkpoint; "
                         f"got initial_epoch={initial_epoch!r} too")
    _, known_batches = _batches(train, batch_size, shuffle and not stateful, seed, "train",
                                steps_per_epoch)   # checks the data first
    if val is not None:
        _batches(val, batch_size, False, None, "val")
    run = _run_arguments(loss, metrics, batch_size, clip_norm, clip_value, shuffle, stateful,
                         steps_per_epoch, class_weight, validation_split, train, val,
                         known_batches)
    dist = _dist.Session() if distributed else None
    if dist is not None and not dist.is_main:
        progress, level = False, 0
    history = History()
    trainer = Trainer(model, optimizer, scheduler, callbacks, seed, history)
    trainer.run = run
    found = model_lock(model)
    lock = found.mutex if found is not None else contextlib.nullcontext()
    trainer.is_main = dist is None or dist.is_main
    for cb in callbacks:
        cb.on_train_begin(trainer)
    # restored after on_train_begin, so that a callback resetting itself there
    # still continues from the checkpoint's state
    last = initial_epoch + epochs
    if resume is not None:
        state = trainer.resume(resume)
        seed = trainer.seed = state.get("seed")
        initial_epoch, last = int(state["epoch"]), epochs
    elif seed is None:
        # drawn once, kept in checkpoints, so that a resumed run shuffles the same way
        seed = trainer.seed = int(np.random.SeedSequence().entropy) % 2 ** 63
    else:
        seed = int(seed)
    if dist is not None:
        seed = trainer.seed = dist.start(model, seed)
    epoch_batches, n_batches = _batches(train, batch_size, shuffle and not stateful, seed, "train",
                                        steps_per_epoch)
    for epoch in range(initial_epoch, last):
        if trainer.stop:
            break
        model.train()
        if dist is not None:
            dist.begin_epoch(model, seed, epoch)
        meter = _Meter(metrics)
        started = time.perf_counter()
        bar = _progress(n_batches, f"epoch {epoch + 1}/{last}", level)
        batches = _run_batches(model, epoch_batches(epoch), loss_fn, stateful, "train", dist)
        try:
            while True:
                # one step, from forward to optimizer step, holds the model's lock:
                # another thread's call runs before or after it, never inside
                with lock:
                    item = next(batches, None)
                    if item is None:
                        break
                    i, n, out, y, value, grad, mask = item
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"loss is {value} at epoch {epoch + 1}, batch {i + 1}: training "
                            "stopped (lower the learning rate, clip gradients, or check the "
                            "data of that batch)")
                    model.zero_grad()
                    model.backward(grad)  # no dstate: no gradient crosses into earlier batches
                    if dist is not None:
                        dist.allreduce_gradients(model)
                    if clip_norm is not None:
                        _optim.clip_grad_norm(model, clip_norm)
                    if clip_value is not None:
                        _optim.clip_grad_value(model, clip_value)
                    optimizer.step()
                meter.add(n, value, out, y, mask)
                bar.update(1)
                if meter.count:   # a rank of a distributed fit may hold no rows yet
                    bar.set_postfix(loss=f"{meter.sums['loss'] / meter.count:.4f}")
        finally:
            bar.close()
        if dist is not None:
            dist.reduce_meter(meter)
        logs = meter.means("train")
        if val is not None:
            vlogs = evaluate(model, val, loss=val_loss_fn, metrics=metrics, batch_size=batch_size,
                             stateful=stateful, distributed=distributed)
            logs.update({f"val_{k}": v for k, v in vlogs.items()})
        if scheduler is not None:
            if hasattr(scheduler, "mode") and hasattr(scheduler, "patience"):
                scheduler.step(logs.get("val_loss", logs["loss"]))
            else:
                scheduler.step()
        history.append(epoch, logs)
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch, logs)
        for cb in callbacks:
            if hasattr(cb, "on_epoch_complete"):
                cb.on_epoch_complete(trainer, epoch, logs)
        if level:
            print(_epoch_line(epoch + 1, last, time.perf_counter() - started, logs),
                  file=sys.stderr, flush=True)
    for cb in callbacks:
        cb.on_train_end(trainer)
    return history


@_dist.abort_on_error
@_blas_pinned
@holds_model_lock
def evaluate(
    model: Module,
    data: Any = None,
    y: Any = None,
    *,
    x: Any = None,
    lengths: Any = None,
    loss: Union[str, LossFn, None] = None,
    metrics: Optional[Sequence[Any]] = None,
    batch_size: int = 256,
    stateful: bool = False,
    verbose: Any = 0,
    steps: Optional[int] = None,
    distributed: bool = False,
) -> Dict[str, float]:
    """Mean loss and metrics over data (same forms as fit's, including Keras's
    evaluate(model, x, y)), in evaluation mode. loss and metrics default to
    model.compile()'s. verbose is accepted for Keras's sake; nothing is shown.
    With distributed, each rank runs its rows of every batch and the means
    are over all of them, on every rank (see fit)."""
    _checks.model(model)
    _checks.integer(batch_size, "batch_size", 1)
    stateful = _checks.flag(stateful, "stateful")
    _checks.integer(steps, "steps", 1, none=True)
    _checks.metrics(metrics)
    compiled = getattr(model, "_compiled", None) or {}
    loss = compiled.get("loss") if loss is None else loss
    if loss is None:
        raise TypeError("loss: expected a loss name or function (or call model.compile first)")
    if metrics is None:
        metrics = compiled.get("metrics")
    if metrics is None:
        metrics = _default_metrics(loss)
    _verbosity(verbose, None)
    data = _data_arg(data, x, y, lengths, "data")
    loss_fn = resolve_loss(loss)
    _require_batch_first(model, "evaluate")
    epoch_batches, _ = _batches(data, batch_size, False, None, "data", steps)
    dist = _dist.Session() if distributed else None
    was_training = model.training
    model.eval()
    try:
        meter = _Meter(metrics)
        for _, n, out, y, value, _, mask in _run_batches(model, epoch_batches(0), loss_fn, stateful,
                                                         "data", dist):
            meter.add(n, value, out, y, mask)
        if dist is not None:
            dist.reduce_meter(meter)
        return meter.means("data")
    finally:
        model.train(was_training)


@_dist.abort_on_error
@_blas_pinned
@holds_model_lock
def predict(model: Module, x: Any, *, lengths: Any = None, batch_size: Optional[int] = None,
            verbose: Any = 0, distributed: bool = False) -> np.ndarray:
    """Outputs of model on x (B, T, ...) in evaluation mode, in batches of
    batch_size rows (all at once by default); x and lengths may be arrays or
    lists. verbose is accepted for Keras's sake; nothing is shown. With
    distributed, each rank runs its rows of every batch and every rank returns
    all the outputs, in order."""
    _checks.model(model)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    _verbosity(verbose, None)
    if not isinstance(x, np.ndarray) and isinstance(x, (list, tuple)):
        x = _as_column(x, "x")
    _require_batch_first(model, "predict")
    if lengths is not None and np.shape(lengths) != (_batch_size_of(x),):
        raise ValueError(f"lengths: expected shape (B,) = ({_batch_size_of(x)},), got "
                         f"{np.shape(lengths)}")
    was_training = model.training
    model.eval()
    try:
        n = _batch_size_of(x)
        step = n if batch_size is None else int(batch_size)
        dist = _dist.Session() if distributed else None
        outs, bounds = [], []
        for s in range(0, n, step):
            xb = np.asarray(x)[s:s + step]
            lb = None if lengths is None else np.asarray(lengths)[s:s + step]
            if dist is not None:
                shard = dist.shard(len(xb), lb)
                bounds.append(shard.bounds)
                xb, _, lb = shard.take(xb, None, lb)
            outs.append(_forward(model, xb, None, lb)[0])
        if dist is not None:
            return dist.gather_rows(outs, bounds)
        return np.concatenate(outs, axis=0)
    finally:
        model.train(was_training)
