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
import math
import numbers
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _validate as _checks
from ..data.batches import _as_column, _batch_size_of, _batches, _is_batch_sequence
from ..nn.grad_mode import no_grad
from ..nn.locking import holds_model_lock, model_lock
from ..nn.module import Module
from . import distributed as _dist
from .callbacks import Callback, History, _as_callback
from .metrics import _Meter, _default_metrics
from .progress import _epoch_line, _progress, _verbosity
from .resolve import LossFn, _class_weighted, resolve_loss, resolve_optimizer
from .trainer import (Trainer, _blas_pinned, _forward, _require_batch_first, _run_arguments,
                      _run_batches)


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
    from .. import optim as _optim

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
        with no_grad():   # nothing is kept for backward
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
    x = _as_column(x, "x")
    if x.shape[0] == 0:
        raise ValueError(f"x: expected a batch of at least one row (B >= 1), got shape {x.shape}")
    _require_batch_first(model, "predict")
    if lengths is not None:
        lengths = _checks.array(lengths, "lengths")
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"lengths: expected shape (B,) = ({x.shape[0]},), got "
                             f"{lengths.shape}")
    was_training = model.training
    model.eval()
    try:
        n = _batch_size_of(x)
        step = n if batch_size is None else int(batch_size)
        dist = _dist.Session() if distributed else None
        outs, bounds = [], []
        for s in range(0, n, step):
            xb = x[s:s + step]
            lb = None if lengths is None else lengths[s:s + step]
            if dist is not None:
                shard = dist.shard(len(xb), lb)
                bounds.append(shard.bounds)
                xb, _, lb = shard.take(xb, None, lb)
            with no_grad():   # nothing is kept for backward
                outs.append(_forward(model, xb, None, lb)[0])
        if dist is not None:
            return dist.gather_rows(outs, bounds)
        return np.concatenate(outs, axis=0)
    finally:
        model.train(was_training)
