"""One parameter buffer per module is the only truth: a module is used once in
one model (tied weights and sharing are refused, naming positions), and
assigning to params/grads/flat_params/flat_grads or mutating the dicts copies
into that buffer or is refused, so forward, optimizers and save() agree."""
import gc

import numpy as np
import pytest

import rnnpy
from rnnpy import optim

F64 = "float64"


def _x(shape=(2, 4, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- a module used twice (tied weights) -------------------------------------------------
def test_same_dense_twice_is_refused_naming_both_positions():
    d = rnnpy.Dense(3, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"modules\[1\] \(Dense\): the same module is already "
                                         r"at modules\[0\]"):
        rnnpy.Sequential(d, d)


def test_same_module_at_different_depths_is_refused():
    d = rnnpy.Dense(3, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"modules\[1\]\.modules\[1\] \(Dense\).*modules\[0\]"):
        rnnpy.Sequential(d, rnnpy.Sequential(rnnpy.Dense(3, 3, dtype=F64), d))
    inner = rnnpy.Sequential(rnnpy.Dense(3, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"modules\[1\] \(Sequential\).*modules\[0\]"):
        rnnpy.Sequential(inner, inner)


def test_same_recurrent_layer_twice_is_refused():
    lstm = rnnpy.LSTM(3, 3, dtype=F64)
    with pytest.raises(ValueError, match=r"modules\[2\] \(LSTM\).*modules\[0\]"):
        rnnpy.Sequential(lstm, rnnpy.Dropout(0.1, dtype=F64), lstm)


def test_the_chain_is_fixed_so_a_model_cannot_contain_itself():
    model = rnnpy.Sequential(rnnpy.Dense(3, 3, dtype=F64))
    assert isinstance(model.modules, tuple)
    with pytest.raises(AttributeError, match="modules: fixed at construction"):
        model.modules = [model]
    with pytest.raises((AttributeError, TypeError)):
        model.modules.append(model)  # type: ignore[attr-defined]


def test_two_separate_dense_layers_still_train_exactly():
    # the supported way to tie: two modules; gradients are each use's own
    a, b = rnnpy.Dense(3, 3, dtype=F64, seed=0), rnnpy.Dense(3, 3, dtype=F64, seed=0)
    model = rnnpy.Sequential(a, b)
    x = _x((2, 3))
    y, _ = model.forward(x)
    h = x @ a.params["weight"].T + a.params["bias"]
    model.backward(np.ones_like(y))
    np.testing.assert_allclose(b.grads["weight"], np.ones((3, 2)) @ h, rtol=1e-14)


# -- a module in two models ------------------------------------------------------------
def test_layer_in_a_second_model_is_refused_and_the_first_model_trains_it():
    layer = rnnpy.GRU(3, 4, dtype=F64, seed=1)
    first = rnnpy.Sequential(layer, rnnpy.LastStep(dtype=F64), rnnpy.Dense(4, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"modules\[0\] \(GRU\): already belongs to another "
                                         r"Sequential"):
        rnnpy.Sequential(layer, rnnpy.LastStep(dtype=F64))
    with pytest.raises(ValueError, match=r"already belongs"):   # nested too
        rnnpy.Sequential(rnnpy.Sequential(layer))
    opt = optim.SGD(first, lr=0.5)
    before = layer.params["weight_hh_l0"].copy()
    y, _ = first.forward(_x())
    first.zero_grad()
    first.backward(np.ones_like(y))
    opt.step()
    assert not np.array_equal(layer.params["weight_hh_l0"], before)
    np.testing.assert_array_equal(layer.params["weight_hh_l0"], first.params["0.weight_hh_l0"])
    assert np.shares_memory(layer.flat_params, first.flat_params)


def test_a_dead_models_layers_may_join_another():
    layer = rnnpy.RNN(3, 4, dtype=F64, seed=1)
    rnnpy.Sequential(layer)
    gc.collect()
    second = rnnpy.Sequential(layer)
    assert np.shares_memory(layer.flat_params, second.flat_params)


def test_bind_of_a_module_inside_a_model_is_refused():
    layer = rnnpy.LSTM(3, 4, dtype=F64)
    model = rnnpy.Sequential(layer)
    n = layer.num_params
    with pytest.raises(RuntimeError, match=r"LSTM\.bind: the module belongs to a Sequential"):
        layer.bind(np.zeros(n), np.zeros(n))
    assert np.shares_memory(layer.flat_params, model.flat_params)


# -- assignments copy into the buffer ----------------------------------------------------
def test_assigning_flat_params_copies_and_forward_uses_it():
    layer = rnnpy.RNN(3, 4, dtype=F64, seed=0)
    model = rnnpy.Sequential(layer, rnnpy.LastStep(dtype=F64))
    buf = model.flat_params
    layer.flat_params = np.zeros(layer.num_params)
    assert model.flat_params is buf and not buf.any()
    y, _ = model.forward(_x())
    assert not y.any()                     # tanh(0) everywhere: the kernels saw the zeros
    with pytest.raises(ValueError, match=r"flat_params: expected shape \(num_params,\)"):
        layer.flat_params = np.zeros(3)
    model.flat_params = np.arange(model.num_params, dtype=float)
    np.testing.assert_array_equal(layer.flat_params, np.arange(layer.num_params))


def test_assigning_params_dict_copies_by_name():
    a = rnnpy.LSTM(3, 4, dtype=F64, seed=0)
    b = rnnpy.LSTM(3, 4, dtype=F64, seed=5)
    model = rnnpy.Sequential(a)
    a.params = {k: v.copy() for k, v in b.params.items()}
    np.testing.assert_array_equal(model.flat_params, b.flat_params)
    np.testing.assert_array_equal(model.forward(_x())[0], b.forward(_x())[0])
    with pytest.raises(KeyError, match="missing.*weight_hh_l0"):
        a.params = {"weight_ih_l0": b.params["weight_ih_l0"]}
    with pytest.raises(TypeError, match="params: expected a dict"):
        a.params = [1, 2]


def test_assigning_grads_copies_into_the_models_gradients():
    d = rnnpy.Dense(2, 2, dtype=F64)
    model = rnnpy.Sequential(d)
    d.grads = {"weight": np.ones((2, 2)), "bias": np.ones(2)}
    np.testing.assert_array_equal(model.flat_grads, np.ones(6))
    d.flat_grads = np.full(6, 2.0)
    np.testing.assert_array_equal(model.grads["0.bias"], [2.0, 2.0])
    opt = optim.SGD(model, lr=1.0)
    before = model.flat_params.copy()
    opt.step()
    np.testing.assert_array_equal(model.flat_params, before - 2.0)


def test_live_dict_mutations_copy_or_are_refused():
    d = rnnpy.Dense(2, 2, dtype=F64)
    model = rnnpy.Sequential(d)
    for call in (lambda p: p.pop("weight"), lambda p: p.popitem(), lambda p: p.clear(),
                 lambda p: p.__delitem__("bias")):
        with pytest.raises(TypeError, match="parameter names of a module are fixed"):
            call(d.params)
        with pytest.raises(TypeError, match="parameter names of a module are fixed"):
            call(model.grads)
    assert sorted(d.params) == ["bias", "weight"]
    d.params.update({"bias": [1.0, 2.0]})
    d.params.update(weight=np.eye(2))
    np.testing.assert_array_equal(model.params["0.bias"], [1.0, 2.0])
    d.params |= {"bias": [3.0, 4.0]}
    np.testing.assert_array_equal(model.forward(np.zeros((1, 2)))[0], [[3.0, 4.0]])
    np.testing.assert_array_equal(model.flat_params, [1, 0, 0, 1, 3, 4])
    # all checked before any is copied
    with pytest.raises(ValueError, match=r"params\['weight'\]"):
        d.params.update({"bias": [9.0, 9.0], "weight": np.ones(3)})
    np.testing.assert_array_equal(d.params["bias"], [3.0, 4.0])
    with pytest.raises(KeyError, match="no such parameter"):
        d.params.update({"gamma": [1.0]})
    with pytest.raises(KeyError, match="no such parameter"):
        d.params.setdefault("gamma", np.ones(2))
    assert np.shares_memory(d.params.setdefault("bias", None), model.flat_params)


# -- optimizers and state dicts follow the buffer -----------------------------------------
def test_optimizer_on_a_child_after_it_joined_updates_the_model():
    layer = rnnpy.Dense(3, 2, dtype=F64)
    model = rnnpy.Sequential(layer)
    opt = optim.Adam(layer, lr=0.1)
    y, _ = model.forward(_x((4, 3)))
    model.backward(np.ones_like(y))
    before = model.flat_params.copy()
    opt.step()
    assert not np.array_equal(model.flat_params, before)
    np.testing.assert_array_equal(model.params["0.weight"], layer.params["weight"])


def test_optimizer_built_before_the_module_joined_follows_it():
    layer = rnnpy.Dense(3, 2, dtype=F64)
    opt = optim.SGD(layer, lr=1.0)
    model = rnnpy.Sequential(layer)
    model.flat_grads = np.ones(model.num_params)
    before = model.flat_params.copy()
    opt.step()
    np.testing.assert_array_equal(model.flat_params, before - 1.0)
    y, _ = model.forward(np.ones((1, 3)))
    np.testing.assert_allclose(y, np.ones((1, 3)) @ (before[:6].reshape(2, 3) - 1).T
                               + before[6:] - 1, rtol=1e-14)


def test_load_state_dict_on_a_child_and_save_agree(tmp_path):
    layer = rnnpy.GRU(3, 4, dtype=F64, seed=0)
    model = rnnpy.Sequential(layer, rnnpy.LastStep(dtype=F64))
    other = rnnpy.GRU(3, 4, dtype=F64, seed=9)
    layer.load_state_dict(other.state_dict())
    layer.params["bias_hh_l0"] = np.full(12, 0.25)
    model.save(str(tmp_path / "m.npz"))
    back = rnnpy.load(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.flat_params, model.flat_params)
    np.testing.assert_array_equal(back.params["0.bias_hh_l0"], np.full(12, 0.25))
    np.testing.assert_array_equal(back.params["0.weight_ih_l0"], other.params["weight_ih_l0"])
