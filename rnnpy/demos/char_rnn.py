"""char-rnn: a character-level language model on any text, and sampling from it.

The text is split into a training part and a contiguous validation tail,
encoded with a CharVocab, cut into batch_size rows and walked in windows of
seq_len with the next character as the target (rnnpy.data); the LSTM state is
carried from window to window (truncated BPTT). The model is Embedding ->
LSTM (layers, dropout on their outputs) -> Dense to the vocabulary at every step,
trained with softmax cross-entropy and Adam, gradients clipped to norm 5.

Without a text, the demo trains on the opening chapters of Anna Karenina
(Constance Garnett's translation, public domain) shipped with rnnpy, cut at
60,000 characters; a given text is used whole unless max_chars says otherwise.

With ``minutes`` the training runs for that much wall-clock time instead of a
number of epochs, saving a checkpoint (model, optimizer state, vocabulary and
the position in the text) at every epoch's end, every checkpoint_every seconds,
at the end and on an interrupt (not after a non-finite loss, which would spoil
it); ``resume=True`` continues from it. A budgeted run has its own defaults
(BUDGET_DEFAULTS: one wider layer, longer windows and dropout, where the quick
epoch demo has two narrow layers; chosen by measuring what 5 minutes reach)
and its learning rate follows the clock: a short warm-up, then a cosine decay
to ``final_lr`` times the peak at the deadline (``schedule="constant"`` keeps it
fixed). A resumed run is a new budget: its schedule starts again (a warm
restart) from the checkpoint's weights and optimizer moments.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from typing import Any, Dict, Optional

import numpy as np

from .._validate import choice, positive_int, writable_file_path
from ..data.arrays import split_sequence
from ..data.vocab import CharVocab
from ..io.checkpoint import _load_with_extra, save
from ..nn.layers import Dense, Dropout, Embedding
from ..nn.sequential import Sequential
from ..train import distributed as _dist
from ..train.clipping import clip_grad_norm
from ..train.loop import evaluate, fit
from ..train.losses import softmax_cross_entropy
from ..train.optimizers import Adam
from ..train.progress import _progress
from ..train.trainer import blas_threads
from .common import make_recurrent
from .text import char_batches, load_text

DEFAULT_TEXT = os.path.join(os.path.dirname(__file__), "data", "anna_karenina_part1.txt")
SAMPLE_MAX_CHARS = 60_000   # the shipped sample's cut; a given text is used whole
VAL_ROWS = 128              # rows of the validation pass of a time-budgeted run

# The sizes and rates a run uses when the caller leaves them out (None): one
# set for a number of epochs (the quick demo on the shipped sample), one for a
# wall-clock budget on a whole text (see the module docstring and README).
EPOCH_DEFAULTS: Dict[str, Any] = {"hidden": 128, "layers": 2, "embedding": 32, "dropout": 0.0,
                                  "batch_size": 16, "seq_len": 64, "lr": 3e-3}
BUDGET_DEFAULTS: Dict[str, Any] = {"hidden": 256, "layers": 1, "embedding": 32, "dropout": 0.2,
                                   "batch_size": 16, "seq_len": 100, "lr": 3e-3}
SCHEDULES = ("cosine", "constant")
WARMUP = 0.02       # fraction of a budget over which the learning rate ramps up


def budget_lr(lr: float, fraction: float, schedule: str = "cosine", final_lr: float = 0.05) -> float:
    """The learning rate at ``fraction`` (0..1) of a time budget: for "cosine",
    lr * min(1, fraction / WARMUP) * (final_lr + (1 - final_lr) * (1 + cos(pi * fraction)) / 2),
    which peaks at lr after the warm-up and ends at lr * final_lr; for
    "constant", lr throughout."""
    if schedule == "constant":
        return lr
    f = min(max(fraction, 0.0), 1.0)
    return lr * max(min(1.0, f / WARMUP), 1e-3) * (final_lr + (1.0 - final_lr) * 0.5 * (1.0 + math.cos(math.pi * f)))


def unigram_entropy(ids: np.ndarray, size: int) -> float:
    """Entropy of the character frequencies, in nats: the loss of a model that
    ignores context, which a char-rnn must beat."""
    p = np.bincount(np.asarray(ids), minlength=size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def build_model(vocab_size: int, hidden: int = 128, layers: int = 2, embedding: int = 32,
                cell: str = "lstm", dropout: float = 0.0, seed: Optional[int] = 0,
                dtype: Any = "float32", compute_dtype: Optional[str] = None) -> Sequential:
    """Embedding(V, E) -> recurrent (E -> H) -> Dense(H, V) at every step.

    compute_dtype: of the recurrent layers (None, "float32", "bfloat16", "auto").

    dropout: on every recurrent layer's output during training, as in
    Karpathy's char-rnn: between the layers and, when positive, on the top
    layer's output before the Dense (a Dropout module there)."""
    s = (lambda k: None) if seed is None else (lambda k: seed + k)
    top = [Dropout(dropout, dtype=dtype, seed=s(3))] if dropout > 0 else []
    return Sequential(Embedding(vocab_size, embedding, dtype=dtype, seed=s(0)),
                      make_recurrent(cell, embedding, hidden, layers, dropout=dropout, dtype=dtype,
                                     seed=s(1), compute_dtype=compute_dtype),
                      *top, Dense(hidden, vocab_size, dtype=dtype, seed=s(2)))


