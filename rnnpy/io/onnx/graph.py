"""A small builder of ONNX graphs (nodes, constants, inputs and outputs with
symbolic dimensions) over the onnx package's helpers.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np


Dim = Union[int, str]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("export_onnx needs the 'onnx' package: pip install onnx") from exc
    return onnx


class _Value:
    """A tensor of the graph under construction: its name and (known) dims."""

    def __init__(self, name: str, dims: List[Dim]) -> None:
        self.name = name
        self.dims = dims  # ints where known, names of dynamic dims otherwise


class _Graph:
    """Nodes, initializers and value names of the graph under construction."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self.inputs: List[Any] = []
        self.outputs: List[Any] = []
        self._used: Dict[str, int] = {}
        self._ints: Dict[Tuple[int, ...], str] = {}

    def fresh(self, base: str) -> str:
        n = self._used.get(base, 0)
        self._used[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def const(self, base: str, array: Any) -> str:
        name = self.fresh(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def ints(self, base: str, values: Sequence[int]) -> str:
        """An int64 vector constant, made once per distinct value."""
        key = tuple(int(v) for v in values)
        if key not in self._ints:
            self._ints[key] = self.const(base, np.asarray(key, dtype=np.int64))
        return self._ints[key]

    def node(self, op: str, inputs: Sequence[str], outputs: Union[int, Sequence[str]] = 1,
             base: Optional[str] = None, **attrs: Any) -> List[str]:
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{base or op.lower()}_out") for _ in range(outputs)]
        inputs = list(inputs)
        while inputs and inputs[-1] == "":  # optional inputs left out at the end
            inputs.pop()
        self.nodes.append(self.onnx.helper.make_node(op, inputs, list(outputs),
                                                     name=self.fresh(base or op), **attrs))
        return list(outputs)

    def elem_type(self, dtype: np.dtype) -> int:
        return self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def add_input(self, name: str, dtype: Any, dims: List[Dim]) -> None:
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, self.elem_type(dtype), dims))

    def add_output(self, name: str, dtype: Any, dims: List[Dim]) -> None:
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, self.elem_type(dtype), dims))


class _Context:
    """What the modules share while they are emitted: lengths and states."""

    def __init__(self, graph: _Graph, with_lengths: bool, with_state: bool,
                 n_recurrent: int) -> None:
        self.graph = graph
        self.lengths: Optional[str] = "lengths" if with_lengths else None
        self._lengths_i32: Optional[str] = None
        self.with_state = with_state
        self.n_recurrent = n_recurrent
        self.recurrent_index = 0

    def lengths_int32(self) -> str:
        """sequence_lens for the RNN nodes ("" without lengths)."""
        if self.lengths is None:
            return ""
        if self._lengths_i32 is None:
            onnx = self.graph.onnx
            self._lengths_i32 = self.graph.node("Cast", [self.lengths], base="lengths_int32",
                                                to=onnx.TensorProto.INT32)[0]
        return self._lengths_i32

    def state_name(self, stem: str) -> str:
        return stem if self.n_recurrent == 1 else f"{stem}_{self.recurrent_index}"
