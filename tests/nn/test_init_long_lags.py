"""Initialisations for long time lags: chrono (LSTM, GRU), forget_bias and
orthogonal recurrent weights; seeded, in every layer and direction, saved with
the model, and invisible to the kernels (gradients and PyTorch parity hold)."""
import math

import numpy as np
import pytest

import rnnpy
from helpers import make_layer, rel_err, torch_stack

torch = pytest.importorskip("torch")


def _suffixes(layer):
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            yield f"_l{k}" + ("_reverse" if d else "")


def _hand_uniform(layer, seed):
    """The default draw, as reset_parameters makes it: one U(-1/sqrt(H), 1/sqrt(H))
    over the flat vector; returns the generator positioned after it."""
    rng = np.random.default_rng(seed)
    k = 1.0 / math.sqrt(layer.hidden_size)
    flat = rng.uniform(-k, k, layer.flat_params.size).astype(layer.dtype)
    return rng, flat


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_chrono_against_a_hand_computation(dtype):
    H, t_max, seed = 5, 120.0, 7
    layer = rnnpy.LSTM(3, H, num_layers=2, bidirectional=True, init="chrono", t_max=t_max,
                       seed=seed, dtype=dtype)
    plain = rnnpy.LSTM(3, H, num_layers=2, bidirectional=True, seed=seed, dtype=dtype)
    rng, flat = _hand_uniform(layer, seed)
    np.testing.assert_array_equal(plain.flat_params, flat)
    for sfx in _suffixes(layer):   # storage order: l0, l0_reverse, l1, l1_reverse
        u = rng.uniform(1.0, t_max - 1.0, H)
        b_ih, b_hh = layer.params["bias_ih" + sfx], layer.params["bias_hh" + sfx]
        np.testing.assert_array_equal(b_ih[H:2 * H], np.log(u).astype(dtype))      # f
        np.testing.assert_array_equal(b_ih[0:H], (-np.log(u)).astype(dtype))       # i
        np.testing.assert_array_equal(b_hh[0:2 * H], 0.0)
        # the g and o gates and every weight keep the default draw
        np.testing.assert_array_equal(b_ih[2 * H:], plain.params["bias_ih" + sfx][2 * H:])
        np.testing.assert_array_equal(b_hh[2 * H:], plain.params["bias_hh" + sfx][2 * H:])
        for w in ("weight_ih", "weight_hh"):
            np.testing.assert_array_equal(layer.params[w + sfx], plain.params[w + sfx])
        total = b_ih[H:2 * H].astype(np.float64) + b_hh[H:2 * H]
        assert np.all((total >= 0) & (total <= np.log(t_max - 1) + 1e-6))


def test_gru_chrono_sets_the_update_gate_only():
    H, t_max, seed = 4, 50, 3
    layer = rnnpy.GRU(2, H, num_layers=2, bidirectional=True, init="chrono", t_max=t_max,
                      seed=seed, dtype="float64")
    plain = rnnpy.GRU(2, H, num_layers=2, bidirectional=True, seed=seed, dtype="float64")
    rng, _ = _hand_uniform(layer, seed)
    for sfx in _suffixes(layer):
        u = rng.uniform(1.0, t_max - 1.0, H)
        b_ih, b_hh = layer.params["bias_ih" + sfx], layer.params["bias_hh" + sfx]
        np.testing.assert_array_equal(b_ih[H:2 * H], np.log(u))     # z = block 1 of r, z, n
        np.testing.assert_array_equal(b_hh[H:2 * H], 0.0)
        for b in ("bias_ih", "bias_hh"):   # r and n untouched
            for blk in (slice(0, H), slice(2 * H, 3 * H)):
                np.testing.assert_array_equal(layer.params[b + sfx][blk], plain.params[b + sfx][blk])


@pytest.mark.parametrize("cls,gate,G", [(rnnpy.LSTM, 1, 4), (rnnpy.GRU, 1, 3)])
def test_forget_bias_sum_is_exact_and_nothing_else_moves(cls, gate, G):
    H = 6
    layer = cls(3, H, num_layers=2, bidirectional=True, forget_bias=1.0, seed=11)
    plain = cls(3, H, num_layers=2, bidirectional=True, seed=11)
    for sfx in _suffixes(layer):
        b_ih, b_hh = layer.params["bias_ih" + sfx], layer.params["bias_hh" + sfx]
        np.testing.assert_array_equal(b_ih[gate * H:(gate + 1) * H] + b_hh[gate * H:(gate + 1) * H], 1.0)
        keep = np.ones(G * H, bool)
        keep[gate * H:(gate + 1) * H] = False
        np.testing.assert_array_equal(b_ih[keep], plain.params["bias_ih" + sfx][keep])
        np.testing.assert_array_equal(b_hh[keep], plain.params["bias_hh" + sfx][keep])


