"""Embedding(mask_zero=True) and Embedding(padding_idx=k): lengths derived
from right padding for the layers after it, in forward, fit and predict; the
padding row's gradient; saving; refusal of left padding and of ONNX export."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"


def model(**emb):
    return rnnpy.Sequential(rnnpy.Embedding(6, 4, dtype=F64, seed=0, **emb),
                            rnnpy.LSTM(4, 5, dtype=F64, seed=1), rnnpy.LastStep(dtype=F64),
                            rnnpy.Dense(5, 2, dtype=F64, seed=2))


IDS = np.array([[3, 1, 2, 0, 0], [5, 5, 5, 5, 4], [2, 0, 0, 0, 0]])
LENGTHS = np.array([3, 5, 1])


@pytest.mark.parametrize("emb", [dict(mask_zero=True), dict(padding_idx=0)])
def test_padding_derives_lengths(emb):
    m, ref = model(**emb), model()
    ref.flat_params[...] = m.flat_params
    assert list(m.modules[0].lengths_of(IDS)) == [3, 5, 1]
    out, _ = m.forward(IDS)
    want, _ = ref.forward(IDS, lengths=LENGTHS)
    np.testing.assert_array_equal(out, want)
    unmasked, _ = ref.forward(IDS)
    assert not np.allclose(out, unmasked)   # the padding would otherwise reach the state
    np.testing.assert_array_equal(m.predict(IDS), want)


def test_fit_with_mask_zero_equals_fit_with_lengths():
    y = np.array([0, 1, 1])
    a, b = model(mask_zero=True), model()
    b.flat_params[...] = a.flat_params
    ha = a.fit(IDS, y, loss="cross_entropy", optimizer="sgd", epochs=3, shuffle=False, verbose=0)
    hb = b.fit(IDS, y, lengths=LENGTHS, loss="cross_entropy", optimizer="sgd", epochs=3,
               shuffle=False, verbose=0)
    assert ha.history == hb.history
    np.testing.assert_array_equal(a.flat_params, b.flat_params)


def test_padding_idx_row_is_zero_and_gets_no_gradient():
    e = rnnpy.Embedding(6, 3, dtype=F64, seed=0, padding_idx=2)
    assert np.all(e.params["weight"][2] == 0) and np.any(e.params["weight"][1] != 0)
    e.forward(np.array([[2, 1, 2]]))
    e.backward(np.ones((1, 3, 3)))
    assert np.all(e.grads["weight"][2] == 0) and np.all(e.grads["weight"][1] == 1)
    assert rnnpy.Embedding(6, 3, padding_idx=-1).padding_idx == 5


def test_left_padding_and_bad_options_are_refused():
    m = model(mask_zero=True)
    with pytest.raises(ValueError, match=r"Embedding: ids: padding token 0 at row 0, step 0 comes before"):
        m.forward(np.array([[0, 0, 3, 1]]))
    with pytest.raises(ValueError, match="^padding_idx: expected None or an integer"):
        rnnpy.Embedding(6, 3, padding_idx=6)
    with pytest.raises(ValueError, match="^mask_zero: pads with token 0"):
        rnnpy.Embedding(6, 3, padding_idx=2, mask_zero=True)


def test_save_load_keeps_padding(tmp_path):
    m = model(padding_idx=0)
    m.save(str(tmp_path / "m.npz"))
    back = rnnpy.load(str(tmp_path / "m.npz"))
    assert back.modules[0].padding_idx == 0
    np.testing.assert_array_equal(back.forward(IDS)[0], m.forward(IDS)[0])


def test_onnx_export_refuses_derived_lengths(tmp_path):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="cannot export to ONNX: padding_idx/mask_zero"):
        rnnpy.export_onnx(model(mask_zero=True), str(tmp_path / "m.onnx"))
