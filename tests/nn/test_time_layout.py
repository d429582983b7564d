"""A Sequential follows the time layout of each module's input: a module that
reads the time axis (LastStep, a recurrent layer) with the other layout than
the module before it gives is refused at construction, naming both positions,
instead of reading the batch axis as time. Matching layouts give what the
batch-first model gives, in rnnpy and in the ONNX export (onnxruntime)."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"


def _gru(tm, bidirectional=False):
    return rnnpy.GRU(3, 4, time_major=tm, bidirectional=bidirectional, dtype=F64, seed=0)


@pytest.mark.parametrize("make", [
    lambda: (_gru(True), rnnpy.LastStep(dtype=F64)),
    lambda: (_gru(False), rnnpy.LastStep(time_major=True, dtype=F64)),
    lambda: (_gru(True), rnnpy.Dropout(0.2, dtype=F64), rnnpy.Dense(4, 4, dtype=F64),
             rnnpy.LastStep(dtype=F64)),
    lambda: (_gru(True), rnnpy.LSTM(4, 4, dtype=F64)),
    lambda: (_gru(True, True), rnnpy.LastStep(dtype=F64)),
], ids=["tm_then_bf", "bf_then_tm", "through_dropout_dense", "recurrent_then_recurrent",
        "bidirectional"])
def test_mismatch_refused_naming_both(make):
    mods = make()
    with pytest.raises(ValueError) as info:
        rnnpy.Sequential(*mods)
    msg = str(info.value)
    last = len(mods) - 1
    assert f"modules[{last}] ({type(mods[-1]).__name__})" in msg
    assert "modules[0] (GRU)" in msg and "time_major" in msg


def test_mismatch_refused_through_nested_sequentials():
    inner = rnnpy.Sequential(rnnpy.Dropout(0.1, dtype=F64), rnnpy.LastStep(dtype=F64))
    with pytest.raises(ValueError, match=r"modules\[1\]\.modules\[1\] \(LastStep\).*"
                                         r"modules\[0\]\.modules\[0\] \(GRU\)"):
        rnnpy.Sequential(rnnpy.Sequential(_gru(True)), inner)
    # refused before anything was adopted: both parts can still be used
    rnnpy.Sequential(rnnpy.Sequential(_gru(False)), inner)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_time_major_model_equals_batch_first_model(bidirectional):
    lengths = np.array([4, 1, 0, 3])
    x = np.random.default_rng(0).standard_normal((4, 4, 3))   # T == B: shapes cannot tell
    want = rnnpy.Sequential(_gru(False, bidirectional), rnnpy.LastStep(dtype=F64),
                            rnnpy.Dense(4 * (1 + bidirectional), 2, dtype=F64, seed=1))
    got = rnnpy.Sequential(_gru(True, bidirectional), rnnpy.Dropout(0.3, dtype=F64),
                           rnnpy.Sequential(rnnpy.LastStep(time_major=True, dtype=F64)),
                           rnnpy.Dense(4 * (1 + bidirectional), 2, dtype=F64, seed=1)).eval()
    for ln in (None, lengths):
        a = want.forward(x, lengths=ln)[0]
        b = got.forward(x.transpose(1, 0, 2).copy(), lengths=ln)[0]
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_onnx_time_major_pooling_matches(bidirectional, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    d = 1 + bidirectional
    model = rnnpy.Sequential(rnnpy.GRU(3, 4, time_major=True, bidirectional=bidirectional, seed=0),
                             rnnpy.Dropout(0.2), rnnpy.LastStep(time_major=True),
                             rnnpy.Dense(4 * d, 2, seed=1)).eval()
    lengths = np.array([5, 2, 0])
    x = np.random.default_rng(0).standard_normal((5, 3, 3)).astype(np.float32)  # (T, B, I)
    for b, n in enumerate(lengths):
        x[n:, b] = 0
    path = tmp_path / "m.onnx"
    rnnpy.export_onnx(model, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x, "lengths": lengths.astype(np.int64)})[0]
    want = model.forward(x, lengths=lengths)[0]
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