def sample(model: Sequential, vocab: CharVocab, length: int = 200, prime: str = "The ",
           temperature: float = 1.0, top_k: Optional[int] = None, seed: Optional[int] = None) -> str:
    """prime followed by ``length`` characters drawn one at a time from
    softmax(logits / temperature) (restricted to the top_k most likely when
    given), carrying the state from character to character."""
    if not prime:
        raise ValueError("prime: expected at least one character")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    rng = np.random.default_rng(seed)
    was_training = model.training
    model.eval()
    try:
        ids = vocab.encode(prime)
        logits, state = model.forward(ids[None, :])
        out = [prime]
        for _ in range(int(length)):
            z = logits[0, -1].astype(np.float64) / temperature
            if top_k is not None and top_k < z.size:
                z[np.argsort(z)[:-top_k]] = -np.inf
            p = np.exp(z - z.max())
            p /= p.sum()
            nxt = int(rng.choice(p.size, p=p))
            out.append(vocab.decode([nxt]))
            logits, state = model.forward(np.array([[nxt]]), state)
        return "".join(out)
    finally:
        model.train(was_training)


def run(text: Optional[str] = None, max_chars: Optional[int] = None, cell: str = "lstm",
        hidden: Optional[int] = None, layers: Optional[int] = None,
        embedding: Optional[int] = None, dropout: Optional[float] = None, epochs: int = 3,
        batch_size: Optional[int] = None, seq_len: Optional[int] = None,
        lr: Optional[float] = None, clip: float = 5.0, val_fraction: float = 0.1,
        sample_length: int = 200, temperature: float = 0.8, prime: str = "The ", seed: int = 0,
        progress: Optional[bool] = None, minutes: Optional[float] = None,
        checkpoint: Optional[str] = None, resume: bool = False,
        checkpoint_every: float = 60.0, distributed: bool = False,
        schedule: str = "cosine", final_lr: float = 0.05,
        compute_dtype: Optional[str] = None) -> Dict[str, Any]:
    """Trains on text (a path; the shipped sample by default) and samples from
    the model; returns val_loss (nats/char on the held-out tail of the text),
    the unigram entropy it must beat, a sample, the history and the model.

    hidden, layers, embedding, dropout, batch_size, seq_len, lr: None takes
        EPOCH_DEFAULTS, or BUDGET_DEFAULTS with minutes.
    max_chars: use the first max_chars characters; None means the whole file
        for a given text and 60,000 for the shipped sample.
    minutes: train for this much wall-clock time (epochs is then ignored) and
        keep a checkpoint at ``checkpoint`` (see the module docstring); the
        validation pass over the tail (``val_seconds``) and the sample follow it.
    resume: continue from ``checkpoint``: its model (the width options here
        are ignored), optimizer state, vocabulary and position in the text,
        for another ``minutes``.
    distributed: over the ranks of an MPI job, each taking its rows of every
        batch (see rnnpy.fit); with minutes, rank 0's clock decides when every
        rank stops and saves, and only rank 0 writes the checkpoint.
    schedule, final_lr: with minutes, the learning rate over the budget
        ("cosine": warm-up, then decay to lr * final_lr; "constant"); see budget_lr.
    compute_dtype: of the recurrent layers: None (float32; a resumed run keeps
        the checkpoint's), "float32", "bfloat16" (products on bfloat16 operands,
        AMX-BF16 or AVX512-BF16) or "auto" (bfloat16 where the CPU has it); the
        result's compute_dtype is what ran.
    """
    given = {"hidden": hidden, "layers": layers, "embedding": embedding, "dropout": dropout,
             "batch_size": batch_size, "seq_len": seq_len, "lr": lr}
    defaults = BUDGET_DEFAULTS if minutes is not None else EPOCH_DEFAULTS
    opts = {k: defaults[k] if v is None else v for k, v in given.items()}
    hidden, layers, embedding, dropout = opts["hidden"], opts["layers"], opts["embedding"], opts["dropout"]
    batch_size, seq_len, lr = opts["batch_size"], opts["seq_len"], opts["lr"]
    choice(schedule, "schedule", SCHEDULES)
    if isinstance(final_lr, bool) or not isinstance(final_lr, (int, float)) \
            or not 0 <= final_lr <= 1:
        raise ValueError(f"final_lr: expected a fraction in [0, 1] of lr, got {final_lr!r}")
    if max_chars is None and not text:
        max_chars = SAMPLE_MAX_CHARS
    corpus = load_text(text or DEFAULT_TEXT, max_chars=max_chars or None)
    if minutes is None and (resume or checkpoint):
        raise ValueError("minutes: checkpoint and resume go with a time budget; give minutes")
    if minutes is not None:
        return _run_for(corpus, text or DEFAULT_TEXT, minutes=minutes, checkpoint=checkpoint,
                        resume=resume, checkpoint_every=checkpoint_every, cell=cell, hidden=hidden,
                        layers=layers, embedding=embedding, dropout=dropout, batch_size=batch_size,
                        seq_len=seq_len, lr=lr, clip=clip, val_fraction=val_fraction,
                        sample_length=sample_length, temperature=temperature, prime=prime,
                        seed=seed, progress=progress, distributed=distributed,
                        schedule=schedule, final_lr=float(final_lr),
                        compute_dtype=compute_dtype)
    vocab = CharVocab(corpus)
    _check_prime(vocab, prime)
    ids = vocab.encode(corpus)
    train_ids, val_ids = split_sequence(ids, val_fraction)
    train = char_batches(train_ids, batch_size, seq_len)
    val_rows = max(1, min(batch_size, len(val_ids) // (seq_len + 1)))
    val = char_batches(val_ids, val_rows, seq_len)
    model = build_model(vocab.size, hidden, layers, embedding, cell, dropout, seed,
                        compute_dtype=compute_dtype)
    history = fit(model, lambda: iter(train), loss="softmax_cross_entropy",
                  optimizer=Adam(model, lr=lr), epochs=epochs, clip_norm=clip, stateful=True,
                  val=lambda: iter(val), metrics=(), progress=progress, distributed=distributed)
    val_loss = history["val_loss"][-1] if epochs else evaluate(
        model, lambda: iter(val), loss="softmax_cross_entropy", metrics=(), stateful=True,
        distributed=distributed)["loss"]
    text_out = sample(model, vocab, sample_length, prime, temperature, seed=seed)
    return {"demo": "char-rnn", "cell": cell, "compute_dtype": _compute_dtype(model),
            "val_loss": val_loss,
            "unigram_entropy": unigram_entropy(train_ids, vocab.size), "sample": text_out,
            "history": history.history, "model": model, "vocab": vocab,
            "text": text or DEFAULT_TEXT, "chars": len(corpus)}


def _compute_dtype(model: Sequential) -> str:
    """The recurrent layer's compute precision (what ran)."""
    return next(m.compute_dtype for m in model.modules if getattr(m, "is_recurrent", False))


def _check_prime(vocab: CharVocab, prime: str) -> None:
    """Refuses, before any training, a priming string the model could not read."""
    if not isinstance(prime, str) or not prime:
        raise ValueError("prime: expected at least one character")
    missing = sorted(set(prime) - set(vocab.chars))
    if missing:
        raise ValueError(f"prime: characters {''.join(missing)!r} of {prime!r} are not in the "
                         "text's vocabulary; choose a prime made of the text's characters")


def _fingerprint(ids: np.ndarray) -> str:
    """Identifies the training ids, so a resumed run knows whether its saved
    position in the text still means anything."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()[:32]


@_dist.abort_on_error
def _run_for(corpus: str, text_name: str, *, minutes: float, checkpoint: Optional[str],
             resume: bool, checkpoint_every: float, cell: str, hidden: int, layers: int,
             embedding: int, dropout: float, batch_size: int, seq_len: int, lr: float,
             clip: float, val_fraction: float, sample_length: int, temperature: float,
             prime: str, seed: int, progress: Optional[bool],
             distributed: bool = False, schedule: str = "cosine",
             final_lr: float = 0.05, compute_dtype: Optional[str] = None) -> Dict[str, Any]:
    """run() on a wall-clock budget, with a checkpoint to resume from.

    distributed: each rank trains on its rows of every batch (the state of
    those rows carried), the gradients are summed across ranks weighted by
    their rows, and rank 0's clock decides, at every step, when every rank
    stops and when the checkpoint is written (by rank 0 alone): the ranks
    take the same steps and stop at the same one."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) \
            or not math.isfinite(minutes) or minutes <= 0:
        raise ValueError(f"minutes: expected a positive number of minutes, got {minutes!r}")
    if not isinstance(checkpoint_every, (int, float)) or not checkpoint_every > 0:
        raise ValueError(f"checkpoint_every: expected a positive number of seconds, "
                         f"got {checkpoint_every!r}")
    # checked before any training: a run must not end unable to write its checkpoint
    checkpoint = writable_file_path(checkpoint or "char-rnn.rnnpy", "checkpoint")
    position = {"epoch": 0, "batch": 0, "chars_trained": 0, "seconds": 0.0}
    if resume:
        model, extra = _load_with_extra(checkpoint, "checkpoint")
        if not isinstance(extra, dict) or extra.get("kind") != "char-rnn":
            raise ValueError(f"checkpoint: {checkpoint!r} is not a char-rnn checkpoint")
        try:   # every entry checked before training starts, naming the file
            try:
                vocab = CharVocab.from_config(extra["vocab"])
            except ValueError as exc:
                raise ValueError(f"vocab: {exc}") from None
            opt = Adam(model, lr=lr)
            opt.load_state_dict(extra["optimizer"])
            batch_size = positive_int(extra["batch_size"], "batch_size")
            seq_len = positive_int(extra["seq_len"], "seq_len")
            saved = {k: extra[k] for k in position}
            for k, v in saved.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                    raise ValueError(f"{k}: expected a number >= 0, got {v!r:.100}")
            if not isinstance(extra.get("cell", cell), str):
                raise ValueError(f"cell: expected a str, got {extra['cell']!r:.100}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint: {checkpoint!r} holds a malformed char-rnn checkpoint "
                             f"({type(exc).__name__}: {exc})") from None
        try:
            ids = vocab.encode(corpus)
        except ValueError as exc:
            raise ValueError(f"text: {text_name!r} has characters the checkpoint's vocabulary "
                             f"lacks ({exc})") from None
        train_ids, val_ids = split_sequence(ids, val_fraction)
        if extra.get("train_fingerprint") == _fingerprint(train_ids):
            position.update(saved)
        else:   # another text: keep the model, start at its beginning
            position.update(chars_trained=saved["chars_trained"], seconds=saved["seconds"])
        cell = extra.get("cell", cell)
        if compute_dtype is not None:   # a precision, not a width: the run's choice applies
            for m in model.modules:
                if getattr(m, "is_recurrent", False):
                    m.compute_dtype = compute_dtype
    else:
        vocab = CharVocab(corpus)
        ids = vocab.encode(corpus)
        train_ids, val_ids = split_sequence(ids, val_fraction)
        model = build_model(vocab.size, hidden, layers, embedding, cell, dropout, seed,
                            compute_dtype=compute_dtype)
        opt = Adam(model, lr=lr)
    _check_prime(vocab, prime)
    dist = _dist.Session() if distributed else None
    if dist is not None:
        dist.start(model, seed)   # rank 0's parameters everywhere
        if not dist.is_main:
            progress = False
    train = char_batches(train_ids, batch_size, seq_len)
    # the tail is read as up to VAL_ROWS parallel rows, each carrying its state over
    # thousands of characters on a large text: seconds, where batch_size rows of
    # a 200,000-character tail took longer than a minute of training
    val_rows = max(1, min(VAL_ROWS, len(val_ids) // (seq_len + 1)))
    val = char_batches(val_ids, val_rows, seq_len)
    n_batches = len(train)
    fingerprint = _fingerprint(train_ids)

    def write_checkpoint() -> None:
        if not np.isfinite(model.flat_params).all():
            raise FloatingPointError(
                f"the parameters are not finite at epoch {position['epoch'] + 1}, batch "
                f"{position['batch']}: training stopped and {checkpoint!r} left as it was "
                "(lower lr or clip)")
        if dist is not None and not dist.is_main:   # one writer: rank 0
            return
        save(model, checkpoint, extra={
            "kind": "char-rnn", "vocab": vocab.to_config(), "optimizer": opt.state_dict(),
            "batch_size": batch_size, "seq_len": seq_len, "cell": cell,
            "train_fingerprint": fingerprint, **position})

    history: Dict[str, list] = {"loss": []}
    start = time.monotonic()
    deadline = start + 60.0 * minutes
    last_save = start
    epoch_loss, epoch_chars = 0.0, 0
    state = None     # carried from window to window; starts at zero each epoch and on resume
    fraction = 0.0   # of the budget, as rank 0's clock says: the learning rate follows it
    bar = _progress(None, "char-rnn", progress)
    model.train()
    # Dense, the loss and clipping run in NumPy's BLAS: held to the model's
    # thread count, as fit holds it, so its idle threads do not spin beside ours
    blas = blas_threads(model)

    def agreed(flag: Any) -> Any:   # rank 0's decision on every rank
        return flag if dist is None else _dist.broadcast(flag)

    try:
        while agreed(time.monotonic() < deadline):
            if dist is not None:
                dist.begin_epoch(model, seed, position["epoch"])
            for i, (x, y) in enumerate(train):
                if i < position["batch"]:
                    continue
                shard = None
                if dist is not None:   # this rank's rows, and their carried state
                    shard = dist.shard(len(x), None)
                    x_rows, y_rows, _ = shard.take(x, y, None)
                else:
                    x_rows, y_rows = x, y
                out, state = model.forward(x_rows, state)
                loss, grad = softmax_cross_entropy(out, y_rows)
                if shard is not None:
                    share, grad = shard.weigh(grad, None, out.shape[1])
                    loss = math.fsum(dist.allgather(loss * share / len(x)))   # the global batch's
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss} at epoch {position['epoch'] + 1}, "
                                             f"batch {i + 1}: training stopped (lower lr)")
                model.zero_grad()
                model.backward(grad)
                if dist is not None:
                    dist.allreduce_gradients(model)
                clip_grad_norm(model, clip)
                opt.lr = budget_lr(lr, fraction, schedule, final_lr)
                opt.step()
                position["batch"] = i + 1
                position["chars_trained"] += int(np.size(y))
                epoch_loss += loss * np.size(y)
                epoch_chars += int(np.size(y))
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                now = time.monotonic()
                stop, due, fraction = agreed((now >= deadline, now - last_save >= checkpoint_every,
                                              (now - start) / (deadline - start)))
                if stop:
                    break
                if due:
                    position["seconds"] += now - last_save
                    last_save = now
                    write_checkpoint()
            if position["batch"] >= n_batches:   # a whole epoch done
                position.update(epoch=position["epoch"] + 1, batch=0)
                state = None
                history["loss"].append(epoch_loss / max(epoch_chars, 1))
                epoch_loss, epoch_chars = 0.0, 0
                now = time.monotonic()
                position["seconds"] += now - last_save
                last_save = now
                write_checkpoint()
    except KeyboardInterrupt:
        # an interrupted run keeps its work; a failed one (a non-finite loss)
        # leaves the last good checkpoint alone
        position["seconds"] += time.monotonic() - last_save
        write_checkpoint()
        raise
    finally:
        bar.close()
        blas.restore_original_limits()
    position["seconds"] += time.monotonic() - last_save
    write_checkpoint()
    if epoch_chars:
        history["loss"].append(epoch_loss / epoch_chars)
    t_val = time.monotonic()
    val_loss = evaluate(model, lambda: iter(val), loss="softmax_cross_entropy", metrics=(),
                        batch_size=val_rows, stateful=True, distributed=distributed)["loss"]
    val_seconds = time.monotonic() - t_val
    text_out = sample(model, vocab, sample_length, prime, temperature, seed=seed)
    return {"demo": "char-rnn", "cell": cell, "compute_dtype": _compute_dtype(model),
            "val_loss": val_loss, "val_seconds": val_seconds,
            "unigram_entropy": unigram_entropy(train_ids, vocab.size), "sample": text_out,
            "history": history, "model": model, "vocab": vocab, "text": text_name,
            "chars": len(corpus), "val_chars": int(len(val_ids)), "minutes": minutes,
            "checkpoint": os.path.abspath(checkpoint), "resumed": bool(resume),
            "epochs_done": position["epoch"] + position["batch"] / max(n_batches, 1),
            "chars_trained": position["chars_trained"], "train_seconds": position["seconds"]}
