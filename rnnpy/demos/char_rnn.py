"""char-rnn: a character-level language model on any text, and sampling from it.

The text is split into a training part and a contiguous validation tail,
encoded with a CharVocab, cut into batch_size rows and walked in windows of
seq_len with the next character as the target (rnnpy.data); the LSTM state is
carried from window to window (truncated BPTT). The model is Embedding ->
LSTM (layers, dropout between them) -> Dense to the vocabulary at every step,
trained with softmax cross-entropy and Adam, gradients clipped to norm 5.

Without a text, the demo trains on the opening chapters of Anna Karenina
(Constance Garnett's translation, public domain) shipped with rnnpy.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

from ..data import CharVocab, split_sequence
from ..nn import Dense, Embedding, Sequential
from ..optim import Adam
from ..training import evaluate, fit
from .common import make_recurrent
from .text import char_batches, load_text

DEFAULT_TEXT = os.path.join(os.path.dirname(__file__), "data", "anna_karenina_part1.txt")


def unigram_entropy(ids: np.ndarray, size: int) -> float:
    """Entropy of the character frequencies, in nats: the loss of a model that
    ignores context, which a char-rnn must beat."""
    p = np.bincount(np.asarray(ids), minlength=size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def build_model(vocab_size: int, hidden: int = 128, layers: int = 2, embedding: int = 32,
                cell: str = "lstm", dropout: float = 0.0, seed: Optional[int] = 0,
                dtype: Any = "float32") -> Sequential:
    """Embedding(V, E) -> recurrent (E -> H) -> Dense(H, V) at every step."""
    s = (lambda k: None) if seed is None else (lambda k: seed + k)
    return Sequential(Embedding(vocab_size, embedding, dtype=dtype, seed=s(0)),
                      make_recurrent(cell, embedding, hidden, layers, dropout=dropout, dtype=dtype,
                                     seed=s(1)),
                      Dense(hidden, vocab_size, dtype=dtype, seed=s(2)))


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


def run(text: Optional[str] = None, max_chars: Optional[int] = 60_000, cell: str = "lstm",
        hidden: int = 128, layers: int = 2, embedding: int = 32, dropout: float = 0.0,
        epochs: int = 3, batch_size: int = 16, seq_len: int = 64, lr: float = 3e-3,
        clip: float = 5.0, val_fraction: float = 0.1, sample_length: int = 200,
        temperature: float = 0.8, prime: str = "The ", seed: int = 0,
        progress: Optional[bool] = None, distributed: bool = False) -> Dict[str, Any]:
    """Trains on text (a path; the shipped sample by default) and samples from
    the model; returns val_loss, the unigram entropy it must beat, a sample,
    the history and the model. distributed: over the ranks of an MPI job,
    each taking its rows of every batch (see rnnpy.fit)."""
    corpus = load_text(text or DEFAULT_TEXT, max_chars=max_chars or None)
    vocab = CharVocab(corpus)
    ids = vocab.encode(corpus)
    train_ids, val_ids = split_sequence(ids, val_fraction)
    train = char_batches(train_ids, batch_size, seq_len)
    val_rows = max(1, min(batch_size, len(val_ids) // (seq_len + 1)))
    val = char_batches(val_ids, val_rows, seq_len)
    model = build_model(vocab.size, hidden, layers, embedding, cell, dropout, seed)
    history = fit(model, lambda: iter(train), loss="softmax_cross_entropy",
                  optimizer=Adam(model, lr=lr), epochs=epochs, clip_norm=clip, stateful=True,
                  val=lambda: iter(val), metrics=(), progress=progress, distributed=distributed)
    val_loss = history["val_loss"][-1] if epochs else evaluate(
        model, lambda: iter(val), loss="softmax_cross_entropy", metrics=(), stateful=True,
        distributed=distributed)["loss"]
    text_out = sample(model, vocab, sample_length, prime, temperature, seed=seed)
    return {"demo": "char-rnn", "cell": cell, "val_loss": val_loss,
            "unigram_entropy": unigram_entropy(train_ids, vocab.size), "sample": text_out,
            "history": history.history, "model": model, "vocab": vocab,
            "text": text or DEFAULT_TEXT, "chars": len(corpus)}
