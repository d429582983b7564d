"""backward differentiates the parameters forward used: every write through
rnnpy (optimizer step, load_state_dict, params / flat_params assignment,
reset_parameters) gives the model's parameters a new version, and a backward
whose forward saw an older version is refused, as PyTorch refuses a tensor
modified in place. Writes that change nothing of the parameters (gradients,
random state, a refused assignment) keep it."""
import numpy as np
import pytest

import rnnpy
from rnnpy import optim

F64 = "float64"
CHANGED = "parameters changed since forward"


def _lstm_model():
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, dtype=F64, seed=0), rnnpy.LastStep(dtype=F64),
                            rnnpy.Dense(4, 2, dtype=F64, seed=1))


def _x():
    return np.random.default_rng(0).standard_normal((2, 5, 3))


WRITES = {
    "sgd_step": lambda m: (setattr(m, "flat_grads", np.ones(m.num_params)),
                           optim.SGD(m, lr=0.5).step()),
    "adam_step_on_child": lambda m: optim.Adam(m.modules[0], lr=0.1).step(),
    "load_state_dict": lambda m: m.load_state_dict({k: 2 * v for k, v in m.state_dict().items()}),
    "child_load_state_dict": lambda m: m.modules[2].load_state_dict(m.modules[2].state_dict()),
    "flat_params_assignment": lambda m: setattr(m, "flat_params", m.flat_params * 3),
    "params_item": lambda m: m.params.__setitem__("2.bias", np.zeros(2)),
    "child_params_update": lambda m: m.modules[0].params.update(
        {"bias_ih_l0": np.zeros(16)}),
    "params_assignment": lambda m: setattr(m.modules[2], "params",
                                           {k: v * 2 for k, v in m.modules[2].params.items()}),
    "reset_parameters": lambda m: m.modules[0].reset_parameters(),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_backward_after_a_parameter_write_is_refused(write):
    m = _lstm_model()
    y, _ = m.forward(_x())
    WRITES[write](m)
    grads = m.flat_grads.copy()
    with pytest.raises(RuntimeError, match=CHANGED):
        m.backward(np.ones_like(y))
    np.testing.assert_array_equal(m.flat_grads, grads)
    # a child's own backward is refused too
    with pytest.raises(RuntimeError, match=CHANGED):
        m.modules[2].backward(np.ones((2, 2)))
    # a new forward is differentiable again, and gives the gradients of the new weights
    fresh = _lstm_model()
    fresh.load_state_dict(m.state_dict())
    for model in (m, fresh):
        model.zero_grad()
        y, _ = model.forward(_x())
        model.backward(np.ones_like(y))
    np.testing.assert_array_equal(m.flat_grads, fresh.flat_grads)


@pytest.mark.parametrize("module", [
    lambda: rnnpy.Dense(3, 2, dtype=F64, seed=0),
    lambda: rnnpy.GRU(3, 2, dtype=F64, seed=0),
])
def test_bare_layer(module):
    m = module()
    y = m.forward(_x())
    y = y[0] if isinstance(y, tuple) else y
    optim.SGD(m, lr=0.1).step()
    with pytest.raises(RuntimeError, match=CHANGED):
        m.backward(np.ones_like(y))


def test_writes_that_leave_the_parameters_keep_the_version():
    m = _lstm_model()
    y, _ = m.forward(_x())
    before = m.flat_params.copy()
    m.flat_grads = np.ones(m.num_params)
    m.zero_grad()
    m.grads["2.bias"] = np.ones(2)
    m.zero_grad()
    m.set_rng_state(m.rng_state())
    _ = m.state_dict()
    optim.clip_grad_norm(m, 1.0)
    with pytest.raises(ValueError):
        m.params["2.bias"] = np.zeros(3)          # refused: nothing written
    with pytest.raises(KeyError):
        m.load_state_dict({"nope": 1})
    m.backward(np.ones_like(y))
    np.testing.assert_array_equal(m.flat_params, before)


def test_fit_is_unaffected():
    m = _lstm_model()
    x = np.random.default_rng(0).standard_normal((8, 5, 3))
    y = np.array([0, 1] * 4)
    # a fixed shuffling seed: with one drawn per run, 4 of 60 orders of these 8 random
    # samples end the third epoch above the first's loss
    h = rnnpy.fit(m, (x, y), loss="cross_entropy", optimizer=optim.Adam(m, lr=0.1), epochs=3,
                  batch_size=4, progress=False, seed=0)
    loss = h["loss"] if isinstance(h, dict) else h.history["loss"]
    assert loss[-1] < loss[0]
