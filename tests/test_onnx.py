"""ONNX export: exported graphs run in onnxruntime and match rnnpy's forward.

onnxruntime runs ONNX RNN/LSTM/GRU in float32 only ("does not support double
yet"), so float64 models are checked with onnx's own reference evaluator
(NumPy), which ignores sequence_lens and knows no Relu RNN: float64 cases run
without lengths, with Relu added to its RNN below. The largest difference per
cell and dtype is printed when the module finishes.
"""
import os
from collections import defaultdict

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx.reference import ReferenceEvaluator  # noqa: E402
from onnx.reference.ops.op_rnn import RNN_14  # noqa: E402

import rnnpy  # noqa: E402
from rnnpy.io.onnx import build_onnx, export_onnx  # noqa: E402

# (name, class, constructor options)
CELLS = [
    ("rnn_tanh", rnnpy.RNN, {"nonlinearity": "tanh"}),
    ("rnn_relu", rnnpy.RNN, {"nonlinearity": "relu"}),
    ("lstm", rnnpy.LSTM, {}),
    ("lstm_peephole", rnnpy.LSTM, {"peephole": True}),
    ("gru", rnnpy.GRU, {}),
]
CELL_IDS = [c[0] for c in CELLS]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
B, T, I, H = 4, 7, 3, 5
LENGTHS = np.array([7, 3, 1, 5], dtype=np.int64)  # shorter than T, and length 1

_largest = defaultdict(float)  # (case, dtype) -> largest |onnx - rnnpy|


@pytest.fixture(scope="module", autouse=True)
def _summary(pytestconfig):
    yield
    lines = ["", "ONNX export: largest |onnx - rnnpy| per case and dtype "
                 "(float32: onnxruntime; float64: onnx reference evaluator)"]
    for (case, dt), diff in sorted(_largest.items()):
        lines.append(f"  {case:16s} {dt:8s} {diff:.3e}")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print("\n".join(lines))
    else:
        print("\n".join(lines))


def _record(case, dtype, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{case}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{case}: dtype {got.dtype} != {want.dtype}"
    diff = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
    key = (case, np.dtype(dtype).name)
    _largest[key] = max(_largest[key], diff)
    np.testing.assert_allclose(got, want, err_msg=case, **TOL[np.dtype(dtype).type])


class RNN(RNN_14):
    """The reference evaluator's RNN with Relu, which ONNX's RNN allows."""

    op_domain = ""

    def choose_act(self, name, alpha, beta):
        if name in ("Relu", "relu"):
            return lambda x: np.maximum(x, 0)
        return super().choose_act(name, alpha, beta)


def _run(model, feed, dtype, tmp_path, **options):
    """The exported model's outputs: onnxruntime (float32) or the reference evaluator (float64)."""
    path = tmp_path / "model.onnx"
    options.setdefault("with_lengths", "lengths" in feed)   # the default adds it to recurrent models
    export_onnx(model, path, **options)
    if np.dtype(dtype) == np.float32:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, feed)
    assert "lengths" not in feed  # the reference evaluator ignores sequence_lens
    return ReferenceEvaluator(str(path), new_ops=[RNN], check_shape_annotations=True).run(None, feed)


def _layer(cls, opts, dtype, **kw):
    m = cls(I, H, dtype=dtype, seed=7, **opts, **kw)
    if opts.get("peephole"):
        # large enough to matter: a peephole row in the wrong place shows
        for name, p in m.params.items():
            if name.startswith("weight_peep"):
                p *= 3
    return m


def _x(layer, rng, dtype, batch=B, steps=T):
    shape = (steps, batch, I) if layer.time_major else (batch, steps, I)
    return rng.standard_normal(shape).astype(dtype)


