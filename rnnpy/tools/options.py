"""Command-line option types shared by the CLI and the benchmark: a bad value
exits with status 2 and one argparse line naming the option.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, List, NoReturn, Optional, Sequence, Tuple


class _Parser(argparse.ArgumentParser):
    """argparse, answering a bad option with one line (exit status 2)."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- option types: a bad value exits 2 with one argparse line naming the option ------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


def _float_in(low: float, high: float, low_open: bool, high_open: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{low:g}, {high:g}{hi}, "
                                             f"got {text}")
        return value
    parse.__name__ = "float"
    return parse


positive_float = _float_in(0.0, float("inf"), True, True)
probability = _float_in(0.0, 1.0, False, True)
fraction = _float_in(0.0, 1.0, False, False)


def text_file(path: str) -> str:
    """An existing, readable UTF-8 text file."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            if not f.read(1 << 16):
                raise argparse.ArgumentTypeError(f"{path!r} is empty")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{path!r} is not UTF-8 text") from None
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path!r}: {exc.strerror}") from None
    return path


def _parse_shapes(text: str) -> List[Tuple[int, int, int, int]]:
    shapes = []
    for part in text.replace(" ", "").split(";"):
        if not part:
            continue
        vals = tuple(int(v) for v in part.split(","))
        if len(vals) != 4 or min(vals) <= 0:
            raise argparse.ArgumentTypeError(f"--shapes: expected 'T,B,I,H;...' of positive ints, got {part!r}")
        shapes.append(vals)
    return shapes


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def _parse_list(text: str, allowed: Optional[Sequence[str]] = None) -> List[str]:
    items = [s for s in text.replace(" ", "").split(",") if s]
    if allowed is not None:
        for s in items:
            if s not in allowed:
                raise argparse.ArgumentTypeError(f"expected items of {list(allowed)}, got {s!r}")
    return items
