"""Bidirectional merge modes: concat (PyTorch's), sum, mul, ave, and the two
directions apart (None); forward, finite differences, saving and ONNX."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"
MODES = ["sum", "mul", "ave"]
CELLS = {"rnn": rnnpy.RNN, "lstm": rnnpy.LSTM, "gru": rnnpy.GRU}


def pair(cell, mode, **kw):
    """A merged layer and a concat layer with the same weights."""
    a = CELLS[cell](3, 4, num_layers=2, bidirectional=True, dtype=F64, seed=1, merge_mode=mode, **kw)
    b = CELLS[cell](3, 4, num_layers=2, bidirectional=True, dtype=F64, seed=1, **kw)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    return a, b


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mode", MODES)
def test_merged_output_combines_the_concatenated_halves(cell, mode):
    a, b = pair(cell, mode)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out, st = a.forward(x, lengths=[5, 3])
    ref, ref_st = b.forward(x, lengths=[5, 3])
    f, r = ref[..., :4], ref[..., 4:]
    want = {"sum": f + r, "mul": f * r, "ave": (f + r) / 2}[mode]
    assert out.shape == (2, 5, 4)
    np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-15)
    for s, t in zip(st if isinstance(st, tuple) else (st,), ref_st if isinstance(ref_st, tuple) else (ref_st,)):
        np.testing.assert_array_equal(s, t)   # the final states do not depend on merging


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mode", MODES)
def test_merged_gradients_match_finite_differences(cell, mode):
    a, _ = pair(cell, mode, dropout=0.3)
    x = np.random.default_rng(1).standard_normal((3, 4, 3))
    res = rnnpy.gradcheck(a, x, lengths=[4, 2, 0], max_checks=30)
    assert res.ok and res.max_abs_error() < 1e-8


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_separate_directions(cell):
    a, b = pair(cell, None)
    x = np.random.default_rng(2).standard_normal((2, 5, 3))
    (f, r), _ = a.forward(x)
    ref, _ = b.forward(x)
    np.testing.assert_array_equal(f, ref[..., :4])
    np.testing.assert_array_equal(r, ref[..., 4:])
    rng = np.random.default_rng(3)
    gf, gr = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 4))
    a.zero_grad(), b.zero_grad()
    dx, _ = a.backward((gf, gr))
    dx_ref, _ = b.backward(np.concatenate([gf, gr], axis=2))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a.flat_grads, b.flat_grads, rtol=1e-13, atol=1e-15)
    a.zero_grad(), b.zero_grad()
    dx, _ = a.backward((None, gr))
    dx_ref, _ = b.backward(np.concatenate([np.zeros_like(gf), gr], axis=2))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-15)
    with pytest.raises(TypeError, match=r"^dout: expected a tuple \(dout_forward, dout_backward\)"):
        a.backward(np.concatenate([gf, gr], axis=2))
    with pytest.raises(ValueError, match=r"^dout\[1\]: expected shape \(B, T, H\) = \(2, 5, 4\)"):
        a.backward((gf, gr[:, :3]))


def test_merge_mode_is_validated_saved_and_ignored_when_unidirectional(tmp_path):
    with pytest.raises(ValueError, match="^merge_mode: expected one of"):
        rnnpy.LSTM(3, 4, bidirectional=True, merge_mode="max")
    one = rnnpy.GRU(3, 4, merge_mode="sum", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    assert one.forward(x)[0].shape == (2, 3, 4)
    m = rnnpy.LSTM(3, 4, bidirectional=True, merge_mode="ave", seed=0)
    m.save(tmp_path / "m.npz")
    back = rnnpy.load(tmp_path / "m.npz")
    assert back.merge_mode == "ave"
    np.testing.assert_array_equal(back.forward(x)[0], m.forward(x)[0])


@pytest.mark.parametrize("mode", MODES)
def test_merged_layers_export_to_onnx(mode, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = rnnpy.Sequential(rnnpy.LSTM(3, 4, num_layers=2, bidirectional=True, merge_mode=mode, seed=0),
                             rnnpy.Dense(4, 2, seed=1))
    model.eval()
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    rnnpy.export_onnx(model, str(tmp_path / "m.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    lengths = np.array([6, 3])
    got = sess.run(None, {"x": x, "lengths": lengths})[0]
    np.testing.assert_allclose(got, model.forward(x, lengths=lengths)[0], rtol=1e-5, atol=1e-6)


def test_separate_directions_cannot_export(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="merge_mode=None"):
        rnnpy.export_onnx(rnnpy.GRU(3, 4, bidirectional=True, merge_mode=None), str(tmp_path / "g.onnx"))