# -- every cell, layers, directions, layouts, lengths -----------------------------
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("time_major", [False, True], ids=["bt", "tb"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_recurrent_layer_float32(cell, num_layers, bidirectional, time_major, with_lengths, tmp_path):
    name, cls, opts = cell
    m = _layer(cls, opts, "float32", num_layers=num_layers, bidirectional=bidirectional,
               time_major=time_major)
    rng = np.random.default_rng(num_layers * 4 + bidirectional * 2 + time_major)
    x = _x(m, rng, np.float32)
    lengths = LENGTHS if with_lengths else None
    want, _ = m.forward(x, lengths=lengths)
    feed = {"x": x, **({"lengths": lengths} if with_lengths else {})}
    (got,) = _run(m, feed, np.float32, tmp_path, with_lengths=with_lengths)
    _record(name, np.float32, got, want)
    if with_lengths:  # ONNX zeroes the steps past each length, as rnnpy does
        steps = got if not time_major else got.transpose(1, 0, 2)
        for b, n in enumerate(lengths):
            assert not steps[b, n:].any()


@pytest.mark.parametrize("time_major", [False, True], ids=["bt", "tb"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_recurrent_layer_float64(cell, num_layers, bidirectional, time_major, tmp_path):
    name, cls, opts = cell
    m = _layer(cls, opts, "float64", num_layers=num_layers, bidirectional=bidirectional,
               time_major=time_major)
    x = _x(m, np.random.default_rng(num_layers), np.float64)
    want, _ = m.forward(x)
    (got,) = _run(m, {"x": x}, np.float64, tmp_path)
    _record(name, np.float64, got, want)


# float64 runs only without lengths: no float64 runtime honours sequence_lens
DTYPE_LENGTHS = [pytest.param(np.float32, False, id="f32-full"),
                 pytest.param(np.float32, True, id="f32-lengths"),
                 pytest.param(np.float64, False, id="f64-full")]


@pytest.mark.parametrize("dtype, with_lengths", DTYPE_LENGTHS)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_initial_and_final_state(cell, dtype, with_lengths, tmp_path):
    name, cls, opts = cell
    m = _layer(cls, opts, np.dtype(dtype).name, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    x = _x(m, rng, dtype)
    h0 = rng.standard_normal((4, B, H)).astype(dtype)
    c0 = rng.standard_normal((4, B, H)).astype(dtype)
    is_lstm = cls is rnnpy.LSTM
    lengths = LENGTHS if with_lengths else None
    y, state = m.forward(x, (h0, c0) if is_lstm else h0, lengths)
    feed = {"x": x, "h0": h0, **({"c0": c0} if is_lstm else {}),
            **({"lengths": lengths} if with_lengths else {})}
    got = _run(m, feed, dtype, tmp_path, with_state=True, with_lengths=with_lengths)
    want = [y, *state] if is_lstm else [y, state]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _record(name, dtype, g, w)


def test_peephole_weights_matter():
    # the peephole cases above would not notice a wrong P order if P did not count
    m = _layer(rnnpy.LSTM, {"peephole": True}, "float32")
    x = _x(m, np.random.default_rng(0), np.float32)
    y, _ = m.forward(x)
    m.params["weight_peep_l0"][...] = m.params["weight_peep_l0"][[0, 2, 1]]
    y2, _ = m.forward(x)
    assert np.abs(y - y2).max() > 1e-2


# -- chains ------------------------------------------------------------------------
def _classifier(dtype, time_major, bidirectional=True, vocab=11):
    return rnnpy.Sequential(
        rnnpy.Embedding(vocab, 6, dtype=dtype, seed=1),
        rnnpy.LSTM(6, H, num_layers=2, bidirectional=bidirectional, dropout=0.3,
                   time_major=time_major, dtype=dtype, seed=2),
        rnnpy.LastStep(time_major=time_major, dtype=dtype),
        rnnpy.Dropout(0.5, dtype=dtype, seed=3),
        rnnpy.Dense(2 * H if bidirectional else H, 4, dtype=dtype, seed=4),
    ).eval()


@pytest.mark.parametrize("dtype, with_lengths", DTYPE_LENGTHS)
@pytest.mark.parametrize("time_major", [False, True], ids=["bt", "tb"])
def test_embedding_lstm_laststep_dense(time_major, dtype, with_lengths, tmp_path):
    model = _classifier(np.dtype(dtype).name, time_major)
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 11, size=(T, B) if time_major else (B, T)).astype(np.int64)
    lengths = LENGTHS if with_lengths else None
    want, _ = model.forward(ids, lengths=lengths)
    feed = {"x": ids, **({"lengths": lengths} if with_lengths else {})}
    (got,) = _run(model, feed, dtype, tmp_path, with_lengths=with_lengths)
    assert got.shape == (B, 4)
    _record("chain", dtype, got, want)


def test_chain_with_empty_sequence(tmp_path):
    # a length of 0: the recurrent layer outputs zeros, LastStep gives zeros, Dense its bias
    model = _classifier("float32", False)
    ids = np.random.default_rng(6).integers(0, 11, size=(B, T)).astype(np.int64)
    lengths = np.array([7, 0, 2, 1], dtype=np.int64)
    want, _ = model.forward(ids, lengths=lengths)
    (got,) = _run(model, {"x": ids, "lengths": lengths}, np.float32, tmp_path, with_lengths=True)
    _record("chain", np.float32, got, want)
    np.testing.assert_allclose(got[1], model.params["4.bias"], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_dense_before_and_after_recurrent_steps(dtype, tmp_path):
    dt = np.dtype(dtype).name
    model = rnnpy.Sequential(
        rnnpy.Dense(I, 6, dtype=dt, seed=1),
        rnnpy.Sequential(rnnpy.GRU(6, H, dtype=dt, seed=2), rnnpy.Dropout(0.2, dtype=dt)),
        rnnpy.Dense(H, 2, bias=False, dtype=dt, seed=3),
    ).eval()
    x = np.random.default_rng(7).standard_normal((B, T, I)).astype(dtype)
    want, _ = model.forward(x)
    (got,) = _run(model, {"x": x}, dtype, tmp_path)
    _record("chain", dtype, got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_dense_only_is_a_gemm(dtype, tmp_path):
    dt = np.dtype(dtype).name
    model = rnnpy.Sequential(rnnpy.Dense(5, 8, dtype=dt, seed=1), rnnpy.Dense(8, 3, dtype=dt, seed=2))
    x = np.random.default_rng(8).standard_normal((6, 5)).astype(dtype)
    want, _ = model.forward(x)
    (got,) = _run(model, {"x": x}, dtype, tmp_path)
    _record("dense", dtype, got, want)
    assert [n.op_type for n in build_onnx(model).graph.node].count("Gemm") == 2


def test_two_recurrent_layers_number_their_states(tmp_path):
    model = rnnpy.Sequential(rnnpy.LSTM(I, H, seed=1), rnnpy.RNN(H, 4, num_layers=2, seed=2))
    rng = np.random.default_rng(9)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    s0 = (rng.standard_normal((1, B, H)).astype(np.float32),
          rng.standard_normal((1, B, H)).astype(np.float32))
    s1 = rng.standard_normal((2, B, 4)).astype(np.float32)
    y, (st0, st1) = model.forward(x, [s0, s1], LENGTHS)
    feed = {"x": x, "lengths": LENGTHS, "h0_0": s0[0], "c0_0": s0[1], "h0_1": s1}
    path = tmp_path / "m.onnx"
    export_onnx(model, path, with_state=True, with_lengths=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["y", "hT_0", "cT_0", "hT_1"]
    got = session.run(None, feed)
    for g, w in zip(got, [y, st0[0], st0[1], st1]):
        _record("chain", np.float32, g, w)


# -- the graph's interface ------------------------------------------------------------
def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_dynamic_batch_and_time(tmp_path):
    m = rnnpy.LSTM(I, H, bidirectional=True)
    path = tmp_path / "m.onnx"
    export_onnx(m, path)
    proto = onnx.load(str(path))
    assert _dims(proto.graph.input[0]) == ["batch", "seq", I]
    assert _dims(proto.graph.output[0]) == ["batch", "seq", 2 * H]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(10)
    for batch, steps in ((1, 1), (3, 12), (9, 2)):
        x = rng.standard_normal((batch, steps, I)).astype(np.float32)
        lengths = rng.integers(0, steps + 1, batch)
        _record("lstm", np.float32, session.run(None, {"x": x, "lengths": lengths})[0],
                m.forward(x, lengths=lengths)[0])


def test_fixed_sizes_and_names(tmp_path):
    m = rnnpy.GRU(I, H, time_major=True)
    proto = build_onnx(m, batch_size=2, seq_len=9, with_lengths=True, with_state=True)
    g = proto.graph
    assert [v.name for v in g.input] == ["x", "lengths", "h0"]
    assert [v.name for v in g.output] == ["y", "hT"]
    assert _dims(g.input[0]) == [9, 2, I] and _dims(g.input[1]) == [2]
    assert _dims(g.output[0]) == [9, 2, H] and _dims(g.output[1]) == [1, 2, H]
    assert [n.op_type for n in g.node].count("GRU") == 1


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_opsets(opset, tmp_path):
    m = rnnpy.LSTM(I, H, num_layers=2, bidirectional=True, peephole=True, seed=1)
    x = np.random.default_rng(11).standard_normal((B, T, I)).astype(np.float32)
    (got,) = _run(m, {"x": x, "lengths": LENGTHS}, np.float32, tmp_path, opset=opset,
                  with_lengths=True)
    _record("lstm_peephole", np.float32, got, m.forward(x, lengths=LENGTHS)[0])
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


def test_one_node_per_layer():
    m = rnnpy.LSTM(I, H, num_layers=3, bidirectional=True)
    nodes = build_onnx(m).graph.node
    lstm = [n for n in nodes if n.op_type == "LSTM"]
    assert len(lstm) == 3
    assert all(a.s == b"bidirectional" for n in lstm for a in n.attribute if a.name == "direction")
    gru = [n for n in build_onnx(rnnpy.GRU(I, H)).graph.node if n.op_type == "GRU"]
    assert [a.i for a in gru[0].attribute if a.name == "linear_before_reset"] == [1]


def test_float64_is_exported_as_double():
    proto = build_onnx(rnnpy.GRU(I, H, dtype="float64"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    weights = [t for t in proto.graph.initializer if t.name.startswith("gru")]
    assert len(weights) == 3
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in weights)
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


# -- writing ------------------------------------------------------------------------
def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")

    class Custom(rnnpy.Module):
        dtype = np.dtype(np.float32)

        def get_config(self):
            return {}

    with pytest.raises(TypeError):
        export_onnx(Custom(), path)

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(rnnpy.RNN(I, H), path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["m.onnx"]
    monkeypatch.undo()
    export_onnx(rnnpy.RNN(I, H), path)
    onnx.checker.check_model(str(path))
    assert os.listdir(tmp_path) == ["m.onnx"]


# -- what cannot be exported ---------------------------------------------------------
def test_unknown_module_is_refused():
    class Custom(rnnpy.Module):
        dtype = np.dtype(np.float32)

        def get_config(self):
            return {}

    with pytest.raises(TypeError, match=r"model\.modules\[1\] \(Custom\).*exportable modules"):
        build_onnx(rnnpy.Sequential(rnnpy.GRU(I, H), Custom()))
    with pytest.raises(TypeError, match="model: expected an rnnpy module"):
        build_onnx("lstm")


def test_subclass_of_a_layer_is_refused():
    class MyLSTM(rnnpy.LSTM):
        pass

    with pytest.raises(TypeError, match=r"model \(MyLSTM\).*subclass of LSTM"):
        build_onnx(MyLSTM(I, H))


def test_option_without_onnx_equivalent_is_refused():
    m = rnnpy.LSTM(I, H)
    config = m.get_config()
    m.get_config = lambda: {**config, "layer_norm": True}
    with pytest.raises(ValueError, match=r"model \(LSTM\).*layer_norm=True"):
        build_onnx(m)
    m.get_config = lambda: {**config, "layer_norm": False}  # an option that is off exports
    build_onnx(m)


def test_embedding_must_come_first():
    model = rnnpy.Sequential(rnnpy.Dense(3, 3), rnnpy.Embedding(4, 3))
    with pytest.raises(ValueError, match=r"model\.modules\[1\] \(Embedding\).*first module"):
        build_onnx(model)


def test_dropout_alone_is_refused():
    with pytest.raises(ValueError, match=r"model \(Dropout\).*needs a rank"):
        build_onnx(rnnpy.Dropout(0.1))


def test_mismatched_sizes_are_refused():
    model = rnnpy.Sequential(rnnpy.Dense(3, 5), rnnpy.LSTM(4, H))
    with pytest.raises(ValueError, match=r"model\.modules\[1\] \(LSTM\).*input_size = 4.*gives 5"):
        build_onnx(model)
    model = rnnpy.Sequential(rnnpy.LSTM(3, H), rnnpy.LastStep(), rnnpy.LastStep())
    with pytest.raises(ValueError, match=r"model\.modules\[2\] \(LastStep\).*3-D"):
        build_onnx(model)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"opset": 12}, ValueError, "opset: expected an int in"),
    ({"opset": "17"}, TypeError, "opset: expected an int"),
    ({"batch_size": 0}, ValueError, "batch_size: expected a positive int"),
    ({"seq_len": 2.5}, ValueError, "seq_len: expected a positive int"),
    ({"with_lengths": 1}, TypeError, "with_lengths: expected a bool"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_onnx(rnnpy.RNN(I, H), **kwargs)


def test_with_state_needs_a_recurrent_layer():
    with pytest.raises(ValueError, match="with_state: Dense has no recurrent layer"):
        build_onnx(rnnpy.Dense(3, 2), with_state=True)
