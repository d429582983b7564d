"""The temporal-order task (Hochreiter & Schmidhuber 1997, experiment 6a).

A sequence starts with B, ends with E, and holds random distractors a, b, c, d
everywhere else except at two positions t1 < t2, which hold X or Y. The class
says which pair was drawn: Q = XX, R = XY, S = YX, U = YY (uniform). To answer,
a network must remember the symbol at t1 across up to hundreds of distractors.

Symbols are one-hot over 8 indices in the order X, Y, a, b, c, d, B, E. Each
sequence draws its own length, t1 and t2 uniformly from the level's ranges
(upper bounds exclusive, as in ``numpy.random.randint``):

    level       length        t1          t2
    easy        [7, 9)        [1, 3)      [4, 6)
    normal      [30, 41)      [2, 6)      [20, 28)
    moderate    [60, 81)      [10, 21)    [45, 55)
    hard        [100, 111)    [10, 21)    [50, 61)     (the 1997 paper's setting)
    nightmare   [300, 501)    [10, 81)    [250, 291)

A batch is padded with zero rows to the level's exclusive length bound (9 on
easy, as the course pads, so every sequence has at least one zero row): in front with padding="pre" (so every sequence ends on
the last step), or at the end with padding="post", where ``lengths`` tells the
layers where each sequence ends.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import positive_int, seed_value

__all__ = ["SYMBOLS", "CLASSES", "LEVELS", "Level", "TemporalOrder"]

SYMBOLS: List[str] = ["X", "Y", "a", "b", "c", "d", "B", "E"]
CLASSES: List[str] = ["Q", "R", "S", "U"]

_X, _Y = 0, 1
_DISTRACTORS = (2, 6)   # a, b, c, d: indices [2, 6)
_BEGIN, _END = 6, 7


class Level(NamedTuple):
    """(low, high) ranges, high exclusive, of a sequence's length, t1 and t2."""
    length: Tuple[int, int]
    t1: Tuple[int, int]
    t2: Tuple[int, int]


LEVELS: Dict[str, Level] = {
    "easy": Level((7, 9), (1, 3), (4, 6)),
    "normal": Level((30, 41), (2, 6), (20, 28)),
    "moderate": Level((60, 81), (10, 21), (45, 55)),
    "hard": Level((100, 111), (10, 21), (50, 61)),
    "nightmare": Level((300, 501), (10, 81), (250, 291)),
}


class TemporalOrder:
    """Batches of the temporal-order task at one difficulty level.

        gen = TemporalOrder("easy", batch_size=32, seed=0)
        x, y, lengths = gen.batch()   # x (32, 9, 8) float32, y (32,) int64, lengths (32,)
        gen.decode(x[0])              # e.g. 'BbXcYaE'

    Every call of ``batch()`` draws new sequences from the generator's own
    random stream (``seed``). ``len(gen)`` is the course's nominal epoch of
    1000 sequences (31 batches of 32); iterating yields that many fresh batches.
    """

    num_symbols = len(SYMBOLS)
    num_classes = len(CLASSES)

    def __init__(self, difficulty: str = "easy", batch_size: int = 32,
                 seed: Optional[int] = None, padding: str = "pre") -> None:
        if difficulty not in LEVELS:
            raise ValueError(f"difficulty: expected one of {', '.join(repr(k) for k in LEVELS)}, "
                             f"got {difficulty!r}")
        if padding not in ("pre", "post"):
            raise ValueError(f"padding: expected 'pre' or 'post', got {padding!r}")
        self.difficulty = difficulty
        self.level = LEVELS[difficulty]
        self.batch_size = positive_int(batch_size, "batch_size")
        self.seed = seed_value(seed)
        self.padding = padding
        # padded to the exclusive upper bound, as the course does: every sequence has
        # at least one padding row
        self.max_length = self.level.length[1]
        self._rng = np.random.default_rng(self.seed)

    def __repr__(self) -> str:
        return (f"TemporalOrder(difficulty={self.difficulty!r}, batch_size={self.batch_size}, "
                f"seed={self.seed}, padding={self.padding!r})")

    def __len__(self) -> int:
        return max(1, 1000 // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for _ in range(len(self)):
            yield self.batch()

    def _ids(self, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n sequences as symbol ids (n, T_max), valid steps first, -1 after; labels; lengths."""
        rng, lv, T = self._rng, self.level, self.max_length
        lengths = rng.integers(lv.length[0], lv.length[1], size=n)
        t1 = rng.integers(lv.t1[0], lv.t1[1], size=n)
        t2 = rng.integers(lv.t2[0], lv.t2[1], size=n)
        ids = rng.integers(_DISTRACTORS[0], _DISTRACTORS[1], size=(n, T))
        y = rng.integers(0, len(CLASSES), size=n)
        rows = np.arange(n)
        ids[:, 0] = _BEGIN
        ids[rows, lengths - 1] = _END
        ids[rows, t1] = np.where(y // 2 == 0, _X, _Y)   # Q, R: X first; S, U: Y first
        ids[rows, t2] = np.where(y % 2 == 0, _X, _Y)    # Q, S: X second; R, U: Y second
        ids[np.arange(T)[None, :] >= lengths[:, None]] = -1
        return ids, y.astype(np.int64), lengths.astype(np.int64)

    def _encode(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        n, T = ids.shape
        x = np.zeros((n, T, self.num_symbols), dtype=np.float32)
        b, t = np.nonzero(ids >= 0)
        col = t if self.padding == "post" else t + (T - lengths)[b]
        x[b, col, ids[b, t]] = 1.0
        return x

    def batch(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch: ``(x, y, lengths)``.

        x: (B, T_max, 8) float32 one-hot, zero rows as padding (in front for
        padding="pre", at the end for "post"); T_max = the level's exclusive length bound.
        y: (B,) int64 class ids into CLASSES (0 Q, 1 R, 2 S, 3 U).
        lengths: (B,) int64 real lengths of the sequences.
        """
        ids, y, lengths = self._ids(self.batch_size)
        return self._encode(ids, lengths), y, lengths

    def dataset(self, n_batches: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n_batches`` batches concatenated along axis 0.

        Returns x (n_batches*B, T_max, 8) float32, y (n_batches*B,) int64,
        lengths (n_batches*B,) int64: a fixed set, e.g. for validation.
        """
        n_batches = positive_int(n_batches, "n_batches")
        parts = [self.batch() for _ in range(n_batches)]
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts))  # type: ignore[return-value]

    @staticmethod
    def decode(x_row: Any) -> str:
        """One sequence (T, 8) one-hot -> its symbols, e.g. 'BbXcdYaE'; zero rows are skipped."""
        x = np.asarray(x_row)
        if x.ndim != 2 or x.shape[1] != len(SYMBOLS):
            raise ValueError(f"x_row: expected shape (T, 8), got {tuple(x.shape)}")
        keep = x.sum(axis=1) > 0
        return "".join(SYMBOLS[i] for i in np.argmax(x[keep], axis=1).tolist())

    @staticmethod
    def label(y: Any) -> str:
        """Class id (0..3) -> 'Q', 'R', 'S' or 'U'."""
        k = int(y)
        if not 0 <= k < len(CLASSES):
            raise ValueError(f"y: expected a class id in [0, 4), got {y!r}")
        return CLASSES[k]
