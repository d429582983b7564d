"""LastStep after a bidirectional layer: the forward half at each sequence's
last valid step, the reverse half at t = 0 (the reverse direction's final
output), as PyTorch's h_n and Keras's Bidirectional give; merged directions are
refused. Checked against PyTorch, finite differences, predict and time-major."""
import numpy as np
import pytest

import rnnpy

torch = pytest.importorskip("torch")

F64 = "float64"
CELLS = {"rnn": (rnnpy.RNN, torch.nn.RNN), "lstm": (rnnpy.LSTM, torch.nn.LSTM),
         "gru": (rnnpy.GRU, torch.nn.GRU)}
LENGTHS = np.array([5, 2, 0, 4])


def _model(cell, time_major=False, num_layers=2, dropout=0.0):
    ours = CELLS[cell][0]
    layer = ours(3, 4, num_layers=num_layers, bidirectional=True, dtype=F64, seed=3,
                 time_major=time_major)
    return rnnpy.Sequential(layer, rnnpy.Dropout(dropout, dtype=F64, seed=1),
                            rnnpy.LastStep(time_major=time_major, dtype=F64),
                            rnnpy.Dense(8, 2, dtype=F64, seed=4))


def _torch_pooled(cell, model, x, lengths):
    """cat(h_n forward, h_n reverse) of the top layer, then the Dense, in PyTorch."""
    layer = model.modules[0]
    ref = CELLS[cell][1](3, 4, num_layers=layer.num_layers, bidirectional=True,
                         batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.from_numpy(layer.params[name]))
    xt = torch.tensor(x, requires_grad=True)
    keep = lengths > 0
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt[keep], torch.tensor(lengths[keep]),
                                                     batch_first=True, enforce_sorted=False)
    _, st = ref(packed)
    h = st[0] if isinstance(st, tuple) else st
    pooled = torch.zeros(len(lengths), 8, dtype=torch.float64)
    pooled[torch.tensor(keep)] = torch.cat([h[-2], h[-1]], dim=1)
    dense = model.modules[3]
    y = pooled @ torch.tensor(dense.params["weight"]).T + torch.tensor(dense.params["bias"])
    return y, xt, ref


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("time_major", [False, True], ids=["batch_first", "time_major"])
def test_pooled_output_and_gradients_match_torch(cell, time_major):
    model = _model(cell, time_major)
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    xin = x.transpose(1, 0, 2).copy() if time_major else x
    y, _ = model.forward(xin, lengths=LENGTHS)
    want, xt, ref = _torch_pooled(cell, model, x, LENGTHS)
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    model.zero_grad()
    dx, _ = model.backward(dy)
    (want * torch.tensor(dy)).sum().backward()
    dx_want = xt.grad.numpy()
    np.testing.assert_allclose(dx.transpose(1, 0, 2) if time_major else dx, dx_want,
                               rtol=1e-10, atol=1e-12)
    layer = model.modules[0]
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_pooled_gradients_match_finite_differences(cell):
    model = _model(cell, num_layers=1)
    x = np.random.default_rng(2).standard_normal((4, 5, 3))
    rnnpy.gradcheck(model, x, lengths=LENGTHS)
    rnnpy.gradcheck(model, x)


def test_predict_and_evaluate_use_each_directions_final_output():
    model = _model("lstm", dropout=0.5)
    x = np.random.default_rng(3).standard_normal((4, 5, 3))
    want, _, _ = _torch_pooled("lstm", model, x, LENGTHS)
    got = rnnpy.predict(model, x, lengths=LENGTHS)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-13)
    y = np.zeros((4, 2))
    res = rnnpy.evaluate(model, (x, y, LENGTHS), loss="mse", metrics=())
    np.testing.assert_allclose(res["loss"], np.mean(want.detach().numpy() ** 2), rtol=1e-12)


def test_nested_sequential_passes_the_layout_on():
    flat = _model("gru")
    layer, drop, last, dense = flat.modules
    x = np.random.default_rng(4).standard_normal((4, 5, 3))
    want, _ = flat.forward(x, lengths=LENGTHS)
    inner = rnnpy.GRU(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    inner.load_state_dict(layer.state_dict())
    d2 = rnnpy.Dense(8, 2, dtype=F64)
    d2.load_state_dict(dense.state_dict())
    nested = rnnpy.Sequential(rnnpy.Sequential(inner), rnnpy.Sequential(
        rnnpy.LastStep(dtype=F64), d2))
    got, _ = nested.forward(x, lengths=LENGTHS)
    np.testing.assert_array_equal(got, want)
    # called on its own afterwards, the inner model is not told of the outer layer
    seq = np.random.default_rng(5).standard_normal((4, 5, 8))
    alone, _ = nested.modules[1].forward(seq, lengths=LENGTHS)
    d2_in = seq[np.arange(4), np.maximum(LENGTHS - 1, 0)] * (LENGTHS > 0)[:, None]
    np.testing.assert_allclose(alone, d2_in @ d2.params["weight"].T + d2.params["bias"],
                               rtol=1e-13)


def test_laststep_directions_argument_direct_use():
    layer = rnnpy.LSTM(3, 4, bidirectional=True, dtype=F64, seed=0)
    x = np.random.default_rng(5).standard_normal((4, 5, 3))
    out, (h, _) = layer.forward(x, lengths=LENGTHS)
    y = rnnpy.LastStep(dtype=F64).forward(out, LENGTHS, directions=2)
    keep = LENGTHS > 0
    np.testing.assert_array_equal(y[keep], np.concatenate([h[0], h[1]], axis=1)[keep])
    assert not y[~keep].any()
    with pytest.raises(ValueError, match="directions: expected 1 or 2"):
        rnnpy.LastStep(dtype=F64).forward(out, LENGTHS, directions=3)


@pytest.mark.parametrize("mode", ["sum", "mul", "ave", None])
def test_merged_directions_are_refused_naming_the_layer(mode):
    model = rnnpy.Sequential(rnnpy.GRU(3, 4, bidirectional=True, merge_mode=mode, dtype=F64),
                             rnnpy.LastStep(dtype=F64))
    x = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match=r"modules\[1\] \(LastStep\).*modules\[0\] \(GRU\).*"
                                         r"merge_mode='concat'"):
        model.forward(x)


def test_after_a_dense_the_last_step_is_taken_whole():
    # a Dense mixes the halves: LastStep takes the last step as before
    model = rnnpy.Sequential(rnnpy.RNN(3, 4, bidirectional=True, dtype=F64, seed=0),
                             rnnpy.Dense(8, 6, dtype=F64, seed=1), rnnpy.LastStep(dtype=F64))
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    y, _ = model.forward(x, lengths=[5, 3])
    h = model.modules[1].forward(model.modules[0].forward(x, lengths=[5, 3])[0])
    np.testing.assert_array_equal(y, h[[0, 1], [4, 2]])
