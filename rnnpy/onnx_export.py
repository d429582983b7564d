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

onnx is imported only when export_onnx runs, so rnnpy does not need it.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .io import atomic_write

from .layers import GRU, LSTM, RNN
from .module import Module, holds_model_lock
from .nn import Dense, Dropout, Embedding, LastStep, Sequential

MIN_OPSET = 13  # Squeeze/Unsqueeze take axes as an input from opset 13 on

# gate blocks of PyTorch's layout, in ONNX's order
_PEEP_ROWS = (0, 2, 1)      # i, f, o -> i, o, f

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
# how the weights started (chrono, forget bias, orthogonal) changes nothing at inference
for _name in ("RNN", "LSTM", "GRU"):
    _KNOWN_CONFIG[_name] |= {"init", "t_max", "forget_bias", "recurrent_init"}

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
        Sequential of them; exported as it computes in evaluation mode.
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
