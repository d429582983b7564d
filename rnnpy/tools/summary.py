"""model.summary(): a table of a model's modules, their output shapes and
parameter counts, as Keras prints it.

Output shapes need an input: ``input_shape`` is one example's shape without
the batch axis ((T, I) for a recurrent model, (T,) for token ids); the model
then runs once on a batch of one in evaluation mode (no dropout mask drawn,
so the random state is untouched) and the shapes show "B" for the batch.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..nn.module import Module


def _rows(model: Module, x: Any) -> List[Tuple[str, str, int]]:
    """(name, output shape, parameters) per module (the children of a Sequential)."""
    inner = getattr(model, "modules", None)
    prefix = isinstance(inner, (list, tuple)) and len(inner) > 0   # a container
    children = list(inner) if prefix else [model]
    rows = []
    for i, m in enumerate(children):
        shape = "?"
        if x is not None:
            if m.is_recurrent:
                x, _ = m.forward(x)
            elif m.accepts_lengths:
                x = m.forward(x, None)
            else:
                x = m.forward(x)
            out = x if isinstance(x, np.ndarray) else x[0]
            shape = str(("B",) + tuple(np.shape(out)[1:])).replace("'", "")
        name = f"{i} {type(m).__name__}" if prefix else type(m).__name__
        compute = getattr(m, "compute_dtype", None)   # a recurrent layer's product precision
        if compute is not None and compute != m.dtype.name:
            name += f" ({compute} compute)"
        rows.append((name, shape, m.num_params))
    return rows


def summary(model: Module, input_shape: Optional[Sequence[int]] = None) -> str:
    """The table as a str (Module.summary prints it)."""
    x = None
    if input_shape is not None:
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        shape = tuple(int(d) for d in input_shape)
        if any(d <= 0 for d in shape):
            raise ValueError(f"input_shape: expected positive sizes, got {tuple(input_shape)}")
        first = model
        while getattr(first, "modules", None):
            first = first.modules[0]
        from ..nn.layers import Embedding

        x = (np.ones((1,) + shape, dtype=np.int64) if isinstance(first, Embedding)
             else np.zeros((1,) + shape, dtype=model.dtype))
    was_training = model.training
    model.eval()
    try:
        rows = _rows(model, x)
    finally:
        model.train(was_training)
    head = ("module", "output shape", "parameters")
    w0 = max(len(head[0]), *(len(r[0]) for r in rows))
    w1 = max(len(head[1]), *(len(r[1]) for r in rows))
    w2 = max(len(head[2]), *(len(f"{r[2]:,}") for r in rows))
    line = "-" * (w0 + w1 + w2 + 4)
    out = [f"{type(model).__name__} ({model.dtype.name})", line,
           f"{head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]:>{w2}}", line]
    out += [f"{n:<{w0}}  {s:<{w1}}  {p:>{w2},}" for n, s, p in rows]
    out += [line, f"total parameters: {model.num_params:,}"]
    if x is None:
        out.append("(output shapes: give input_shape, one example's shape without the batch axis)")
    return "\n".join(out)
