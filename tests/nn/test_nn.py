"""Dense, Embedding, LastStep, Dropout and Sequential: finite differences,
PyTorch parity, the shared flat buffer, and their argument checks."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"


def rng(seed=0):
    return np.random.default_rng(seed)


def test_dense_gradcheck_any_leading_shape():
    d = rnnpy.Dense(4, 3, dtype=F64, seed=0)
    for shape in [(5, 4), (2, 3, 4), (4,)]:
        res = rnnpy.gradcheck(d, rng().standard_normal(shape), max_checks=None)
        assert res.ok and res.max_abs_error() < 1e-8
        assert set(res.errors) == {"weight", "bias", "x"}


def test_dense_without_bias_has_only_weight():
    d = rnnpy.Dense(4, 3, bias=False, dtype=F64, seed=0)
    assert list(d.params) == ["weight"] and d.num_params == 12
    x = rng().standard_normal((2, 4))
    np.testing.assert_allclose(d.forward(x), x @ d.params["weight"].T, rtol=1e-14)


def test_dense_and_embedding_match_torch():
    torch = pytest.importorskip("torch")
    for dt, tdt, tol in [(F64, torch.float64, 1e-13), ("float32", torch.float32, 1e-6)]:
        d = rnnpy.Dense(5, 3, dtype=dt, seed=1)
        lin = torch.nn.Linear(5, 3, dtype=tdt)
        lin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in d.params.items()})
        x = rng(1).standard_normal((2, 4, 5)).astype(dt)
        dy = rng(2).standard_normal((2, 4, 3)).astype(dt)
        xt = torch.from_numpy(x).requires_grad_()
        yt = lin(xt)
        (yt * torch.from_numpy(dy)).sum().backward()
        y = d.forward(x)
        d.zero_grad()
        dx = d.backward(dy)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(d.grads["weight"], lin.weight.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(d.grads["bias"], lin.bias.grad.numpy(), rtol=tol, atol=tol)

        e = rnnpy.Embedding(7, 3, dtype=dt, seed=2)
        emb = torch.nn.Embedding(7, 3, dtype=tdt)
        emb.load_state_dict({"weight": torch.from_numpy(e.params["weight"].copy())})
        ids = np.array([[1, 6, 1], [0, 1, 3]])
        dy = rng(3).standard_normal((2, 3, 3)).astype(dt)
        out = emb(torch.from_numpy(ids))
        (out * torch.from_numpy(dy)).sum().backward()
        np.testing.assert_array_equal(e.forward(ids), out.detach().numpy())
        e.zero_grad()
        assert e.backward(dy) is None
        np.testing.assert_allclose(e.grads["weight"], emb.weight.grad.numpy(), rtol=tol, atol=tol)


def test_embedding_repeated_ids_accumulate():
    e = rnnpy.Embedding(4, 2, dtype=F64, seed=0)
    e.forward(np.array([2, 2, 2]))
    e.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(e.grads["weight"], [[0, 0], [0, 0], [3, 3], [0, 0]])


@pytest.mark.parametrize("time_major", [False, True])
def test_last_step_picks_each_sequences_last_valid_step(time_major):
    x = rng().standard_normal((3, 5, 2))  # (B, T, F)
    layer = rnnpy.LastStep(time_major=time_major, dtype=F64)
    xin = x.transpose(1, 0, 2) if time_major else x
    np.testing.assert_array_equal(layer.forward(xin), x[:, -1])
    y = layer.forward(xin, lengths=[5, 2, 0])
    np.testing.assert_array_equal(y, np.stack([x[0, 4], x[1, 1], np.zeros(2)]))
    dx = layer.backward(np.ones((3, 2)))
    dxb = dx.transpose(1, 0, 2) if time_major else dx
    assert dxb.sum() == 4 and dxb[0, 4].sum() == 2 and dxb[1, 1].sum() == 2 and dxb[2].sum() == 0
    res = rnnpy.gradcheck(layer, xin, lengths=[5, 2, 0], max_checks=None)
    assert res.ok and res.max_abs_error() < 1e-9


def test_dropout_scales_in_training_and_is_identity_in_eval():
    d = rnnpy.Dropout(0.25, dtype=F64, seed=0)
    x = np.ones((200, 50))
    y = d.forward(x)
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), y)
    d.eval()
    np.testing.assert_array_equal(d.forward(x), x)


def _model(dtype=F64, dropout=0.0):
    return rnnpy.Sequential(
        rnnpy.Embedding(6, 3, dtype=dtype, seed=0),
        rnnpy.LSTM(3, 4, num_layers=2, bidirectional=True, dropout=dropout, dtype=dtype, seed=1),
        rnnpy.GRU(8, 3, dtype=dtype, seed=2),
        rnnpy.LastStep(dtype=dtype),
        rnnpy.Dense(3, 2, dtype=dtype, seed=3),
    )


def test_sequential_puts_the_model_on_one_buffer():
    m = _model()
    assert m.flat_params.size == sum(c.num_params for c in m.modules)
    for child in m.modules:
        assert child.flat_params.size == 0 or np.shares_memory(child.flat_params, m.flat_params)
    assert list(m.params)[:2] == ["0.weight", "1.weight_ih_l0"]
    before = m.forward(np.array([[1, 2, 3]]))[0]
    m.params["4.bias"][...] += 1.0   # writes through to the Dense layer
    np.testing.assert_allclose(m.forward(np.array([[1, 2, 3]]))[0], before + 1.0, rtol=1e-12)
    m.flat_grads[...] = 1.0
    m.zero_grad()
    assert not m.modules[1].flat_grads.any()


def test_sequential_values_survive_binding():
    lstm = rnnpy.LSTM(3, 4, dtype=F64, seed=5)
    dense = rnnpy.Dense(4, 2, dtype=F64, seed=6)
    w = dict(lstm.state_dict(), **{"d." + k: v for k, v in dense.state_dict().items()})
    m = rnnpy.Sequential(lstm, dense)
    np.testing.assert_array_equal(m.params["0.weight_hh_l0"], w["weight_hh_l0"])
    np.testing.assert_array_equal(m.params["1.weight"], w["d.weight"])


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_sequential_gradcheck_with_states_and_lengths(dropout):
    m = _model(dropout=dropout)
    ids = rng().integers(0, 6, (3, 5))
    state = [(rng(1).standard_normal((4, 3, 4)) * 0.3, rng(2).standard_normal((4, 3, 4)) * 0.3),
             rng(3).standard_normal((1, 3, 3)) * 0.3]
    res = rnnpy.gradcheck(m, ids, state, lengths=[5, 2, 0], max_checks=40)
    assert res.ok and res.max_abs_error() < 1e-8
    assert {"state[0]", "state[1]", "state[2]", "4.weight"} <= set(res.errors) and "x" not in res.errors


def test_sequential_returns_one_state_per_recurrent_layer_and_carries_them():
    _, st = _model().forward(rng().integers(0, 6, (2, 8)))
    assert len(st) == 2 and isinstance(st[0], tuple) and st[0][0].shape == (4, 2, 4)
    assert st[1].shape == (1, 2, 3)
    m = rnnpy.Sequential(rnnpy.Embedding(6, 3, dtype=F64, seed=0),
                         rnnpy.LSTM(3, 4, num_layers=2, dtype=F64, seed=1),
                         rnnpy.GRU(4, 3, dtype=F64, seed=2), rnnpy.LastStep(dtype=F64))
    ids = rng().integers(0, 6, (2, 8))
    y_full, st = m.forward(ids)
    # two windows with the state carried equal one run over the whole sequence
    _, st1 = m.forward(ids[:, :5])
    y2, st2 = m.forward(ids[:, 5:], st1)
    np.testing.assert_allclose(y2, y_full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(st2[1], st[1], rtol=1e-12, atol=1e-14)


def test_module_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="^in_features"):
        rnnpy.Dense(0, 3)
    with pytest.raises(ValueError, match=r"^x: expected shape \(\.\.\., in_features\)"):
        rnnpy.Dense(4, 3).forward(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="^ids: expected integer"):
        rnnpy.Embedding(4, 2).forward(np.zeros(3))
    with pytest.raises(ValueError, match=r"^ids: expected values in \[0, 4\), got 4"):
        rnnpy.Embedding(4, 2).forward([1, 4])
    with pytest.raises(ValueError, match=r"^lengths: expected values in \[0, T\] = \[0, 3\]"):
        rnnpy.LastStep().forward(np.zeros((2, 3, 1), np.float32), lengths=[1, 4])
    with pytest.raises(RuntimeError, match="call forward first"):
        rnnpy.Dense(2, 2).backward(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="^modules: expected one dtype"):
        rnnpy.Sequential(rnnpy.Dense(2, 2, dtype="float32"), rnnpy.Dense(2, 2, dtype="float64"))
    with pytest.raises(TypeError, match=r"^modules\[1\]: expected an rnnpy module"):
        rnnpy.Sequential(rnnpy.Dense(2, 2), "relu")
    m = _model()
    with pytest.raises(TypeError, match="^state: expected a list of 2 states"):
        m.forward(np.zeros((1, 2), int), state=[None])
    with pytest.raises(KeyError, match="missing"):
        m.load_state_dict({})


def test_assigning_a_parameter_writes_into_the_model():
    lstm = rnnpy.LSTM(3, 4, dtype=F64, seed=0)
    x = rng().standard_normal((1, 2, 3))
    before = lstm.forward(x)[0]
    lstm.params["weight_ih_l0"] = np.zeros((16, 3))        # assignment, not [...] =
    assert np.shares_memory(lstm.params["weight_ih_l0"], lstm.flat_params)
    assert not lstm.flat_params[:48].any()
    assert not np.allclose(lstm.forward(x)[0], before)
    m = rnnpy.Sequential(rnnpy.Dense(2, 2, dtype=F64, seed=0))
    m.params["0.bias"] = [1.0, 2.0]
    np.testing.assert_array_equal(m.modules[0].params["bias"], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^params\['0.bias'\]: expected shape"):
        m.params["0.bias"] = np.zeros(3)
    with pytest.raises(KeyError, match="no such parameter"):
        m.params["0.weights"] = np.zeros((2, 2))


def test_a_subclass_may_call_super_forward():
    class Scaled(rnnpy.GRU):
        def forward(self, x, state=None, lengths=None):
            out, st = super().forward(x, state, lengths)
            return 2 * out, st

        def backward(self, dout=None, dstate=None):
            return super().backward(None if dout is None else 2 * dout, dstate)

    s, g = Scaled(3, 4, dtype=F64, seed=1), rnnpy.GRU(3, 4, dtype=F64, seed=1)
    x = rng().standard_normal((2, 3, 3))
    np.testing.assert_array_equal(s.forward(x)[0], 2 * g.forward(x)[0])
    assert rnnpy.gradcheck(s, x, max_checks=20).ok


def test_dropout_backward_checks_its_gradient():
    d = rnnpy.Dropout(0.5, dtype=F64, seed=0)
    d.forward(np.ones((4, 5, 3)))
    with pytest.raises(ValueError, match=r"^dy: expected shape x's shape = \(4, 5, 3\), got \(5, 3\)"):
        d.backward(np.ones((5, 3)))
    with pytest.raises(ValueError, match="^dy: expected finite values"):
        d.backward(np.full((4, 5, 3), np.nan))
