"""Sequence classification on the temporal-order task (see temporal_order.py).

The course's setup: a one-layer recurrent net with 4 hidden units reads the
one-hot sequence, a dense layer classifies its last output into Q, R, S, U;
RMSprop with lr 1e-3, batches of 32, an epoch of 31 fresh batches. An LSTM
solves the easy level in about 10 epochs, a relu RNN reaches about 50% then and
100% after about 100.

Results depend on the initialisation: over seeds 0-9 the LSTM reaches 0.61-1.00
after 10 epochs (the default seed 3 gives 1.00) and the relu RNN 0.19-0.63.

Sequences are padded in front (the course's way), so the last step is every
sequence's end; with padding="post" the padding comes last and the model reads
``lengths`` instead, so padding cannot leak into the state.

``run`` trains the course's way for a fixed number of epochs. ``solve`` trains
with a level's preset (PRESETS) until the level is solved, accuracy >= 0.99 on
fresh sequences, and reports the training sequences it took: easy keeps the
course's settings; from normal to nightmare an LSTM of 16 units with the chrono
initialisation (t_max = the level's longest sequence), Adam 1e-2, batches of 8
and gradient-norm clipping at 1 solves every level in about 1,500-3,500
sequences (README), where the 1997 LSTM needed 31,390 on hard and the course's
settings stay at chance there.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Dict, Optional

import numpy as np

from .._validate import positive_int
from ..nn.layers import Dense, LastStep
from ..nn.sequential import Sequential
from ..train import distributed as _dist
from ..train.clipping import clip_grad_norm
from ..train.loop import evaluate, fit, predict
from ..train.losses import softmax_cross_entropy
from ..train.optimizers import Adam, RMSprop
from .common import make_recurrent
from .temporal_order import LEVELS
from .temporal_order import TemporalOrder


def build_model(cell: str = "lstm", hidden: int = 4, layers: int = 1, nonlinearity: str = "relu",
                seed: Optional[int] = 0, dtype: Any = "float32", **layer_kw: Any) -> Sequential:
    """recurrent (8 -> hidden) -> last step -> Dense(hidden, 4); layer_kw (threads,
    init, t_max, forget_bias, recurrent_init) go to the recurrent layer."""
    rec = make_recurrent(cell, TemporalOrder.num_symbols, hidden, layers, nonlinearity=nonlinearity,
                         dtype=dtype, seed=seed, **layer_kw)
    dense_seed = None if seed is None else seed + 1
    return Sequential(rec, LastStep(dtype=dtype), Dense(hidden, TemporalOrder.num_classes,
                                                       dtype=dtype, seed=dense_seed))


def run(cell: str = "lstm", hidden: int = 4, layers: int = 1, difficulty: str = "easy",
        epochs: int = 10, batch_size: int = 32, lr: float = 1e-3, seed: int = 3,
        nonlinearity: str = "relu", padding: str = "pre", test_batches: int = 10,
        batches_per_epoch: Optional[int] = None, progress: Optional[bool] = None,
        distributed: bool = False, compute_dtype: Optional[str] = None) -> Dict[str, Any]:
    """Trains on fresh batches every epoch; returns test accuracy and loss (on
    test_batches batches drawn from another seed), the history and the model.
    distributed: over the ranks of an MPI job, each taking its rows of every
    batch (see rnnpy.fit).
    compute_dtype: of the recurrent layer (None, "float32", "bfloat16", "auto"; see rnnpy.LSTM)."""
    gen = TemporalOrder(difficulty, batch_size, seed=seed, padding=padding)
    x_test, y_test, len_test = TemporalOrder(difficulty, batch_size, seed=seed + 10_000,
                                             padding=padding).dataset(test_batches)
    use_lengths = padding == "post"
    n_batches = batches_per_epoch or len(gen)

    def epoch_batches():
        for _ in range(n_batches):
            x, y, lengths = gen.batch()
            yield (x, y, lengths) if use_lengths else (x, y)

    model = build_model(cell, hidden, layers, nonlinearity, seed, compute_dtype=compute_dtype)
    test = (x_test, y_test, len_test) if use_lengths else (x_test, y_test)
    history = fit(model, epoch_batches, loss="softmax_cross_entropy", optimizer=RMSprop(model, lr=lr),
                  epochs=epochs, batch_size=batch_size, val=test, progress=progress,
                  distributed=distributed)
    final = evaluate(model, test, loss="softmax_cross_entropy", distributed=distributed)
    return {"demo": "seq-classification", "cell": cell, "difficulty": difficulty, "epochs": epochs,
            "compute_dtype": model.modules[0].compute_dtype,
            "test_accuracy": final["accuracy"], "test_loss": final["loss"],
            "history": history.history, "model": model,
            "sequences_seen": epochs * n_batches * batch_size}


# Settings that solve each level (solve() and the CLI's --difficulty). easy keeps
# the course's (4 units, RMSprop 1e-3, batches of 32, default initialisation);
# the longer levels use the chrono initialisation with t_max = the level's longest
# sequence, Adam 1e-2, batches of 8 and gradient-norm clipping at 1.
# epochs caps the training at epochs * ~1000 sequences (an epoch is 1000 // batch_size batches).
PRESETS: Dict[str, Dict[str, Any]] = {
    "easy": dict(cell="lstm", hidden=4, optimizer="rmsprop", lr=1e-3, batch_size=32,
                 init="uniform", clip=None, epochs=100),
    "normal": dict(cell="lstm", hidden=16, optimizer="adam", lr=1e-2, batch_size=8,
                   init="chrono", clip=1.0, epochs=20),
    "moderate": dict(cell="lstm", hidden=16, optimizer="adam", lr=1e-2, batch_size=8,
                     init="chrono", clip=1.0, epochs=20),
    "hard": dict(cell="lstm", hidden=16, optimizer="adam", lr=1e-2, batch_size=8,
                 init="chrono", clip=1.0, epochs=31),
    "nightmare": dict(cell="lstm", hidden=16, optimizer="adam", lr=1e-2, batch_size=8,
                      init="chrono", clip=1.0, epochs=20),
}

# --init choices: how the recurrent layer starts (see rnnpy.LSTM)
INIT_CHOICES = ("uniform", "chrono", "forget-bias", "orthogonal", "chrono-orthogonal")


def init_options(init: str, difficulty: str) -> Dict[str, Any]:
    """The layer keywords of an --init choice; chrono's t_max is the level's
    longest sequence (its exclusive length bound)."""
    if init not in INIT_CHOICES:
        raise ValueError(f"init: expected one of {INIT_CHOICES}, got {init!r}")
    kw: Dict[str, Any] = {}
    if init.startswith("chrono"):
        kw.update(init="chrono", t_max=float(LEVELS[difficulty].length[1]))
    if init == "forget-bias":
        kw["forget_bias"] = 1.0
    if init.endswith("orthogonal"):
        kw["recurrent_init"] = "orthogonal"
    return kw


def preset(difficulty: str, **overrides: Any) -> Dict[str, Any]:
    """The settings solve() uses at a level, with overrides (None means keep)."""
    if difficulty not in PRESETS:
        raise ValueError(f"difficulty: expected one of {', '.join(repr(k) for k in PRESETS)}, "
                         f"got {difficulty!r}")
    settings = dict(PRESETS[difficulty])
    for key, value in overrides.items():
        if key not in settings:
            raise TypeError(f"preset: unknown setting {key!r}; have {sorted(settings)}")
        if value is not None:
            settings[key] = value
    return settings


@_dist.abort_on_error
def solve(difficulty: str = "hard", *, cell: Optional[str] = None, hidden: Optional[int] = None,
          lr: Optional[float] = None, batch_size: Optional[int] = None, init: Optional[str] = None,
          epochs: Optional[int] = None, optimizer: Optional[str] = None, clip: Optional[float] = None,
          layers: int = 1, seed: int = 0, nonlinearity: str = "relu", padding: str = "pre",
          target: float = 0.99, window: int = 256, test_size: int = 1000, threads: int = 1,
          progress: Optional[bool] = None, distributed: bool = False,
          compute_dtype: Optional[str] = None) -> Dict[str, Any]:
    """Trains on fresh batches until the level is solved, with PRESETS[difficulty]
    and any setting given here in its place.

    Solved means: accuracy >= target on the last ``window`` training sequences,
    then confirmed on ``test_size`` fresh sequences from another random stream
    (a new set at each check; the 1997 paper stopped on its last 2000 training
    sequences). Training stops then, or after ``epochs`` epochs of
    1000 // batch_size batches. Returns the settings, ``solved``,
    ``sequences_seen`` (training sequences until solved or stopped),
    ``test_accuracy`` (of the last check), ``checks``, the ``history`` of
    training loss and accuracy per epoch (the last one partial when solved
    mid-epoch) and the model.
    threads: of the recurrent layer (1 leaves the other core to other work).
    compute_dtype: of the recurrent layer: None (its dtype), "float32", "bfloat16"
        (products on bfloat16 operands; AMX-BF16 or AVX512-BF16) or "auto"
        (bfloat16 where the CPU has it); the result's compute_dtype is what ran.
    A plain RNN (cell="rnn") at a level whose preset is chrono gets the
    orthogonal initialisation instead, unless init is given.
    distributed: over the ranks of an MPI job (see rnnpy.fit): every rank
        draws the same global batches, trains on its rows of each, and the
        gradients are summed across ranks weighted by their rows; the right
        answers and losses of every row are gathered on every rank, so the
        window, the checks (each rank predicting its rows of the test set)
        and the decision to stop are the same everywhere, and the run takes
        the steps one process takes (to rounding).
    """
    s = preset(difficulty, cell=cell, hidden=hidden, lr=lr, batch_size=batch_size, init=init,
               epochs=epochs, optimizer=optimizer, clip=clip)
    if s["cell"] == "rnn" and init is None and s["init"] in ("chrono", "forget-bias"):
        s["init"] = "orthogonal"   # the gate-bias inits need gates; a plain RNN gets this
    if s["optimizer"] not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer: expected 'adam' or 'rmsprop', got {s['optimizer']!r}")
    if not 0 < target <= 1:
        raise ValueError(f"target: expected an accuracy in (0, 1], got {target!r}")
    e = s["epochs"]
    if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0:
        raise ValueError(f"epochs: expected a non-negative int, got {e!r}")
    window, test_size = positive_int(window, "window"), positive_int(test_size, "test_size")
    layer_kw = init_options(s["init"], difficulty)
    gen = TemporalOrder(difficulty, s["batch_size"], seed=seed, padding=padding)
    test_gen = TemporalOrder(difficulty, 250, seed=seed + 10_000, padding=padding)
    use_lengths = padding == "post"
    model = build_model(s["cell"], s["hidden"], layers, nonlinearity, seed, threads=threads,
                        compute_dtype=compute_dtype, **layer_kw)
    dist = _dist.Session() if distributed else None
    if dist is not None:
        dist.start(model, seed)   # rank 0's parameters everywhere
        if not dist.is_main:
            progress = False
    opt_cls = Adam if s["optimizer"] == "adam" else RMSprop
    opt = opt_cls(model, lr=s["lr"])
    total = s["epochs"] * len(gen)
    recent: deque = deque(maxlen=window)
    seen, checks, test_acc, solved = 0, [], float("nan"), False
    history: Dict[str, list] = {"loss": [], "accuracy": []}
    sums = [0.0, 0.0, 0]   # this epoch's loss and right answers (summed), sequences

    def close_epoch() -> None:
        if sums[2]:
            history["loss"].append(sums[0] / sums[2])
            history["accuracy"].append(sums[1] / sums[2])
        sums[:] = [0.0, 0.0, 0]
    from ..train.progress import _progress  # the loop's progress bar

    def check() -> float:
        n = math.ceil(test_size / test_gen.batch_size)
        right = 0
        for _ in range(n):
            x, y, lengths = test_gen.batch()
            out = predict(model, x, lengths=lengths if use_lengths else None,
                          distributed=distributed)
            right += int((out.argmax(axis=-1) == y).sum())
        return right / (n * test_gen.batch_size)

    bar = _progress(total, f"seq-classification {difficulty}", progress)
    model.train()
    try:
        for step in range(total):
            if step and step % len(gen) == 0:
                close_epoch()
            x, y, lengths = gen.batch()
            if not use_lengths:
                lengths = None
            shard = None
            if dist is not None:   # this rank's rows of the global batch
                shard = dist.shard(len(y), lengths)
                x, y_rows, lengths = shard.take(x, y, lengths)
            else:
                y_rows = y
            out, _ = model.forward(x, None, lengths)
            loss, grad = softmax_cross_entropy(out, y_rows)
            hits = out.argmax(axis=-1) == y_rows
            if shard is not None:
                share, grad = shard.weigh(grad, None, 1)
                # every row's answer and every rank's weighted loss, on every rank
                everyone = dist.allgather((hits[:0] if shard.empty else hits,
                                           loss * share / len(y)))
                hits = np.concatenate([h for h, _ in everyone])
                loss = math.fsum(v for _, v in everyone)
            model.zero_grad()
            model.backward(grad)
            if dist is not None:
                dist.allreduce_gradients(model)
            if s["clip"] is not None:
                clip_grad_norm(model, s["clip"])
            opt.step()
            seen += len(y)
            right = hits.tolist()
            recent.extend(right)
            sums[0] += loss * len(y)
            sums[1] += sum(right)
            sums[2] += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{np.mean(recent):.3f}")
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} after {seen} sequences: training "
                                         "stopped (lower the learning rate or clip gradients)")
            if len(recent) == window and np.mean(recent) >= target:
                test_acc = check()
                model.train()
                checks.append({"sequences_seen": seen, "test_accuracy": test_acc})
                if test_acc >= target:
                    solved = True
                    break
                recent.clear()   # gather a new window before checking again
    finally:
        bar.close()
    close_epoch()   # the last, possibly partial, epoch
    if not solved:
        test_acc = check()
        checks.append({"sequences_seen": seen, "test_accuracy": test_acc})
    return {"demo": "seq-classification", "difficulty": difficulty, **s, "layers": layers,
            "seed": seed, "padding": padding, "layer_options": layer_kw,
            "compute_dtype": model.modules[0].compute_dtype, "solved": solved,
            "sequences_seen": seen, "test_accuracy": test_acc, "checks": checks,
            "history": history, "model": model}