@pytest.mark.parametrize("make", [
    lambda: rnnpy.LSTM(3, 6, num_layers=2, bidirectional=True, recurrent_init="orthogonal", seed=2),
    lambda: rnnpy.LSTM(3, 6, proj_size=4, bidirectional=True, recurrent_init="orthogonal", seed=2),
    lambda: rnnpy.GRU(3, 5, num_layers=2, recurrent_init="orthogonal", init="chrono", t_max=9, seed=2),
    lambda: rnnpy.RNN(3, 7, bidirectional=True, recurrent_init="orthogonal", seed=2, dtype="float64"),
    lambda: rnnpy.LSTM(3, 5, layer_norm=True, peephole=True, recurrent_init="orthogonal", seed=2),
])
def test_orthogonal_recurrent_blocks(make):
    layer = make()
    H = layer.hidden_size
    tol = 1e-12 if layer.dtype == np.float64 else 1e-6
    for sfx in _suffixes(layer):
        w = layer.params["weight_hh" + sfx].astype(np.float64)
        assert w.shape[0] % H == 0
        for g in range(w.shape[0] // H):
            q = w[g * H:(g + 1) * H]
            np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=tol)
        assert not np.allclose(w[:H], w[H:2 * H]) if w.shape[0] > H else True


def test_orthogonal_against_a_hand_computation():
    H, seed = 4, 5
    layer = rnnpy.LSTM(2, H, recurrent_init="orthogonal", init="chrono", t_max=30, seed=seed,
                       dtype="float64")
    rng, _ = _hand_uniform(layer, seed)
    for g in range(4):
        q, r = np.linalg.qr(rng.standard_normal((H, H)))
        q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
        np.testing.assert_array_equal(layer.params["weight_hh_l0"][g * H:(g + 1) * H], q)
    u = rng.uniform(1.0, 29.0, H)   # chrono draws after the orthogonal blocks
    np.testing.assert_array_equal(layer.params["bias_ih_l0"][H:2 * H], np.log(u))


@pytest.mark.parametrize("kw", [dict(init="chrono", t_max=40), dict(forget_bias=1.0),
                                dict(recurrent_init="orthogonal"),
                                dict(init="chrono", t_max=40, recurrent_init="orthogonal")])
def test_seeded(kw):
    a = rnnpy.LSTM(3, 5, num_layers=2, bidirectional=True, seed=4, **kw)
    b = rnnpy.LSTM(3, 5, num_layers=2, bidirectional=True, seed=4, **kw)
    c = rnnpy.LSTM(3, 5, num_layers=2, bidirectional=True, seed=5, **kw)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)


@pytest.mark.parametrize("make", [
    lambda: rnnpy.LSTM(3, 5, bidirectional=True, init="chrono", t_max=25.5,
                       recurrent_init="orthogonal", seed=1),
    lambda: rnnpy.GRU(3, 5, num_layers=2, forget_bias=-0.5, seed=1),
    lambda: rnnpy.RNN(3, 5, recurrent_init="orthogonal", seed=1),
])
def test_options_round_trip_through_save_and_load(tmp_path, make):
    layer = make()
    cfg = layer.get_config()
    path = str(tmp_path / "m.rnnpy")
    rnnpy.save(layer, path)
    back = rnnpy.load(path)
    assert back.get_config() == cfg
    for key in ("init", "t_max", "forget_bias", "recurrent_init"):
        assert getattr(back, key) == getattr(layer, key)
    np.testing.assert_array_equal(back.flat_params, layer.flat_params)
    # the config alone rebuilds the same weights (the seed and the options are in it)
    np.testing.assert_array_equal(type(layer)(**cfg).flat_params, layer.flat_params)


