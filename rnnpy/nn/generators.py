"""The random generators of modules (dropout and zoneout masks) as JSON-able
states and back, so that a saved model resumes its random stream exactly.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

# NumPy bit generators whose state a saved model may restore
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _plain(obj: Any) -> Any:
    """A generator state with its arrays (MT19937's key, Philox's counter) as lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def generator_state(rng: np.random.Generator) -> Dict[str, Any]:
    """rng's bit generator state, JSON-able."""
    return _plain(rng.bit_generator.state)


def generator_from_state(state: Any, where: str) -> np.random.Generator:
    """A new Generator in the state generator_state gave; ValueError naming
    where (e.g. "states['0']") for anything else."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"{where}: expected the state of one of "
                         f"{sorted(_BIT_GENERATORS)}, got {state!r:.200}")
    bitgen = getattr(np.random, name)()
    try:
        bitgen.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise ValueError(f"{where}: not a valid {name} state ({exc})") from None
    return np.random.Generator(bitgen)
