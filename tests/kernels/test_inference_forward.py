"""The inference forward (keep_cache=False, rnnpy.no_grad()): the LSTM kernel
keeps no cache and computes the input projection block by block, yet its
outputs are bit for bit those of the training forward; nothing is kept, so
backward refuses; the mode is per thread and predict/evaluate use it."""
import itertools
import threading

import numpy as np
import pytest

import rnnpy
from rnnpy import _core



def _lstm_case(rng, dtype, compute, peep, proj, ln, I, H):
    cell = _core.LSTMCell(I, H, peephole=peep, proj_size=proj, layer_norm=ln, dtype=dtype)
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.3
    cell.compute_dtype = compute
    return cell


COMPUTES = [("float32", "float32"), ("float64", "float64"), ("float32", "bfloat16")]


@pytest.mark.parametrize("dtype,compute", COMPUTES)
@pytest.mark.parametrize("peep,proj,ln", [(False, 0, False), (True, 0, False), (False, 3, False),
                                          (False, 0, True), (True, 3, True)])
def test_lstm_inference_equals_training_forward(dtype, compute, peep, proj, ln):
    rng = np.random.default_rng(7)
    # shapes that cross the projection blocks: B = 1 with T past a block (65 steps of
    # 4H = 1024 gates), a last block of one step, T = B = 1, and a wide batch; B = 1
    # over few steps, where the weights are read in place (W_ih too, or W_hh only)
    for (T, B, I, H), batch_first, reverse, lengths, masks in itertools.product(
            [(1, 1, 5, 7), (65, 1, 8, 256), (9, 5, 6, 11), (3, 40, 4, 9), (3, 1, 100, 96),
             (4, 1, 8, 160)], [False, True], [False, True], [False, True], [False, True]):
        cell = _lstm_case(rng, dtype, compute, peep, proj, ln, I, H)
        Hs = proj or H
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
        kw = {"reverse": reverse, "batch_first": batch_first}
        if lengths:
            kw["lengths"] = rng.integers(0, T + 1, B)
        if masks:
            lead = x.shape[:2]
            kw["zoneout_h"] = (rng.random(lead + (Hs,)) < 0.3).astype(dtype)
            kw["zoneout_c"] = (rng.random(lead + (H,)) < 0.3).astype(dtype)
            kw["rec_mask"] = (rng.random((B, Hs)) < 0.7).astype(dtype) / 0.7
        h0 = rng.standard_normal((B, Hs)).astype(dtype)
        c0 = rng.standard_normal((B, H)).astype(dtype)
        want = cell.forward(x, h0, c0, **kw)
        got = cell.forward(x, h0, c0, keep_cache=False, **kw)
        for w, g, name in zip(want, got, ("out", "hT", "cT")):
            np.testing.assert_array_equal(g, w, err_msg=f"{name} T,B,I,H={(T, B, I, H)} {kw.keys()}")
        with pytest.raises(RuntimeError, match="nothing to differentiate"):
            cell.backward()


@pytest.mark.parametrize("dtype,compute", COMPUTES)
@pytest.mark.parametrize("kind,ln", [("gru", False), ("gru", True), ("tanh", False),
                                     ("relu", False)])
def test_gru_rnn_inference_equals_training_forward(dtype, compute, kind, ln):
    rng = np.random.default_rng(11)
    for (T, B, I, H), batch_first, reverse, lengths, masks in itertools.product(
            [(1, 1, 5, 7), (65, 1, 8, 400), (9, 5, 6, 11), (3, 40, 4, 9), (3, 1, 100, 96),
             (4, 1, 8, 160)], [False, True], [False, True], [False, True], [False, True]):
        if kind == "gru":
            cell = _core.GRUCell(I, H, layer_norm=ln, dtype=dtype)
        else:
            cell = _core.RNNCell(I, H, nonlinearity=kind, dtype=dtype)
        cell.params[:] = rng.standard_normal(cell.num_params) * (0.3 if kind != "relu" else 0.05)
        cell.compute_dtype = compute
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
        kw = {"reverse": reverse, "batch_first": batch_first}
        if lengths:
            kw["lengths"] = rng.integers(0, T + 1, B)
        if masks:
            kw["zoneout_h"] = (rng.random(x.shape[:2] + (H,)) < 0.3).astype(dtype)
            kw["rec_mask"] = (rng.random((B, H)) < 0.7).astype(dtype) / 0.7
        h0 = rng.standard_normal((B, H)).astype(dtype)
        want = cell.forward(x, h0, **kw)
        got = cell.forward(x, h0, keep_cache=False, **kw)
        assert np.isfinite(want[0]).all()
        for w, g in zip(want, got):
            np.testing.assert_array_equal(g, w, err_msg=f"T,B,I,H={(T, B, I, H)} {sorted(kw)}")
        with pytest.raises(RuntimeError, match="nothing to differentiate"):
            cell.backward()
        cell.forward(x, h0, **kw)        # an ordinary forward makes backward possible again
        dx, _ = cell.backward(np.ones_like(want[0]))
        assert dx.shape == x.shape and (lengths or np.abs(dx).sum() > 0)


def _models():
    yield rnnpy.Sequential(rnnpy.LSTM(4, 8, num_layers=2, bidirectional=True, seed=0),
                           rnnpy.LastStep(), rnnpy.Dense(16, 3, seed=1))
    yield rnnpy.Sequential(rnnpy.GRU(4, 8, seed=0), rnnpy.LastStep(), rnnpy.Dense(8, 3, seed=1))
    yield rnnpy.Sequential(rnnpy.LSTM(4, 8, proj_size=5, layer_norm=True, seed=0),
                           rnnpy.LastStep(), rnnpy.Dense(5, 3, seed=1))


@pytest.mark.parametrize("model", list(_models()), ids=["lstm2bi", "gru", "lstm-proj-ln"])
def test_no_grad_layers(model):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 7, 4)).astype(np.float32)
    model.eval()
    want = model(x)[0]
    with rnnpy.no_grad():
        assert not rnnpy.nn.grad_enabled()
        got = model(x)[0]
    assert rnnpy.nn.grad_enabled()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.predict(x), want)
    with rnnpy.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(want))
    model(x)
    model.backward(np.ones_like(want))   # outside no_grad, backward works again


def test_no_grad_is_per_thread():
    seen = []
    with rnnpy.no_grad():
        t = threading.Thread(target=lambda: seen.append(rnnpy.nn.grad_enabled()))
        t.start()
        t.join()
        seen.append(rnnpy.nn.grad_enabled())
    assert seen == [True, False]


def test_evaluate_keeps_nothing():
    rng = np.random.default_rng(4)
    model = rnnpy.Sequential(rnnpy.LSTM(3, 5, seed=0), rnnpy.LastStep(), rnnpy.Dense(5, 2, seed=1))
    x = rng.standard_normal((8, 4, 3)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    model.compile(loss="cross_entropy", optimizer="adam")
    model.evaluate(x, y)
    with pytest.raises(RuntimeError, match="nothing to differentiate"):
        model.modules[0].backward(np.zeros((8, 4, 5), np.float32))
