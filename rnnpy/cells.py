"""The registry of cell kinds: every place that lists the recurrent cells reads it.

Two levels:
    Family  one recurrent layer class and one C type: RNN, LSTM, GRU. Holds what
            depends only on the equations: gate count and names, the C type of
            rnnpy._core, the PyTorch and ONNX operator, the gate that keeps the old
            state (for the long-lag initialisations) and ONNX's gate order.
    Kind    a family with the options that change its equations and parameter set:
            rnn_tanh, rnn_relu, lstm, lstm_peephole, gru. Holds the layer's and the
            C type's keyword arguments, the NumPy reference's mode, the names the
            command line uses and every other spelling found in the code (aliases).

``kind(name)`` accepts any spelling ("peephole", "lstm-peephole", "LSTM_PEEPHOLE",
"lstm_peephole" are one kind). Adding a cell kind: a C kernel and type, an entry
here, a layer class (rnnpy/nn/recurrent.py) and its reference cell
(rnnpy/_reference.py); the CLI, bench, demos, checkpoint size checks, the ONNX
exporter and the tests read this table.

This module imports nothing from rnnpy, so every layer may read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["Family", "Kind", "FAMILIES", "KINDS", "family", "kind", "kinds", "DEMO_CELLS"]


def _frozen(d: Optional[Dict[str, Any]] = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Family:
    """One recurrent layer class and its C type (see the module docstring)."""

    name: str                       # "rnn", "lstm", "gru": the bench's and the layer's key
    layer: str                      # rnnpy class name: rnnpy.RNN, rnnpy.LSTM, rnnpy.GRU
    c_type: str                     # rnnpy._core type name
    gate_names: str                 # gate blocks in PyTorch's order, one letter each
    torch_class: str                # torch.nn class name (same parameter layout)
    onnx_op: str                    # ONNX operator
    onnx_gate_order: Tuple[int, ...]  # ONNX block k = PyTorch block onnx_gate_order[k]
    has_cell_state: bool = False    # the state is (h, c)
    keep_gate: Optional[int] = None   # block that keeps the old state (LSTM f, GRU z)
    input_gate: Optional[int] = None  # block that lets the new input in (LSTM i)
    # layer options beyond PyTorch's that change the parameter set
    options: Tuple[str, ...] = ()

    @property
    def gates(self) -> int:
        """G, the gate blocks: W_ih is (G*H, I)."""
        return len(self.gate_names)


@dataclass(frozen=True)
class Kind:
    """A family with the options that change its equations (see the module docstring)."""

    name: str                        # canonical name: "lstm_peephole"
    family: Family
    options: Mapping[str, Any] = field(default_factory=_frozen)  # layer and C keyword args
    reference: str = ""              # rnnpy._reference mode: "LSTM_PEEPHOLE"
    cli_name: str = ""               # `python -m rnnpy check` name: "lstm-peephole"
    torch: bool = True               # torch.nn has this cell (peepholes: no)
    aliases: Tuple[str, ...] = ()    # other spellings: "peephole"

    @property
    def gates(self) -> int:
        return self.family.gates

    @property
    def layer(self) -> str:
        return self.family.layer

    @property
    def c_type(self) -> str:
        return self.family.c_type

    @property
    def torch_class(self) -> Optional[str]:
        """torch.nn class name, None when PyTorch has no such cell."""
        return self.family.torch_class if self.torch else None

    @property
    def onnx_op(self) -> str:
        return self.family.onnx_op

    @property
    def torch_options(self) -> Dict[str, Any]:
        """Keyword arguments of the torch.nn class (nonlinearity for the RNN)."""
        return {k: v for k, v in self.options.items() if k == "nonlinearity"}

    def num_params(self, input_size: int, hidden_size: int) -> int:
        """Parameters of one cell (one layer, one direction) without projection or
        layer norm: G*H*(I + H + 2), plus the peepholes' 3*H."""
        G, H = self.gates, hidden_size
        return G * H * (input_size + H + 2) + (3 * H if self.options.get("peephole") else 0)


RNN_FAMILY = Family("rnn", "RNN", "RNNCell", "h", "RNN", "RNN", (0,))
LSTM_FAMILY = Family("lstm", "LSTM", "LSTMCell", "ifgo", "LSTM", "LSTM", (0, 3, 1, 2),
                     has_cell_state=True, keep_gate=1, input_gate=0,
                     options=("peephole", "proj_size", "layer_norm"))
GRU_FAMILY = Family("gru", "GRU", "GRUCell", "rzn", "GRU", "GRU", (1, 0, 2), keep_gate=1,
                    options=("layer_norm",))

FAMILIES: Mapping[str, Family] = _frozen({f.name: f for f in (RNN_FAMILY, LSTM_FAMILY, GRU_FAMILY)})

KINDS: Mapping[str, Kind] = _frozen({k.name: k for k in (
    Kind("rnn_tanh", RNN_FAMILY, _frozen({"nonlinearity": "tanh"}), "RNN_TANH", "rnn-tanh",
         aliases=("rnn",)),
    Kind("rnn_relu", RNN_FAMILY, _frozen({"nonlinearity": "relu"}), "RNN_RELU", "rnn-relu"),
    Kind("lstm", LSTM_FAMILY, _frozen({"peephole": False}), "LSTM", "lstm"),
    Kind("lstm_peephole", LSTM_FAMILY, _frozen({"peephole": True}), "LSTM_PEEPHOLE",
         "lstm-peephole", torch=False, aliases=("peephole",)),
    Kind("gru", GRU_FAMILY, _frozen(), "GRU", "gru"),
)})

# the demos' --cell choices: a family name, or "peephole" (the RNN's nonlinearity
# is a separate --nonlinearity option there)
DEMO_CELLS: Mapping[str, Kind] = _frozen({"rnn": KINDS["rnn_tanh"], "lstm": KINDS["lstm"],
                                          "gru": KINDS["gru"], "peephole": KINDS["lstm_peephole"]})


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


_LOOKUP: Dict[str, Kind] = {}
for _k in KINDS.values():
    for _spelling in (_k.name, _k.reference, _k.cli_name, *_k.aliases):
        _LOOKUP[_key(_spelling)] = _k
del _k, _spelling


def kind(name: Any) -> Kind:
    """The Kind of any of its spellings ("lstm_peephole", "lstm-peephole",
    "LSTM_PEEPHOLE", "peephole"), or a Kind itself."""
    if isinstance(name, Kind):
        return name
    if not isinstance(name, str) or _key(name) not in _LOOKUP:
        raise ValueError(f"cell: expected one of {', '.join(KINDS)} (or "
                         f"{', '.join(sorted(set(_LOOKUP) - set(KINDS)))}), got {name!r}")
    return _LOOKUP[_key(name)]


def family(name: Any) -> Family:
    """The Family of a family name ("lstm"), a layer class name ("LSTM"), a layer
    class or instance, or any spelling of a kind."""
    if isinstance(name, Family):
        return name
    if not isinstance(name, str):
        cls = name if isinstance(name, type) else type(name)
        for f in FAMILIES.values():
            if any(c.__name__ == f.layer and c.__module__.startswith("rnnpy")
                   for c in cls.__mro__):
                return f
        raise ValueError(f"cell: expected an rnnpy RNN, LSTM or GRU, got {cls.__name__}")
    if _key(name) in FAMILIES:
        return FAMILIES[_key(name)]
    return kind(name).family


def kinds(torch: Optional[bool] = None) -> Tuple[Kind, ...]:
    """Every kind in registry order; torch=True: only those torch.nn also has."""
    return tuple(k for k in KINDS.values() if torch is None or k.torch == torch)
