"""CharVocab: the characters of a text and their ids (char-rnn).
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .._validate import token_ids


class CharVocab:
    """Characters <-> integer ids for char-rnn.

    ``CharVocab(text)`` takes the sorted unique characters of ``text``; id k is
    ``chars[k]``. ``to_config()`` gives ``{"chars": [...]}`` (JSON-friendly, to
    save beside a model) and ``CharVocab.from_config`` rebuilds the same ids.
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text: expected a non-empty string, got ''")
        self._set_chars(sorted(set(text)))

    def _set_chars(self, chars: List[str]) -> None:
        self.chars: List[str] = list(chars)
        self.char_to_id: Dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._order = np.argsort(codes, kind="stable")
        self._sorted_codes = codes[self._order]

    @property
    def size(self) -> int:
        """Number of distinct characters (the model's input and output size)."""
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.chars == other.chars

    def encode(self, text: str) -> np.ndarray:
        """str of length N -> (N,) int64 ids; ValueError for a character not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if not text:
            return np.zeros(0, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"),
                              dtype="<u4").astype(np.int64)
        pos = np.searchsorted(self._sorted_codes, codes)
        pos_c = np.minimum(pos, self.size - 1)
        miss = self._sorted_codes[pos_c] != codes
        if miss.any():
            k = int(np.flatnonzero(miss)[0])
            raise ValueError(f"text: character {text[k]!r} at index {k} is not in the vocabulary")
        return self._order[pos_c].astype(np.int64)

    def decode(self, ids: Any) -> str:
        """(N,) integer ids -> str of length N."""
        arr = token_ids(ids, self.size)
        chars = self.chars
        return "".join(chars[i] for i in arr.tolist())

    def to_config(self) -> Dict[str, Any]:
        """{"chars": [c_0, c_1, ...]}: JSON-serialisable, ids are list positions."""
        return {"chars": list(self.chars)}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "CharVocab":
        """Rebuild from ``to_config()`` output; ids keep their stored order."""
        chars = config.get("chars") if isinstance(config, dict) else None
        if not isinstance(chars, list) or not chars:
            raise ValueError("config: expected a dict with a non-empty list 'chars'")
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"config: expected single characters in 'chars', "
                                 f"got {c!r} at index {i}")
        if len(set(chars)) != len(chars):
            raise ValueError("config: expected unique characters in 'chars'")
        vocab = cls.__new__(cls)
        vocab._set_chars(chars)
        return vocab
