"""What the demo runners share: building the recurrent part from CLI-style options."""
from __future__ import annotations

from typing import Any, Optional

from ..layers import GRU, LSTM, RNN
from ..module import Module

CELLS = ("rnn", "lstm", "gru", "peephole")


def make_recurrent(cell: str, input_size: int, hidden: int, layers: int = 1, *,
                   nonlinearity: str = "tanh", dropout: float = 0.0, dtype: Any = "float32",
                   seed: Optional[int] = None, **layer_kw: Any) -> Module:
    """rnnpy.RNN / LSTM / GRU (or a peephole LSTM) from a cell name; layer_kw
    (threads, init, t_max, forget_bias, recurrent_init, ...) go to the layer."""
    kw = dict(num_layers=layers, dropout=dropout, dtype=dtype, seed=seed, **layer_kw)
    if cell == "rnn":
        return RNN(input_size, hidden, nonlinearity=nonlinearity, **kw)
    if cell in ("lstm", "peephole"):
        return LSTM(input_size, hidden, peephole=cell == "peephole", **kw)
    if cell == "gru":
        return GRU(input_size, hidden, **kw)
    raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
