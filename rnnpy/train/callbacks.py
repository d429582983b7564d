"""The training loop's callbacks: History (what fit returns), the Callback base,
EarlyStopping and ModelCheckpoint, and Keras-style callables wrapped as callbacks.
"""
from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from .. import _validate as _checks
from .._validate import boolean, choice, non_negative_int, real, writable_file_path
from ..nn.locking import run_locked

if TYPE_CHECKING:   # annotations only: the trainer calls the callbacks
    from .trainer import Trainer


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
        from ..io.checkpoint import save
        from ..io.codec import _param_problem

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
