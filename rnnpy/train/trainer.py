"""Trainer: one training step (forward, loss, backward, clipping, optimizer step)
and the epoch over batches that fit and evaluate share, with state carried
between windows when stateful, BLAS pinned to one thread while it runs.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from threadpoolctl import ThreadpoolController

from .._validate import array, file_path
from ..data.batches import _batch_size_of, _is_batch_sequence, _unpack, lengths_mask
from ..nn.module import Module
from . import distributed as _dist
from .callbacks import Callback, History
from .resolve import LossFn


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
        x = array(x, "x")   # batches given as a sequence reach here unconverted
        n = _batch_size_of(x)
        if stateful and state is not None and last != n:
            state = None
        if lengths is None:   # an Embedding with a padding token gives them (masks the loss too)
            from ..nn.sequential import padding_lengths

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
        from ..io.checkpoint import _load_with_extra
        from ..io.config import module_config

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


def blas_threads(model: Module) -> Any:
    """A context manager holding NumPy's BLAS to the model's thread count
    (Dense, losses and clipping run there), restored on exit: a threads=1
    loop uses one core, and BLAS threads that busy-wait between calls do not
    stall the recurrent kernels' threads."""
    return _blas_controller().limit(limits=_model_threads(model), user_api="blas")


def _blas_pinned(fn: Callable) -> Callable:
    """Runs fn(model, ...) inside blas_threads(model)."""

    @functools.wraps(fn)
    def pinned(model: Module, *args: Any, **kwargs: Any) -> Any:
        with blas_threads(model):
            return fn(model, *args, **kwargs)

    return pinned
