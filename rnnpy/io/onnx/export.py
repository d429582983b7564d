"""Export rnnpy models to ONNX, for inference in onnxruntime and other runtimes.

    export_onnx(model, "model.onnx")                      # x, lengths -> y
    export_onnx(model, "model.onnx", with_lengths=False)  # x -> y (every sequence full length)
    export_onnx(model, "model.onnx", with_state=True)     # x, h0[, c0] -> y, hT[, cT]

The graph computes the model in evaluation mode (dropout is the identity).
Each layer of a recurrent module becomes one ONNX ``RNN``/``LSTM``/``GRU`` node
(both directions in one node), with the conversions between PyTorch's
conventions, which rnnpy follows, and ONNX's:

    gate order     LSTM i,f,g,o -> i,o,f,c      GRU r,z,n -> z,r,h
    biases         B = concat(W_b, R_b) per direction
    GRU            linear_before_reset=1 (n = tanh(W_n x + b_in + r*(R_n h + b_hn)))
    peepholes      weight_peep_l{k} rows i,f,o -> P = [p_i, p_o, p_f]
    layout         ONNX runs (T, B, I) and gives Y (T, D, B, H): Transpose and
                   Reshape turn that into (B, T, D*H), or (T, B, D*H) for a
                   time-major layer
    lengths        sequence_lens (int32): ONNX, like rnnpy, keeps the state and
                   outputs zeros past each sequence's length, and runs the
                   reverse direction from each sequence's last valid step

Graph inputs and outputs (B and T are dynamic unless batch_size/seq_len fix them):

    x        (B, T, I) float, or (T, B, I) when the first recurrent layer (or
             LastStep) is time-major; (B, T) int64 token ids when the model
             starts with an Embedding; (B, in_features) for a model of Dense
             layers only
    lengths  (B,) int64; by default whenever the model has a recurrent layer
             or LastStep (with_lengths=False leaves it out: every sequence is
             then taken as T steps long, as forward(x) without lengths)
    h0, c0   (num_layers*D, B, H) per recurrent layer, with_state=True; with
             several recurrent layers they are numbered h0_0, h0_1, ...
    y        the model's output
    hT, cT   the final states, with_state=True (numbered like h0)

Not exported (TypeError or ValueError naming the module): modules other than
the ones above, subclasses of them (they may compute something else), options
this exporter does not know unless they are off, an Embedding anywhere but
first (ONNX Gather needs integer ids), and a model of Dropout alone (no rank
to give its input). Of the options beyond PyTorch's, recurrent_dropout
exports (it does nothing in evaluation); proj_size, layer_norm and zoneout
have no standard ONNX node and are refused. float64 models export as valid ONNX in double, but
onnxruntime's CPU RNN/LSTM/GRU kernels run float32 only.

compute_dtype="bfloat16" (products on bfloat16 operands) is not in the graph: the
layer exports as the float32 layer with the same weights (ONNX's RNN/LSTM/GRU
operators have no compute precision, and a bfloat16 graph would change the
inputs' and outputs' type). The runtime's outputs are then the float32 model's,
which differ from rnnpy's bfloat16 forward by the bfloat16 rounding of the
products (relative ~2^-8 per product); compare against compute_dtype="float32".

onnx is imported only when export_onnx runs, so rnnpy does not need it.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Tuple, Union

import numpy as np

from ...nn.layers import Dense, Dropout, Embedding, LastStep
from ...nn.locking import holds_model_lock
from ...nn.module import Module
from ..atomic import atomic_write
from .checks import (_check_pool_layout, _check_supported, _flatten, _input_dims, _is_recurrent,
                     _label)
from .emit import _emit_dense, _emit_embedding, _emit_last_step, _emit_recurrent
from .graph import Dim, _Context, _Graph, _Value, _onnx


MIN_OPSET = 13  # Squeeze/Unsqueeze take axes as an input from opset 13 on


# -- the model --------------------------------------------------------------------
@holds_model_lock
def build_onnx(model: Module, *, opset: int = 17, batch_size: Optional[int] = None,
               seq_len: Optional[int] = None, with_lengths: Optional[bool] = None,
               with_state: bool = False) -> Any:
    """The onnx.ModelProto export_onnx writes (checked with onnx.checker)."""
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an rnnpy module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int, got {opset!r}")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(f"opset: expected an int in [{MIN_OPSET}, {newest}] (the installed onnx "
                         f"knows up to {newest}), got {opset}")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < 1):
            raise ValueError(f"{name}: expected a positive int or None (dynamic), got {value!r}")
    if with_lengths is not None and not isinstance(with_lengths, (bool, np.bool_)):
        raise TypeError(f"with_lengths: expected a bool or None (automatic), got {with_lengths!r}")
    if not isinstance(with_state, (bool, np.bool_)):
        raise TypeError(f"with_state: expected a bool, got {with_state!r}")

    flat = _flatten(model, "model")
    for where, m in flat:
        _check_supported(where, m)
    if with_lengths is None:
        # a padded batch needs its lengths: they are an input whenever they matter
        with_lengths = any(_is_recurrent(m) or type(m) is LastStep for _, m in flat)
    n_rec = sum(_is_recurrent(m) for _, m in flat)
    if with_state and n_rec == 0:
        raise ValueError(f"with_state: {type(model).__name__} has no recurrent layer, "
                         "so there is no state to take or give")
    dtype = model.dtype
    graph = _Graph(onnx)
    batch: Dim = int(batch_size) if batch_size is not None else "batch"
    seq: Dim = int(seq_len) if seq_len is not None else "seq"
    ctx = _Context(graph, bool(with_lengths), bool(with_state), n_rec)

    x_dtype, x_dims = _input_dims(flat, batch, seq)
    graph.add_input("x", x_dtype, x_dims)
    if with_lengths:
        graph.add_input("lengths", np.int64, [batch])
    x = _Value("x", x_dims)
    layout: Optional[Tuple[Any, str]] = None   # set after a bidirectional layer
    for i, (where, m) in enumerate(flat):
        if _is_recurrent(m):
            x = _emit_recurrent(ctx, where, m, x)
        elif type(m) is Dense:
            x = _emit_dense(ctx, where, m, x)
        elif type(m) is Embedding:
            x = _emit_embedding(ctx, where, m, x, first=i == 0)
        elif type(m) is LastStep:
            x = _emit_last_step(ctx, where, m, x, _check_pool_layout(where, m, layout))
        # Dropout: the identity in evaluation mode, and keeps the layout
        if _is_recurrent(m) and m.num_directions == 2:
            layout = (getattr(m, "merge_mode", "concat"), _label(where, m))
        elif type(m) is not Dropout:
            layout = None
    graph.node("Identity", [x.name], ["y"], base="output")
    graph.add_output("y", dtype, x.dims)
    # state outputs were declared as they were made; y goes first
    graph.outputs.insert(0, graph.outputs.pop())

    g = onnx.helper.make_graph(graph.nodes, "rnnpy", graph.inputs, graph.outputs,
                               graph.initializers)
    opsets = [onnx.helper.make_opsetid("", int(opset))]
    proto = onnx.helper.make_model(g, opset_imports=opsets, producer_name="rnnpy",
                                   doc_string=f"rnnpy model: {model!r}"[:4096])
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Module, path: Union[str, "os.PathLike[str]"], *, opset: int = 17,
                batch_size: Optional[int] = None, seq_len: Optional[int] = None,
                with_lengths: Optional[bool] = None, with_state: bool = False) -> None:
    """Writes model as a standard ONNX file at path, atomically.

    model: an rnnpy RNN, LSTM, GRU, Dense, Embedding, LastStep, Dropout, or a
        Sequential of them; exported as it computes in evaluation mode, in its
        dtype: a layer with compute_dtype="bfloat16" exports its float32 graph
        (the same weights, products in float32; see the module docstring).
    opset: the ONNX opset to target (13 or newer).
    batch_size, seq_len: fix those dims of the inputs; None keeps them dynamic.
    with_lengths: the input "lengths" (B,) int64, used as every recurrent
        layer's sequence_lens and by LastStep, as rnnpy's forward(x, lengths=).
        None (the default) adds it whenever the model has a recurrent layer or
        LastStep, so that a padded batch gives what predict(x, lengths=) gives;
        False leaves it out (every sequence is taken as T steps long).
    with_state: adds initial-state inputs h0 (and c0 for an LSTM) of shape
        (num_layers*D, B, H) and final-state outputs hT (and cT); otherwise
        the initial state is zeros, as forward(x, state=None).

    TypeError or ValueError names the module when something cannot be exported.
    """
    proto = build_onnx(model, opset=opset, batch_size=batch_size, seq_len=seq_len,
                       with_lengths=with_lengths, with_state=with_state)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data), suffix=".onnx.tmp")
