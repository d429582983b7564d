"""ONNX nodes for each rnnpy module: RNN/LSTM/GRU (weights in ONNX's gate order,
merged biases, peepholes), Dense, Embedding and LastStep.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from ...nn.layers import Dense, Embedding, LastStep
from ...nn.module import Module
from ...nn.recurrent import GRU, LSTM, RNN
from .checks import _check_features, _check_rank, _label
from .graph import _Context, _Value


# gate blocks of PyTorch's layout, in ONNX's order
_PEEP_ROWS = (0, 2, 1)      # i, f, o -> i, o, f


# -- recurrent layers ------------------------------------------------------------------
def _packed_weights(m: Module, layer: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """W (D, G*H, in), R (D, G*H, H), B (D, 2*G*H), P (D, 3*H) or None, in ONNX's gate order."""
    H = m.hidden_size
    # LSTM i, f, g, o -> i, o, f, c(=g); GRU r, z, n -> z, r, h(=n) (rnnpy.cells)
    order = m.family.onnx_gate_order

    def gates(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[g * H:(g + 1) * H] for g in order], axis=0)

    Ws, Rs, Bs, Ps = [], [], [], []
    for d in range(m.num_directions):
        sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
        p = m.params
        Ws.append(gates(p["weight_ih" + sfx]))
        Rs.append(gates(p["weight_hh" + sfx]))
        Bs.append(np.concatenate([gates(p["bias_ih" + sfx]), gates(p["bias_hh" + sfx])]))
        if type(m) is LSTM and m.peephole:
            Ps.append(p["weight_peep" + sfx][list(_PEEP_ROWS)].reshape(-1))
    dt = m.dtype
    P = np.stack(Ps).astype(dt) if Ps else None
    return np.stack(Ws).astype(dt), np.stack(Rs).astype(dt), np.stack(Bs).astype(dt), P


def _emit_recurrent(ctx: _Context, where: str, m: Module, x: _Value) -> _Value:
    g = ctx.graph
    layout = "(T, B, I)" if m.time_major else "(B, T, I)"
    _check_rank(where, m, x, 3, layout)
    _check_features(where, m, x, m.input_size, "input_size")
    D, H, L = m.num_directions, m.hidden_size, m.num_layers
    op = m.family.onnx_op
    dims = x.dims
    T_dim, B_dim = (dims[0], dims[1]) if m.time_major else (dims[1], dims[0])
    tag = f"{op.lower()}{ctx.recurrent_index}"

    seq = x.name if m.time_major else g.node("Transpose", [x.name], base=f"{tag}_x_tbi",
                                             perm=[1, 0, 2])[0]
    has_c = m.family.has_cell_state
    h0 = c0 = None
    if ctx.with_state:
        h0 = ctx.state_name("h0")
        g.add_input(h0, m.dtype, [L * D, B_dim, H])
        if has_c:
            c0 = ctx.state_name("c0")
            g.add_input(c0, m.dtype, [L * D, B_dim, H])

    def layer_state(name: Optional[str], layer: int, stem: str) -> str:
        if name is None:
            return ""
        if L == 1:
            return name
        return g.node("Slice", [name, g.ints(f"start{layer * D}", [layer * D]),
                                g.ints(f"end{(layer + 1) * D}", [(layer + 1) * D]),
                                g.ints("axis0", [0])],
                      base=f"{tag}_l{layer}_{stem}")[0]

    attrs: Dict[str, Any] = {"hidden_size": H,
                             "direction": "bidirectional" if D == 2 else "forward"}
    if type(m) is RNN:
        attrs["activations"] = ["Tanh" if m.nonlinearity == "tanh" else "Relu"] * D
    if type(m) is GRU:
        attrs["linear_before_reset"] = 1

    hT_parts, cT_parts = [], []
    for layer in range(L):
        W, R, B, P = _packed_weights(m, layer)
        inputs = [seq, g.const(f"{tag}_W_l{layer}", W), g.const(f"{tag}_R_l{layer}", R),
                  g.const(f"{tag}_B_l{layer}", B), ctx.lengths_int32(),
                  layer_state(h0, layer, "h0")]
        if has_c:
            inputs.append(layer_state(c0, layer, "c0"))
            inputs.append("" if P is None else g.const(f"{tag}_P_l{layer}", P))
        n_out = (3 if has_c else 2) if ctx.with_state else 1
        outs = g.node(op, inputs, n_out, base=f"{tag}_l{layer}", **attrs)
        if ctx.with_state:
            hT_parts.append(outs[1])
            if has_c:
                cT_parts.append(outs[2])
        # Y (T, D, B, H) -> (T, B, D*H), or (T, B, H) for a merged last layer
        merge = getattr(m, "merge_mode", "concat")
        if D == 1:
            seq = g.node("Squeeze", [outs[0], g.ints("axis1", [1])],
                         base=f"{tag}_l{layer}_y")[0]
        elif layer == L - 1 and merge != "concat":
            fwd, bwd = (g.node("Squeeze", [g.node("Slice", [outs[0], g.ints(f"start{d}", [d]),
                                                             g.ints(f"end{d + 1}", [d + 1]),
                                                             g.ints("axis1", [1])],
                                                  base=f"{tag}_l{layer}_y{d}")[0],
                                           g.ints("axis1", [1])],
                               base=f"{tag}_l{layer}_dir{d}")[0] for d in (0, 1))
            op_name = {"sum": "Add", "ave": "Add", "mul": "Mul"}[merge]
            seq = g.node(op_name, [fwd, bwd], base=f"{tag}_l{layer}_{merge}")[0]
            if merge == "ave":
                half = g.const(f"{tag}_half", np.array(0.5, dtype=m.dtype))
                seq = g.node("Mul", [seq, half], base=f"{tag}_l{layer}_ave_half")[0]
        else:
            tbdh = g.node("Transpose", [outs[0]], base=f"{tag}_l{layer}_y_tbdh", perm=[0, 2, 1, 3])[0]
            seq = g.node("Reshape", [tbdh, g.ints(f"shape_t_b_{D * H}", [0, 0, D * H])],
                         base=f"{tag}_l{layer}_y")[0]

    if ctx.with_state:
        for stem, parts in (("hT", hT_parts), ("cT", cT_parts)):
            if not parts:
                continue
            name = ctx.state_name(stem)
            if len(parts) == 1:
                g.node("Identity", parts, [name], base=f"{tag}_{stem}")
            else:
                g.node("Concat", parts, [name], base=f"{tag}_{stem}", axis=0)
            g.add_output(name, m.dtype, [L * D, B_dim, H])
    ctx.recurrent_index += 1

    width = H if (D == 2 and getattr(m, "merge_mode", "concat") != "concat") else D * H
    if m.time_major:
        return _Value(seq, [T_dim, B_dim, width])
    out = g.node("Transpose", [seq], base=f"{tag}_y_bth", perm=[1, 0, 2])[0]
    return _Value(out, [B_dim, T_dim, width])


