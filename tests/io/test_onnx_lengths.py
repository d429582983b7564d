"""The ONNX export takes lengths by default: on a post-padded batch the exported
graph gives what rnnpy.predict(model, x, lengths=) gives, for every layer kind
and option the exporter supports (onnxruntime, ragged lengths including 0 and T)."""
import numpy as np
import pytest
from helpers import CELL_KINDS

import rnnpy

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

I, H, B, T, C = 3, 4, 5, 6, 3
LENGTHS = np.array([6, 1, 0, 4, 3])
# name -> (layer class, constructor options), from the one list of cells
CELLS = {mode.lower(): (getattr(rnnpy, k.layer), dict(k.kwargs)) for mode, k in CELL_KINDS.items()}


def _session(model, tmp_path, **options):
    path = tmp_path / "m.onnx"
    rnnpy.export_onnx(model, path, **options)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _x(time_major, seed, embedding=False):
    rng = np.random.default_rng(seed)
    if embedding:
        ids = rng.integers(0, 7, (B, T))
        return ids.T.copy() if time_major else ids
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    for b, n in enumerate(LENGTHS):   # post-padding, as a padded batch has
        x[b, n:] = 0.0
    return x.transpose(1, 0, 2).copy() if time_major else x


def _want(model, x):
    """predict(model, x, lengths=), or for a time-major model (which predict
    refuses) the evaluation-mode forward."""
    if any(getattr(m, "time_major", False) for m in model.modules):
        return model.eval().forward(x, lengths=LENGTHS)[0]
    return rnnpy.predict(model, x, lengths=LENGTHS)


def test_default_export_takes_lengths_and_matches_predict(tmp_path):
    model = rnnpy.Sequential(rnnpy.LSTM(I, H, seed=0), rnnpy.LastStep(), rnnpy.Dense(H, C, seed=1))
    sess = _session(model, tmp_path)
    assert [i.name for i in sess.get_inputs()] == ["x", "lengths"]
    x = _x(False, 0)
    got = sess.run(None, {"x": x, "lengths": LENGTHS})[0]
    np.testing.assert_allclose(got, rnnpy.predict(model, x, lengths=LENGTHS), rtol=1e-5, atol=1e-6)


def test_lengths_left_out_only_when_asked_or_meaningless(tmp_path):
    lstm = rnnpy.LSTM(I, H, seed=0)
    assert [i.name for i in _session(lstm, tmp_path, with_lengths=False).get_inputs()] == ["x"]
    dense = rnnpy.Dense(I, C)
    assert [i.name for i in _session(dense, tmp_path).get_inputs()] == ["x"]
    with pytest.raises(TypeError, match="with_lengths: expected a bool or None"):
        rnnpy.export_onnx(lstm, tmp_path / "m.onnx", with_lengths="yes")


@pytest.mark.parametrize("time_major", [False, True], ids=["bt", "tb"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_layer_with_ragged_lengths(cell, bidirectional, num_layers, time_major, tmp_path):
    cls, opts = CELLS[cell]
    layer = cls(I, H, num_layers=num_layers, bidirectional=bidirectional, time_major=time_major,
                seed=2, **opts)
    D = 2 if bidirectional else 1
    model = rnnpy.Sequential(layer, rnnpy.Dropout(0.3), rnnpy.LastStep(time_major=time_major),
                             rnnpy.Dense(D * H, C, seed=3))
    model.eval()
    x = _x(time_major, 1)
    sess = _session(model, tmp_path)
    got = sess.run(None, {"x": x, "lengths": LENGTHS})[0]
    np.testing.assert_allclose(got, _want(model, x), rtol=1e-5, atol=1e-5)
    # and the sequence output of the layer alone
    seq = _session(layer, tmp_path).run(None, {"x": x, "lengths": LENGTHS})[0]
    np.testing.assert_allclose(seq, layer.forward(x, lengths=LENGTHS)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("time_major", [False, True], ids=["bt", "tb"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_embedding_model_with_ragged_lengths(bidirectional, time_major, tmp_path):
    D = 2 if bidirectional else 1
    model = rnnpy.Sequential(rnnpy.Embedding(7, I, seed=0),
                             rnnpy.GRU(I, H, bidirectional=bidirectional, time_major=time_major, seed=1),
                             rnnpy.LastStep(time_major=time_major), rnnpy.Dense(D * H, C, seed=2))
    ids = _x(time_major, 2, embedding=True)
    got = _session(model, tmp_path).run(None, {"x": ids, "lengths": LENGTHS})[0]
    np.testing.assert_allclose(got, _want(model, ids), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "mul", "ave"])
def test_merge_modes_with_ragged_lengths(mode, tmp_path):
    model = rnnpy.Sequential(rnnpy.LSTM(I, H, num_layers=2, bidirectional=True, merge_mode=mode,
                                        seed=0), rnnpy.Dense(H, C, seed=1))
    x = _x(False, 3)
    got = _session(model, tmp_path).run(None, {"x": x, "lengths": LENGTHS})[0]
    np.testing.assert_allclose(got, model.forward(x, lengths=LENGTHS)[0], rtol=1e-5, atol=1e-6)
    pooled = rnnpy.Sequential(rnnpy.LSTM(I, H, bidirectional=True, merge_mode=mode), rnnpy.LastStep())
    with pytest.raises(ValueError, match=r"modules\[1\] \(LastStep\).*merge_mode='concat'"):
        rnnpy.export_onnx(pooled, tmp_path / "p.onnx")
