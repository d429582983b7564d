"""What the ONNX exporter accepts: the module types and configuration keys it
knows, and the shape checks along the flattened model.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from ...nn.layers import Dense, Dropout, Embedding, LastStep
from ...nn.module import Module
from ...nn.recurrent import GRU, LSTM, RNN
from ...nn.sequential import Sequential
from .graph import Dim, _Value


# configuration keys each class is known to export; any other key must be off
# (False, None or 0), or the module does something this exporter cannot express
_KNOWN_CONFIG = {
    "RNN": {"input_size", "hidden_size", "num_layers", "bidirectional", "dropout", "dtype",
            "seed", "time_major", "nonlinearity", "threads", "merge_mode", "recurrent_dropout"},
    "LSTM": {"input_size", "hidden_size", "num_layers", "bidirectional", "dropout", "dtype",
             "seed", "time_major", "peephole", "threads", "merge_mode", "recurrent_dropout"},
    "GRU": {"input_size", "hidden_size", "num_layers", "bidirectional", "dropout", "dtype",
            "seed", "time_major", "threads", "merge_mode", "recurrent_dropout"},
    "Dense": {"in_features", "out_features", "bias", "dtype", "seed"},
    "Embedding": {"num_embeddings", "embedding_dim", "dtype", "seed"},
    "LastStep": {"time_major", "dtype"},
    "Dropout": {"p", "dtype", "seed"},
    "Sequential": {"modules"},
}


# how the weights started (chrono, forget bias, orthogonal) changes nothing at inference;
# a bfloat16-compute layer exports its float32 graph (see export_onnx)
for _name in ("RNN", "LSTM", "GRU"):
    _KNOWN_CONFIG[_name] |= {"init", "t_max", "forget_bias", "recurrent_init", "compute_dtype"}


# -- the module tree ----------------------------------------------------------------
def _flatten(model: Module, where: str) -> List[Tuple[str, Module]]:
    """[(where, module), ...] of the leaves, nested Sequentials unrolled."""
    if type(model) is Sequential:
        out: List[Tuple[str, Module]] = []
        for i, m in enumerate(model.modules):
            out.extend(_flatten(m, f"{where}.modules[{i}]"))
        return out
    return [(where, model)]


def _label(where: str, m: Module) -> str:
    return f"{where} ({type(m).__name__})"


def _check_supported(where: str, m: Module) -> None:
    exact = (RNN, LSTM, GRU, Dense, Embedding, LastStep, Dropout, Sequential)
    if type(m) not in exact:
        base = next((c.__name__ for c in exact if isinstance(m, c)), None)
        why = (f"a subclass of {base} may compute something {base} does not, so only "
               f"{base} itself is exported") if base else \
              f"exportable modules are {sorted(c.__name__ for c in exact)}"
        raise TypeError(f"{_label(where, m)}: cannot export to ONNX: {why}")
    config = m.get_config()
    if _is_recurrent(m) and m.num_directions == 2 and config.get("merge_mode", "concat") is None:
        raise ValueError(f"{_label(where, m)}: cannot export to ONNX: merge_mode=None gives the "
                         "two directions as a tuple; ONNX needs one output (use concat, sum, "
                         "mul or ave)")
    if type(m) is Embedding and m.pad_token is not None:
        raise ValueError(f"{_label(where, m)}: cannot export to ONNX: padding_idx/mask_zero "
                         "derive lengths from the ids, which this exporter does not express; "
                         "export a copy without them and give the graph lengths")
    known = _KNOWN_CONFIG[type(m).__name__]
    for key, value in config.items():
        if key not in known and value not in (None, False, 0, 0.0, "", "none"):
            raise ValueError(f"{_label(where, m)}: cannot export to ONNX: option "
                             f"{key}={value!r} has no ONNX equivalent in this exporter")


def _is_recurrent(m: Module) -> bool:
    return type(m) in (RNN, LSTM, GRU)


def _input_dims(flat: List[Tuple[str, Module]], batch: Dim, seq: Dim) -> Tuple[Any, List[Dim]]:
    """(dtype, dims) of the graph input x."""
    timed = [m for _, m in flat if _is_recurrent(m) or type(m) is LastStep]
    time_major = bool(timed and timed[0].time_major)
    bt: List[Dim] = [seq, batch] if time_major else [batch, seq]
    first = next(((w, m) for w, m in flat if type(m) is not Dropout), None)
    if first is None:
        raise ValueError(f"{_label(*flat[0])}: cannot export to ONNX: a model of Dropout alone "
                         "is the identity on any shape, and an ONNX graph input needs a rank")
    where, m = first
    if type(m) is Embedding:
        return np.int64, bt
    if _is_recurrent(m):
        return m.dtype, bt + [m.input_size]
    if type(m) is LastStep:
        return m.dtype, bt + ["features"]
    assert type(m) is Dense
    return m.dtype, (bt if timed else [batch]) + [m.in_features]


def _check_features(where: str, m: Module, x: _Value, want: int, what: str) -> None:
    if isinstance(x.dims[-1], int) and x.dims[-1] != want:
        raise ValueError(f"{_label(where, m)}: expects {what} = {want} features, but the "
                         f"module before it gives {x.dims[-1]}")


def _check_rank(where: str, m: Module, x: _Value, rank: int, layout: str) -> None:
    if len(x.dims) != rank:
        raise ValueError(f"{_label(where, m)}: expects a {rank}-D input {layout}, but the "
                         f"module before it gives {len(x.dims)}-D {tuple(x.dims)}")


def _check_pool_layout(where: str, m: LastStep, layout: Optional[Tuple[Any, str]]) -> int:
    """LastStep's directions after the given layout (as Sequential.forward decides)."""
    if layout is None:
        return 1
    mode, source = layout
    if mode == "concat":
        return 2
    raise ValueError(f"{_label(where, m)}: cannot export: its input comes from {source}, "
                     f"bidirectional with merge_mode={mode!r}, whose directions cannot be taken "
                     "apart (use merge_mode='concat')")