# -- the other modules ---------------------------------------------------------------
def _emit_dense(ctx: _Context, where: str, m: Dense, x: _Value) -> _Value:
    g = ctx.graph
    _check_features(where, m, x, m.in_features, "in_features")
    weight = m.params["weight"]
    bias = m.params.get("bias")
    if len(x.dims) == 2:
        inputs = [x.name, g.const("dense_weight", weight)]
        if bias is not None:
            inputs.append(g.const("dense_bias", bias))
        out = g.node("Gemm", inputs, base="dense", transB=1)[0]
    else:
        out = g.node("MatMul", [x.name, g.const("dense_weight_t", weight.T)], base="dense")[0]
        if bias is not None:
            out = g.node("Add", [out, g.const("dense_bias", bias)], base="dense_bias")[0]
    return _Value(out, x.dims[:-1] + [m.out_features])


def _emit_embedding(ctx: _Context, where: str, m: Embedding, x: _Value, first: bool) -> _Value:
    if not first:
        raise ValueError(f"{_label(where, m)}: cannot export to ONNX: an Embedding takes "
                         "integer token ids, so it must be the model's first module")
    g = ctx.graph
    out = g.node("Gather", [g.const("embedding_weight", m.params["weight"]), x.name],
                 base="embedding", axis=0)[0]
    return _Value(out, x.dims + [m.embedding_dim])


def _emit_last_step(ctx: _Context, where: str, m: LastStep, x: _Value, directions: int) -> _Value:
    """Each sequence's last valid step (zeros where the length is 0); after a
    bidirectional layer (directions=2) the reverse half is taken at t = 0."""
    g = ctx.graph
    _check_rank(where, m, x, 3, "(T, B, F)" if m.time_major else "(B, T, F)")
    dims = x.dims
    B_dim, F_dim = (dims[1] if m.time_major else dims[0]), dims[2]
    t_axis = 0 if m.time_major else 1
    if ctx.lengths is None:
        out = g.node("Gather", [x.name, g.const("last_index", np.array(-1, dtype=np.int64))],
                     base="last_step", axis=t_axis)[0]
    else:
        xb = g.node("Transpose", [x.name], base="last_step_btf", perm=[1, 0, 2])[0] \
            if m.time_major else x.name
        one = g.const("one", np.array(1, dtype=np.int64))
        zero = g.const("zero", np.array(0, dtype=np.int64))
        axis1 = g.ints("axis1", [1])
        last = g.node("Sub", [ctx.lengths, one], base="last_index")[0]
        last = g.node("Max", [last, zero], base="last_index_clipped")[0]
        last = g.node("Unsqueeze", [last, axis1], base="last_index_b1")[0]
        out = g.node("GatherND", [xb, last], base="last_step_gather", batch_dims=1)[0]
    if directions == 2:
        # [forward half at the last step | reverse half at t = 0]
        if not isinstance(F_dim, int) or F_dim % 2:
            raise ValueError(f"{_label(where, m)}: cannot export: expects an even, known number "
                             f"of features after a bidirectional layer, got {F_dim}")
        half = F_dim // 2
        first = g.node("Gather", [x.name, g.const("first_index", np.array(0, dtype=np.int64))],
                       base="first_step", axis=t_axis)[0]
        axis_f = g.ints("axis1", [1])
        fwd = g.node("Slice", [out, g.ints("start0", [0]), g.ints(f"end{half}", [half]), axis_f],
                     base="last_step_forward")[0]
        bwd = g.node("Slice", [first, g.ints(f"start{half}", [half]),
                               g.ints(f"end{F_dim}", [F_dim]), axis_f],
                     base="first_step_reverse")[0]
        out = g.node("Concat", [fwd, bwd], base="last_step_directions", axis=1)[0]
    if ctx.lengths is not None:
        zero = g.const("zero", np.array(0, dtype=np.int64))
        axis1 = g.ints("axis1", [1])
        valid = g.node("Greater", [ctx.lengths, zero], base="last_valid")[0]
        valid = g.node("Unsqueeze", [valid, axis1], base="last_valid_b1")[0]
        zero_f = g.const("zero_value", np.zeros((), dtype=m.dtype))
        out = g.node("Where", [valid, out, zero_f], base="last_step")[0]
    return _Value(out, [B_dim, F_dim])
