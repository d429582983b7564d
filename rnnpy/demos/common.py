"""What the demo runners share: building the recurrent part from CLI-style options."""
from __future__ import annotations

from typing import Any, Optional

from ..cells import DEMO_CELLS
from ..nn.module import Module
from ..nn.recurrent import recurrent_layer

CELLS = tuple(DEMO_CELLS)   # rnn, lstm, gru, peephole


def make_recurrent(cell: str, input_size: int, hidden: int, layers: int = 1, *,
                   nonlinearity: str = "tanh", dropout: float = 0.0, dtype: Any = "float32",
                   seed: Optional[int] = None, **layer_kw: Any) -> Module:
    """rnnpy.RNN / LSTM / GRU (or a peephole LSTM) from a cell name; layer_kw
    (threads, init, t_max, forget_bias, recurrent_init, ...) go to the layer."""
    kw = dict(num_layers=layers, dropout=dropout, dtype=dtype, seed=seed, **layer_kw)
    if cell not in DEMO_CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
    kind = DEMO_CELLS[cell]
    options = {"nonlinearity": nonlinearity} if "nonlinearity" in kind.options else {}
    return recurrent_layer(kind, input_size, hidden, **options, **kw)
