"""Text for the char-rnn demo: read a corpus, batch its character ids.

    text = load_text("anna.txt")
    vocab = CharVocab(text)
    train, val = split_sequence(vocab.encode(text), 0.1)
    for inputs, targets in char_batches(train, batch_size=128, seq_len=100):
        ...   # (128, 100) ids each; targets are the next characters
"""
from __future__ import annotations

import os
from typing import Any, Optional

from .._validate import positive_int
from ..data.sequences import SequenceBatches, sequence_batches

__all__ = ["load_text", "char_batches"]


def load_text(path: "str | os.PathLike[str]", max_chars: Optional[int] = None) -> str:
    """The UTF-8 text of ``path``, or its first ``max_chars`` characters.

    FileNotFoundError if the file does not exist, ValueError if it is empty or
    not UTF-8; both name the path.
    """
    if max_chars is not None:
        max_chars = positive_int(max_chars, "max_chars")
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"path: no such file: {p!r}")
    if os.path.isdir(p):
        raise IsADirectoryError(f"path: expected a text file, got the directory {p!r}")
    try:
        with open(p, "r", encoding="utf-8") as f:
            text = f.read() if max_chars is None else f.read(max_chars)
    except UnicodeDecodeError as exc:
        raise ValueError(f"path: {p!r} is not UTF-8 text "
                         f"(byte {exc.start} of the part read)") from None
    if not text:
        raise ValueError(f"path: the file {p!r} is empty")
    return text


def char_batches(ids: Any, batch_size: int, seq_len: int,
                 drop_last: bool = False) -> SequenceBatches:
    """Character ids (N,) -> re-iterable (inputs, targets) windows of (batch_size, L) ids.

    ``rnnpy.data.sequence_batches``: batch_size contiguous rows, windows of
    seq_len, targets the next characters; carry the state across windows.
    """
    return sequence_batches(ids, batch_size, seq_len, drop_last=drop_last)
