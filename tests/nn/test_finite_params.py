"""Parameters are finite whatever path writes them: params[name] =, update,
|=, params = {...}, flat_params =, bind(copy=False) refuse NaN and Inf (also a
value that overflows the module's dtype) naming the parameter, as
load_state_dict does, and change nothing. An init option whose value is not
finite in the layer's dtype (forget_bias=1e300 in float32) is refused by name
instead of building an Inf bias."""
import numpy as np
import pytest

import rnnpy

BAD = [np.nan, np.inf, -np.inf]


def _writes(m, bad):
    w = np.array(m.params["weight"], dtype=np.float64)
    w.flat[1] = bad
    return {
        "item": lambda: m.params.__setitem__("weight", w),
        "update": lambda: m.params.update({"bias": np.zeros(2), "weight": w}),
        "ior": lambda: m.params.__ior__({"weight": w}),
        "params": lambda: setattr(m, "params", {"weight": w, "bias": np.zeros(2)}),
        "flat_params": lambda: setattr(m, "flat_params",
                                       np.concatenate([w.ravel(), np.zeros(2)])),
    }


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("bad", BAD + [1e300], ids=["nan", "inf", "-inf", "overflows_float32"])
@pytest.mark.parametrize("path", ["item", "update", "ior", "params", "flat_params"])
@pytest.mark.parametrize("inside", [False, True], ids=["bare", "in_sequential"])
def test_assignment_refuses_non_finite(bad, path, inside):
    d = rnnpy.Dense(2, 2, seed=0)   # float32: 1e300 becomes Inf
    if inside:
        rnnpy.Sequential(rnnpy.Dense(2, 2, seed=1), d)
    before = d.flat_params.copy()
    name = "flat_params" if path == "flat_params" else r"params\['weight'\]"
    with pytest.raises(ValueError, match=rf"{name}: expected finite values"):
        _writes(d, bad)[path]()
    np.testing.assert_array_equal(d.flat_params, before)


def test_sequential_names_the_parameter():
    m = rnnpy.Sequential(rnnpy.Dense(2, 2), rnnpy.Dense(2, 2))
    with pytest.raises(ValueError, match=r"params\['1.bias'\]: expected finite values"):
        m.params["1.bias"] = [0.0, np.nan]


def test_bind_refuses_non_finite_values_it_would_adopt():
    d = rnnpy.Dense(2, 2, dtype="float64")
    p = np.zeros(6)
    p[3] = np.nan
    with pytest.raises(ValueError, match="flat_params: expected finite values"):
        d.bind(p, np.zeros(6), copy=False)
    assert np.isfinite(d.flat_params).all()


def test_gradients_may_still_be_set_to_anything():
    d = rnnpy.Dense(2, 2, dtype="float64")
    d.grads["bias"] = [np.nan, 1.0]
    assert np.isnan(d.grads["bias"][0])


@pytest.mark.parametrize("cls", [rnnpy.LSTM, rnnpy.GRU])
@pytest.mark.parametrize("value", [1e300, -1e39, 3.5e38])
def test_forget_bias_must_be_finite_in_the_dtype(cls, value):
    with pytest.raises(ValueError, match=r"forget_bias: expected a number finite in float32"):
        cls(2, 3, forget_bias=value)
    layer = cls(2, 3, forget_bias=value, dtype="float64")   # representable there
    assert np.isfinite(layer.flat_params).all()
    assert np.isfinite(cls(2, 3, forget_bias=3e38).flat_params).all()


def test_chrono_with_a_huge_t_max_stays_finite_in_float32():
    layer = rnnpy.LSTM(2, 3, init="chrono", t_max=1e300)
    assert np.isfinite(layer.flat_params).all()
