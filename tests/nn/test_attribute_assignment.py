"""After construction a module refuses to rebind its configuration and its
parameter names as attributes (PyTorch-style ``lstm.weight_hh_l0 = w``, or
``dense.bias = array`` over the bias flag, or ``lstm.hidden_size = 5``), which
were accepted and ignored, with an AttributeError that says what to do
instead. Attributes meant to be set (training, threads, new ones) still work."""
import numpy as np
import pytest

import rnnpy

F64 = "float64"
MODULES = {
    "rnn": lambda: rnnpy.RNN(2, 3, dtype=F64, seed=0),
    "lstm": lambda: rnnpy.LSTM(2, 3, dtype=F64, seed=0, peephole=True),
    "lstm_bi": lambda: rnnpy.LSTM(2, 3, bidirectional=True, num_layers=2, dtype=F64, seed=0),
    "gru": lambda: rnnpy.GRU(2, 3, dtype=F64, seed=0),
    "dense": lambda: rnnpy.Dense(2, 2, dtype=F64, seed=0),
    "dense_no_bias": lambda: rnnpy.Dense(2, 2, bias=False, dtype=F64, seed=0),
    "embedding": lambda: rnnpy.Embedding(5, 2, padding_idx=0, dtype=F64, seed=0),
    "last_step": lambda: rnnpy.LastStep(dtype=F64),
    "dropout": lambda: rnnpy.Dropout(0.3, dtype=F64, seed=0),
    "sequential": lambda: rnnpy.Sequential(rnnpy.GRU(2, 3, dtype=F64, seed=0),
                                           rnnpy.LastStep(dtype=F64)),
}


def _value_like(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)) and v is not None:
        return v + 1
    return "x"


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_configuration_cannot_be_rebound(kind):
    m = MODULES[kind]()
    config = m.get_config()
    before = {k: repr(v) for k, v in config.items()}
    state = m.state_dict()
    for key, value in config.items():
        if key == "modules":
            continue   # Sequential.modules has its own refusal (test_parameter_buffer)
        prop = getattr(type(m), key, None)
        if isinstance(prop, property) and prop.fset is not None:
            continue   # settable configuration (compute_dtype): test_settable_configuration
        with pytest.raises(AttributeError, match=rf"{type(m).__name__}\.{key}: cannot be "
                                                 r"assigned: .*configuration.*build a new"):
            setattr(m, key, _value_like(value))
        with pytest.raises(AttributeError, match="cannot be deleted"):
            delattr(m, key)
    assert {k: repr(v) for k, v in m.get_config().items()} == before
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "lstm_bi", "gru", "dense", "embedding"])
def test_parameter_names_cannot_be_rebound(kind):
    m = MODULES[kind]()
    for name, view in m.params.items():
        with pytest.raises(AttributeError, match=rf"params\[{name!r}\] = value"):
            setattr(m, name, np.zeros(view.shape))
    with pytest.raises(AttributeError, match=r"read \w+\.params\["):
        getattr(m, next(iter(m.params)))


def test_dense_bias_flag_and_values_stay_consistent_through_save(tmp_path):
    d = rnnpy.Dense(2, 2, dtype=F64, seed=0)
    with pytest.raises(AttributeError, match="params\\['bias'\\] = value"):
        d.bias = np.ones(2)
    with pytest.raises(AttributeError, match="use_bias: cannot be assigned"):
        d.use_bias = False
    d.params["bias"] = np.ones(2)   # the way that works
    rnnpy.save(d, tmp_path / "a.npz")
    back = rnnpy.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.params["bias"], np.ones(2))
    assert back.get_config()["bias"] is True


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_settable_configuration(kind):
    """compute_dtype is configuration that may change (the parameters' layout
    does not depend on it): assignment goes through its checks, deletion is refused."""
    m = MODULES[kind]()
    m.compute_dtype = "float64"
    assert m.compute_dtype == "float64" and m.get_config()["compute_dtype"] == "float64"
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        m.compute_dtype = "x"
    with pytest.raises(AttributeError, match="compute_dtype"):
        del m.compute_dtype
    assert m.compute_dtype == "float64"


def test_derived_configuration_is_fixed():
    g = rnnpy.GRU(2, 3, bidirectional=True)
    with pytest.raises(AttributeError, match="num_directions: cannot be assigned"):
        g.num_directions = 1


def test_settable_attributes_still_work():
    g = rnnpy.LSTM(2, 3, dtype=F64, seed=0)
    g.threads = 1
    assert g.threads == 1
    g.training = False
    assert not g.training
    g.train()
    assert g.training
    g.note = "mine"     # a new attribute of the user's
    assert g.note == "mine"
    x = np.ones((1, 4, 2))
    y, _ = g.forward(x)
    g.backward(np.ones_like(y))


def test_a_sequential_dtype_is_fixed():
    m = rnnpy.Sequential(rnnpy.Dense(2, 2))
    with pytest.raises(AttributeError, match="dtype: cannot be assigned"):
        m.dtype = np.dtype("float64")