@pytest.mark.parametrize("make,exc,words", [
    (lambda: rnnpy.LSTM(3, 4, init="chrono"), ValueError, ["t_max", "needs"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=2), ValueError, ["t_max", "> 2"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=1.5), ValueError, ["t_max", "> 2"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=float("inf")), ValueError, ["t_max", "finite"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=float("nan")), ValueError, ["t_max"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max="100"), TypeError, ["t_max"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=True), TypeError, ["t_max"]),
    (lambda: rnnpy.LSTM(3, 4, t_max=50), ValueError, ["t_max", "chrono"]),
    (lambda: rnnpy.LSTM(3, 4, init="Chrono", t_max=50), ValueError, ["init", "chrono"]),
    (lambda: rnnpy.LSTM(3, 4, init="orthogonal"), ValueError, ["init", "uniform"]),
    (lambda: rnnpy.LSTM(3, 4, recurrent_init="identity"), ValueError, ["recurrent_init", "orthogonal"]),
    (lambda: rnnpy.LSTM(3, 4, init="chrono", t_max=9, forget_bias=1.0), ValueError, ["forget_bias", "one of"]),
    (lambda: rnnpy.LSTM(3, 4, forget_bias="1"), TypeError, ["forget_bias"]),
    (lambda: rnnpy.LSTM(3, 4, forget_bias=float("nan")), TypeError, ["forget_bias", "finite"]),
    (lambda: rnnpy.RNN(3, 4, init="chrono", t_max=9), ValueError, ["init", "RNN", "gates"]),
    (lambda: rnnpy.RNN(3, 4, forget_bias=1.0), ValueError, ["forget_bias", "RNN"]),
])
def test_bad_options_are_named(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("make", [
    lambda: rnnpy.LSTM(3, 4, num_layers=2, bidirectional=True, init="chrono", t_max=12,
                       recurrent_init="orthogonal", dtype="float64", seed=0),
    lambda: rnnpy.GRU(3, 4, num_layers=2, bidirectional=True, init="chrono", t_max=12,
                      recurrent_init="orthogonal", dtype="float64", seed=0),
    lambda: rnnpy.LSTM(3, 4, forget_bias=1.0, peephole=True, dtype="float64", seed=0),
])
def test_gradcheck_with_the_init_options(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    res = rnnpy.gradcheck(layer, x, lengths=[6, 4], max_checks=60)
    assert res.ok and res.checked > 100
    assert max(abs_err for abs_err, _ in res.errors.values()) < 1e-7


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_torch_parity_with_the_init_options(cell, dtype, tol):
    layer = make_layer(cell, 3, 5, num_layers=2, bidirectional=True, init="chrono", t_max=100,
                       recurrent_init="orthogonal", dtype=dtype, seed=9)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 30, 3)).astype(dtype)
    h0 = np.zeros((4, 4, 5), dtype)
    out, _ = layer.forward(x)
    dout = rng.standard_normal(out.shape).astype(dtype)
    layer.zero_grad()
    dx, _ = layer.backward(dout)
    ref = torch_stack(cell, layer.params, x, h0, h0, None, 2, True, True, dout, np.zeros_like(h0))
    assert rel_err(out, ref["out"]) < tol
    assert rel_err(dx, ref["dx"]) < tol
    for name, g in ref["grads"].items():
        assert rel_err(layer.grads[name], g) < tol, name


def test_chrono_keeps_a_memory_that_uniform_loses():
    """What chrono is for: with zero input weights, a unit's cell state after a
    one-step kick decays as prod f_t; chrono's forget gates hold it for tens of
    steps where the default ones (f ~ 0.5) lose it in a few."""
    def decay(**kw):
        layer = rnnpy.LSTM(1, 8, seed=0, dtype="float64", **kw)
        layer.params["weight_hh_l0"][...] = 0.0
        layer.params["weight_ih_l0"][...] = 0.0
        layer.params["weight_ih_l0"][2 * 8:3 * 8] = 5.0   # x moves g, nothing else
        x = np.zeros((2, 60, 1))
        x[0, 0, 0] = 1.0                                  # a kick at step 0 in row 0 only
        _, (_, c_end) = layer.forward(x)
        _, (_, c_one) = layer.forward(x[:, :1])
        # with W_hh = 0 the gates ignore the past: the kick's trace is prod_t f_t times itself
        return np.max(np.abs(c_end[0, 0] - c_end[0, 1]) / np.abs(c_one[0, 0] - c_one[0, 1]))
    assert decay(init="chrono", t_max=200) > 0.05
    assert decay() < 1e-6


@pytest.mark.parametrize("cls", [rnnpy.LSTM, rnnpy.GRU])
def test_onnx_export_accepts_the_init_options(tmp_path, cls):
    ort = pytest.importorskip("onnxruntime")
    layer = cls(3, 4, init="chrono", t_max=30, recurrent_init="orthogonal", seed=0)
    path = str(tmp_path / "m.onnx")
    rnnpy.export_onnx(layer, path)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    lengths = np.array([5, 3], dtype=np.int64)
    got = sess.run(None, {"x": x, "lengths": lengths})[0]
    want, _ = layer.forward(x, lengths=lengths)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
