"""Bad input gets a clear Python exception that names the argument.

For the layers (rnnpy.RNN, LSTM, GRU): constructor arguments, forward's x,
state and lengths, backward's dout and dstate. For the C types of
rnnpy._core: the cells' constructors (flat params/grads), forward and
backward, and gemm. Also: strided and Fortran-ordered inputs are accepted
and give exactly the contiguous result, and a failed call leaves the object
usable.
"""

import re
import warnings

import numpy as np
import pytest

import rnnpy
from rnnpy import _core

LAYERS = {
    "rnn": (rnnpy.RNN, {}),
    "lstm": (rnnpy.LSTM, {}),
    "gru": (rnnpy.GRU, {}),
}
I, H, T, B = 2, 3, 4, 3


def make(name, **kw):
    cls, extra = LAYERS[name]
    args = dict(dtype="float64", seed=0)
    args.update(extra)
    args.update(kw)
    return cls(I, H, **args)


def x_of(layer, batch=B, steps=T, seed=1):
    rng = np.random.default_rng(seed)
    shape = (steps, batch, layer.input_size) if layer.time_major else (batch, steps, layer.input_size)
    return rng.standard_normal(shape)


def state_of(layer, batch=B, seed=2):
    rng = np.random.default_rng(seed)
    LD = layer.num_layers * layer.num_directions
    h = rng.standard_normal((LD, batch, layer.hidden_size))
    if isinstance(layer, rnnpy.LSTM):
        return h, rng.standard_normal((LD, batch, layer.hidden_size))
    return h


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def assert_same_forward(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for s, t in zip(as_tuple(a[1]), as_tuple(b[1])):
        np.testing.assert_array_equal(s, t)


# ---------------------------------------------------------------------------
# layer constructors

BAD_SIZES = [
    (0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError),
    ("3", TypeError), (None, TypeError), (np.float64(2.0), TypeError),
]


@pytest.mark.parametrize("value,exc", BAD_SIZES, ids=lambda v: repr(v))
@pytest.mark.parametrize("arg", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_constructor_bad_sizes(layer, arg, value, exc):
    cls, extra = LAYERS[layer]
    kw = dict(input_size=2, hidden_size=3, num_layers=1)
    kw[arg] = value
    with pytest.raises(exc, match=rf"^{arg}: expected a positive integer"):
        cls(**kw, **extra)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_constructor_accepts_numpy_integers(layer):
    cls, extra = LAYERS[layer]
    lay = cls(np.int64(2), np.int32(3), num_layers=np.uint8(2), **extra)
    assert (lay.input_size, lay.hidden_size, lay.num_layers) == (2, 3, 2)
    assert type(lay.input_size) is int


@pytest.mark.parametrize("value,exc", [
    (-0.1, ValueError), (1.0, ValueError), (1.5, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), ("0.5", TypeError), (True, TypeError), (None, TypeError),
])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_constructor_bad_dropout(layer, value, exc):
    with pytest.raises(exc, match=r"^dropout: expected a number in \[0, 1\)"):
        make(layer, dropout=value)


@pytest.mark.parametrize("value", ["int32", "float16", complex, np.complex128, "bogus", int,
                                   np.int64, "U3"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_constructor_bad_dtype(layer, value):
    with pytest.raises(TypeError, match=r"^dtype: expected 'float32' or 'float64'"):
        make(layer, dtype=value)


@pytest.mark.parametrize("value", ["float32", np.float32, np.dtype("float64"), "f8", np.float64])
def test_constructor_good_dtypes(value):
    lay = rnnpy.GRU(2, 3, dtype=value)
    assert lay.dtype == np.dtype(value)
    assert lay.flat_params.dtype == np.dtype(value)
    assert rnnpy.GRU(2, 3).dtype == np.float32


@pytest.mark.parametrize("value", ["sigmoid", "TANH", "", None, 1])
def test_constructor_bad_nonlinearity(value):
    with pytest.raises(ValueError, match=r"^nonlinearity: expected 'tanh' or 'relu'"):
        rnnpy.RNN(2, 3, nonlinearity=value)


@pytest.mark.parametrize("arg,value", [
    ("bidirectional", 1), ("bidirectional", "yes"), ("time_major", 0), ("time_major", None),
])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_constructor_bad_flags(layer, arg, value):
    with pytest.raises(TypeError, match=rf"^{arg}: expected a bool"):
        make(layer, **{arg: value})


def test_constructor_bad_peephole_and_seed():
    with pytest.raises(TypeError, match=r"^peephole: expected a bool"):
        rnnpy.LSTM(2, 3, peephole=1)
    for seed in (-1, 1.5, "0", True):
        with pytest.raises(TypeError, match=r"^seed: expected None or a non-negative integer"):
            rnnpy.LSTM(2, 3, seed=seed)


# ---------------------------------------------------------------------------
# forward: x

@pytest.mark.parametrize("time_major", [False, True], ids=["bf", "tm"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_x_wrong_rank_or_features(layer, time_major):
    lay = make(layer, time_major=time_major)
    layout = r"\(T, B, I\)" if time_major else r"\(B, T, I\)"
    for shape in [(T, I), (I,), (1, T, I, 1), (B, T, I + 1), (B, T, 1)]:
        with pytest.raises(ValueError, match=rf"^x: expected shape {layout} = \(any, any, 2\), "
                                             rf"got {re.escape(str(shape))}"):
            lay.forward(np.zeros(shape))
    for scalar in (np.float64(1.0), 1.0, np.zeros(())):
        with pytest.raises(ValueError, match=rf"^x: expected shape {layout}"):
            lay.forward(scalar)


@pytest.mark.parametrize("shape", [(0, T, I), (B, 0, I), (0, 0, I)])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_x_empty(layer, shape):
    for num_layers in (1, 2):
        lay = make(layer, num_layers=num_layers, bidirectional=True)
        with pytest.raises(ValueError, match=r"^x: expected at least one time step and one sequence"):
            lay.forward(np.zeros(shape))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.complex128, np.complex64,
                                   object, bool, np.float16, np.longdouble, "U3"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_x_bad_ndarray_dtype(layer, dtype):
    lay = make(layer)
    with pytest.raises(TypeError, match=r"^x: expected a float32 or float64 array, got dtype"):
        lay.forward(np.zeros((B, T, I), dtype=dtype))


@pytest.mark.parametrize("obj", [[[["a", "b"]]], [[[1j, 2]]], None, {"x": 1}])
def test_forward_x_bad_array_like(obj):
    with pytest.raises(TypeError, match=r"^x: expected an array of real numbers"):
        make("gru").forward(obj)


def test_forward_x_ragged_is_a_shape_error():
    with pytest.raises(ValueError, match=r"^x: expected an array-like of equal-length rows.*"
                                         r"\(x\[0\]\[0\] has length 2, x\[1\]\[0\] length 1\)"):
        make("gru").forward([[[1, 2]], [[1]]])


@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_x_list_is_accepted(layer):
    lay = make(layer, num_layers=2)
    x = x_of(lay)
    assert_same_forward(lay.forward(x.tolist()), lay.forward(x))
    xi = np.arange(B * T * I).reshape(B, T, I) % 3 - 1
    assert_same_forward(lay.forward(xi.tolist()), lay.forward(xi.astype(np.float64)))
    # a float32 array is converted for a float64 layer (exactly representable)
    x32 = x.astype(np.float32)
    assert_same_forward(lay.forward(x32), lay.forward(x32.astype(np.float64)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_x_not_finite(layer, value):
    lay = make(layer, num_layers=2)
    x = x_of(lay)
    x[2, 1, 1] = value
    flat = np.ravel_multi_index((2, 1, 1), x.shape)
    with pytest.raises(ValueError, match=rf"^x: expected finite values, found NaN or Inf at flat "
                                         rf"index {flat}"):
        lay.forward(x)


def test_forward_x_overflowing_float32():
    lay = rnnpy.LSTM(2, 3)  # float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"^x: expected finite values"):
            lay.forward(np.full((1, 2, 2), 1e300))


# ---------------------------------------------------------------------------
# forward: state

@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_state_wrong_shape(layer):
    lay = make(layer, num_layers=2, bidirectional=True)
    x = x_of(lay)
    good = state_of(lay)
    for shape in [(4, B, H + 1), (2, B, H), (4, B + 1, H), (B, H), (4, B, H, 1)]:
        bad = np.zeros(shape)
        st = (bad, good[1]) if isinstance(good, tuple) else bad
        name = r"state\[0\] \(h\)" if isinstance(good, tuple) else "state"
        with pytest.raises(ValueError, match=rf"^{name}: expected shape \(num_layers\*D, B, H\) = "
                                             rf"\(4, 3, 3\), got {re.escape(str(shape))}"):
            lay.forward(x, st)


def test_forward_lstm_state_must_be_a_pair():
    lay = make("lstm", num_layers=2)
    x = x_of(lay)
    h, c = state_of(lay)
    for bad in [h, (h,), (h, c, c), "hc", 3.0]:
        with pytest.raises(TypeError, match=r"^state: expected a tuple \(h, c\) or None"):
            lay.forward(x, bad)
    with pytest.raises(ValueError, match=r"^state\[1\] \(c\): expected shape"):
        lay.forward(x, (h, c[:, :, :2]))
    with pytest.raises(TypeError, match=r"^state\[0\] \(h\): expected a float32 or float64 array"):
        lay.forward(x, (h.astype(np.int64), c))
    # a list [h, c] and a tuple with None parts are accepted
    out_list = lay.forward(x, [h, c])
    assert_same_forward(out_list, lay.forward(x, (h, c)))
    out_none = lay.forward(x, (None, None))
    assert_same_forward(out_none, lay.forward(x))


@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_state_bad_dtype(layer):
    lay = make(layer)
    st = state_of(lay)
    bad = tuple(s.astype(np.complex128) for s in as_tuple(st))
    with pytest.raises(TypeError, match=r"^state"):
        lay.forward(x_of(lay), bad if isinstance(st, tuple) else bad[0])


@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_state_not_finite_raises(layer):
    lay = make(layer, num_layers=2)
    st = [s.copy() for s in as_tuple(state_of(lay))]
    st[0][1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        lay.forward(x_of(lay), tuple(st) if len(st) == 2 else st[0])


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_not_finite_state_names_the_layer_argument(where):
    lay = make("gru")
    x = x_of(lay)
    bad = np.full((1, B, H), np.nan)
    if where == "forward":
        with pytest.raises(ValueError, match=r"^state"):
            lay.forward(x, bad)
    else:
        lay.forward(x)
        with pytest.raises(ValueError, match=r"^dstate"):
            lay.backward(None, bad)


# ---------------------------------------------------------------------------
# forward: lengths

@pytest.mark.parametrize("lengths,exc,pattern", [
    ([1, 2], ValueError, r"^lengths: expected shape \(B,\)"),
    ([1, 2, 3, 4], ValueError, r"^lengths: expected shape \(B,\)"),
    ([[1, 2, 3]], ValueError, r"^lengths: expected shape \(B,\)"),
    (3, ValueError, r"^lengths: expected shape \(B,\)"),
    (np.array([1.0, 2.0, 3.0]), TypeError, r"^lengths: expected integers, got dtype float64"),
    ([1.5, 2, 3], TypeError, r"^lengths: expected integers"),
    ([True, False, True], TypeError, r"^lengths: expected integers, got dtype bool"),
    (["a", "b", "c"], TypeError, r"^lengths: expected integers"),
    ([2**70, 1, 1], ValueError, r"^lengths: expected integers in the int64 range \[-2\*\*63, 2\*\*63\), "
     r"got 1180591620717411303424 at flat index 0"),
    ([-1, 2, 3], ValueError, r"^lengths: expected values in \[0, T\] = \[0, 4\], got -1 at index 0"),
    ([1, T + 1, 3], ValueError, r"^lengths: expected values in \[0, T\] = \[0, 4\], got 5 at index 1"),
    (np.array([1, 2, np.iinfo(np.int64).max]), ValueError, r"^lengths: expected values in \[0, T\]"),
    (np.array([1, 2, np.iinfo(np.int64).min]), ValueError, r"^lengths: expected values in \[0, T\]"),
    (np.array([2**64 - 1, 2, 3], dtype=np.uint64), ValueError,
     r"^lengths: expected values in \[0, T\] = \[0, 4\], got 18446744073709551615 at index 0"),
    (np.array([1, 2, 2**63 + 2], dtype=np.uint64), ValueError,
     r"^lengths: expected values in \[0, T\] = \[0, 4\], got 9223372036854775810 at index 2"),
], ids=lambda v: repr(v)[:30])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_forward_bad_lengths(layer, lengths, exc, pattern):
    lay = make(layer, bidirectional=True)
    with pytest.raises(exc, match=pattern):
        lay.forward(x_of(lay), None, lengths)


@pytest.mark.parametrize("lengths", [[0, T, 2], (0, T, 2), np.array([0, T, 2], dtype=np.uint8),
                                     np.array([0, T, 2], dtype=np.int16),
                                     np.array([9, 0, 7, T, 1, 2])[1::2]])
def test_forward_lengths_any_integer_sequence(lengths):
    lay = make("lstm", bidirectional=True)
    x = x_of(lay)
    want = lay.forward(x, None, np.array([0, T, 2], dtype=np.int64))
    assert_same_forward(lay.forward(x, None, lengths), want)
    # lengths are honoured: zero outputs past the length
    assert not want[0][0].any() and not want[0][2, 2:].any()


# ---------------------------------------------------------------------------
# backward

@pytest.mark.parametrize("layer", list(LAYERS))
def test_backward_before_forward(layer):
    lay = make(layer)
    with pytest.raises(RuntimeError, match=r"^backward: nothing to differentiate; call forward first"):
        lay.backward(np.zeros((B, T, H)))
    with pytest.raises(RuntimeError, match="call forward first"):
        lay.backward()
    assert not lay.flat_grads.any()


@pytest.mark.parametrize("time_major", [False, True], ids=["bf", "tm"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_backward_bad_dout(layer, time_major):
    lay = make(layer, bidirectional=True, time_major=time_major)
    lay.forward(x_of(lay))
    good = (T, B, 2 * H) if time_major else (B, T, 2 * H)
    wrong = [(B, T, H), good[:2], good + (1,), (good[1], good[0], good[2])]
    for shape in wrong:
        with pytest.raises(ValueError, match=rf"^dout: expected shape .* = {re.escape(str(good))}, "
                                             rf"got {re.escape(str(shape))}"):
            lay.backward(np.zeros(shape))
    with pytest.raises(TypeError, match=r"^dout: expected a float32 or float64 array"):
        lay.backward(np.zeros(good, dtype=np.int32))
    with pytest.raises(TypeError, match=r"^dout: expected an array of real numbers"):
        lay.backward([["a"]])
    bad = np.zeros(good)
    bad[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match=r"^dout: expected finite values"):
        lay.backward(bad)
    # every failed call added nothing; a correct call still works
    assert not lay.flat_grads.any()
    dx, _ = lay.backward(np.ones(good))
    assert dx.shape == ((T, B, I) if time_major else (B, T, I)) and np.abs(dx).max() > 0


@pytest.mark.parametrize("layer", list(LAYERS))
def test_backward_bad_dstate(layer):
    lay = make(layer, num_layers=2)
    lay.forward(x_of(lay))
    is_lstm = isinstance(lay, rnnpy.LSTM)
    bad = np.zeros((2, B, H + 1))
    if is_lstm:
        with pytest.raises(TypeError, match=r"^dstate: expected a tuple \(h, c\) or None"):
            lay.backward(None, np.zeros((2, B, H)))
        with pytest.raises(ValueError, match=r"^dstate\[0\] \(h\): expected shape"):
            lay.backward(None, (bad, None))
        with pytest.raises(ValueError, match=r"^dstate\[1\] \(c\): expected shape"):
            lay.backward(None, (None, bad))
    else:
        with pytest.raises(ValueError, match=r"^dstate: expected shape \(num_layers\*D, B, H\) = "
                                             r"\(2, 3, 3\), got \(2, 3, 4\)"):
            lay.backward(None, bad)
    assert not lay.flat_grads.any()


# ---------------------------------------------------------------------------
# strided and Fortran-ordered inputs

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_non_contiguous_inputs_match_contiguous(layer, dtype):
    lay = make(layer, num_layers=2, bidirectional=True, dtype=dtype)
    rng = np.random.default_rng(3)
    base_tm = rng.standard_normal((T, B, I))
    wide = rng.standard_normal((B, 2 * T, I))
    views = {
        "transpose": base_tm.transpose(1, 0, 2),
        "step2": wide[:, ::2],
        "fortran": np.asfortranarray(wide[:, :T]),
        "negative": wide[:, ::-2][:, :T],
        "float32-view" if dtype == "float64" else "float64-view": base_tm.astype(
            np.float32 if dtype == "float64" else np.float64).transpose(1, 0, 2),
    }
    st = state_of(lay)
    st_view = tuple(np.asfortranarray(s) for s in as_tuple(st))
    st_view = st_view if isinstance(st, tuple) else st_view[0]
    for name, x in views.items():
        assert not x.flags.c_contiguous, name
        xc = np.ascontiguousarray(x)
        got = lay.forward(x, st_view, np.array([T, 9, 0, 9, 2, 9])[::2])  # strided lengths
        dout = rng.standard_normal(got[0].shape)
        dout_view = np.asfortranarray(dout)
        lay.zero_grad()
        dx, ds = lay.backward(dout_view)
        g = lay.flat_grads.copy()
        want = lay.forward(xc, st, [T, 0, 2])
        lay.zero_grad()
        dx_c, ds_c = lay.backward(dout)
        assert_same_forward(got, want)
        np.testing.assert_array_equal(dx, dx_c)
        np.testing.assert_array_equal(lay.flat_grads, g)
        for a, b in zip(as_tuple(ds), as_tuple(ds_c)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer", list(LAYERS))
def test_time_major_view_of_batch_first_data(layer):
    """A time-major layer fed x.transpose(1, 0, 2) of batch-first data equals
    a batch-first layer with the same weights fed the data itself."""
    bf = make(layer, bidirectional=True)
    tm = make(layer, bidirectional=True, time_major=True)
    tm.load_state_dict(bf.state_dict())
    x = x_of(bf)
    out_bf, st_bf = bf.forward(x)
    out_tm, st_tm = tm.forward(x.transpose(1, 0, 2))
    np.testing.assert_allclose(out_tm.transpose(1, 0, 2), out_bf, rtol=0, atol=1e-14)
    for a, b in zip(as_tuple(st_tm), as_tuple(st_bf)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------
# a failed call leaves the layer usable

@pytest.mark.parametrize("layer", list(LAYERS))
def test_failed_forward_leaves_layer_usable(layer):
    lay = make(layer, num_layers=2, bidirectional=True)
    fresh = make(layer, num_layers=2, bidirectional=True)
    x = x_of(lay)
    x2 = x_of(lay, seed=5)
    dout = np.random.default_rng(6).standard_normal((B, T, 2 * H))
    lay.forward(x)
    bad_calls = [
        lambda: lay.forward(x2, None, [T + 1, 0, 0]),
        lambda: lay.forward(np.full_like(x2, np.nan)),
        lambda: lay.forward(x2[:, :, :1]),
        lambda: lay.forward(x2.astype(np.int64)),
        lambda: lay.forward(x2, np.zeros((3, B, H))),
    ]
    for call in bad_calls:
        with pytest.raises((ValueError, TypeError)):
            call()
    # backward still differentiates the last successful forward ...
    dx, _ = lay.backward(dout)
    fresh.forward(x)
    dx_f, _ = fresh.backward(dout)
    np.testing.assert_array_equal(dx, dx_f)
    np.testing.assert_array_equal(lay.flat_grads, fresh.flat_grads)
    # ... and a new correct call works and matches a fresh computation
    assert_same_forward(lay.forward(x2), fresh.forward(x2))


@pytest.mark.parametrize("layer", list(LAYERS))
def test_failed_backward_adds_nothing(layer):
    lay = make(layer, num_layers=2)
    lay.forward(x_of(lay))
    for call in [lambda: lay.backward(np.zeros((B, T, H + 1))),
                 lambda: lay.backward(np.zeros((B, T, H), dtype=np.int8)),
                 lambda: lay.backward(None, np.zeros((3, B, H)) if layer != "lstm"
                                      else (np.zeros((3, B, H)), None))]:
        with pytest.raises((ValueError, TypeError)):
            call()
        assert not lay.flat_grads.any()


def test_forward_failing_in_a_later_layer_keeps_the_previous_forward():
    lay = make("gru", num_layers=2)
    fresh = make("gru", num_layers=2)
    x1, x2 = x_of(lay, seed=7), x_of(lay, seed=8)
    dout = np.random.default_rng(9).standard_normal((B, T, H))
    lay.forward(x1)
    bad = np.zeros((2, B, H))
    bad[1, 0, 0] = np.nan  # only the second layer's initial state is bad
    with pytest.raises(ValueError):
        lay.forward(x2, bad)
    dx, _ = lay.backward(dout)
    fresh.forward(x1)
    dx_f, _ = fresh.backward(dout)
    np.testing.assert_allclose(dx, dx_f, rtol=0, atol=1e-15)


def test_backward_failing_in_a_lower_layer_adds_nothing():
    lay = make("gru", num_layers=2)
    lay.forward(x_of(lay))
    bad = np.zeros((2, B, H))
    bad[0, 0, 0] = np.nan  # only the first layer's final-state gradient is bad
    with pytest.raises(ValueError):
        lay.backward(np.ones((B, T, H)), bad)
    assert not lay.flat_grads.any()


# ---------------------------------------------------------------------------
# the C types: constructors

CELLS = {
    "RNNCell": (_core.RNNCell, {}, 1),
    "LSTMCell": (_core.LSTMCell, {}, 4),
    "LSTMCell-peephole": (_core.LSTMCell, {"peephole": True}, 4),
    "GRUCell": (_core.GRUCell, {}, 3),
}


def n_params(cell):
    _, kw, G = CELLS[cell]
    return G * H * (I + H + 2) + (3 * H if kw.get("peephole") else 0)


def new_cell(cell, **kw):
    cls, extra, _ = CELLS[cell]
    return cls(I, H, **extra, **kw)


def _readonly(n, dtype):
    a = np.zeros(n, dtype)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("which", ["params", "grads"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_core_constructor_bad_flat_vectors(cell, which):
    n = n_params(cell)
    cases = [
        (np.zeros(n + 1, np.float32), ValueError,
         rf"^{which}: expected shape \(num_params,\) = \({n},?\), got \({n + 1},\)"),
        (np.zeros(n - 1, np.float32), ValueError, rf"^{which}: expected shape \(num_params,\)"),
        (np.zeros((1, n), np.float32), ValueError, rf"^{which}: expected shape \(num_params,\)"),
        (np.zeros(n, np.float64), TypeError, rf"^{which}: expected dtype float32, got float64"),
        (np.zeros(n, np.int32), TypeError, rf"^{which}: expected dtype float32"),
        (np.zeros(2 * n, np.float32)[::2], ValueError,
         rf"^{which}: expected a C-contiguous, aligned, writeable array"),
        (_readonly(n, np.float32), ValueError, rf"^{which}: expected a C-contiguous, aligned, writeable"),
        ([0.0] * n, TypeError, rf"^{which}: expected a 1-D numpy array of {n} float32 values, got list"),
    ]
    for value, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            new_cell(cell, **{which: value})
    with pytest.raises(TypeError, match=rf"^{which}: expected dtype float64, got float32"):
        new_cell(cell, dtype="float64", **{which: np.zeros(n, np.float32)})


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_constructor_grads_same_as_params(cell):
    p = np.zeros(n_params(cell), np.float32)
    with pytest.raises(ValueError, match=r"^grads: must not share memory with params"):
        new_cell(cell, params=p, grads=p)


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell"])
def test_core_constructor_grads_aliasing_params(cell):
    p = np.zeros(n_params(cell), np.float32)
    with pytest.raises(ValueError, match=r"^grads"):
        new_cell(cell, params=p, grads=p[:])


@pytest.mark.parametrize("value", [0, -1, -(2**40)])
@pytest.mark.parametrize("arg", ["input_size", "hidden_size"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_core_constructor_non_positive_sizes(cell, arg, value):
    cls, extra, _ = CELLS[cell]
    kw = dict(input_size=I, hidden_size=H)
    kw[arg] = value
    with pytest.raises(ValueError, match=rf"^{arg}: expected a positive integer"):
        cls(kw["input_size"], kw["hidden_size"], **extra)


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_constructor_too_large(cell):
    cls, extra, _ = CELLS[cell]
    with pytest.raises(ValueError, match=r"^input_size, hidden_size: .* is too large"):
        cls(2**40, 2**30, **extra)
    with pytest.raises(ValueError, match=r"^input_size: 1180591620717411303424 is too large"):
        cls(2**70, 3, **extra)


@pytest.mark.parametrize("value", [2.5, "3"])
def test_core_constructor_non_integer_sizes_name_the_argument(value):
    with pytest.raises(TypeError, match=r"^input_size"):
        _core.GRUCell(value, 3)


@pytest.mark.parametrize("value", ["int32", "float16", complex, "nope"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_core_constructor_bad_dtype(cell, value):
    with pytest.raises(TypeError, match=r"^dtype: expected 'float32' or 'float64'"):
        new_cell(cell, dtype=value)


def test_core_constructor_bad_nonlinearity_and_keywords():
    with pytest.raises(ValueError, match=r"^nonlinearity: expected 'tanh' or 'relu', got 'gelu'"):
        _core.RNNCell(2, 3, nonlinearity="gelu")
    with pytest.raises(TypeError, match="peephole"):
        _core.GRUCell(2, 3, peephole=True)
    with pytest.raises(TypeError):
        _core.LSTMCell(2, 3, "float64")  # keyword-only after the sizes


# ---------------------------------------------------------------------------
# the C types: forward and backward

def cell_fwd(cell, obj, x, h0=None, c0=None, lengths=None, **kw):
    if CELLS[cell][2] == 4:
        return obj.forward(x, h0, c0, lengths, **kw)
    return obj.forward(x, h0, lengths, **kw)


def cell_bwd(cell, obj, dout=None, dh=None, dc=None):
    if CELLS[cell][2] == 4:
        return obj.backward(dout, dh, dc)
    return obj.backward(dout, dh)


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_forward_argument_errors(cell):
    c = new_cell(cell, dtype="float64")
    x = np.random.default_rng(10).standard_normal((T, B, I))
    cases = [
        (lambda: cell_fwd(cell, c, x[0]), ValueError,
         r"^x: expected shape \(T, B, I\) = \(any, any, 2\), got \(3, 2\)"),
        (lambda: cell_fwd(cell, c, np.zeros((T, B, I + 1)), batch_first=True), ValueError,
         r"^x: expected shape \(B, T, I\) = \(any, any, 2\)"),
        (lambda: cell_fwd(cell, c, np.zeros((0, B, I))), ValueError,
         r"^x: expected at least one time step"),
        (lambda: cell_fwd(cell, c, x.astype(np.int16)), TypeError,
         r"^x: expected a float32 or float64 array, got dtype int16"),
        (lambda: cell_fwd(cell, c, np.full_like(x, np.nan)), ValueError,
         r"^x: expected finite values"),
        (lambda: cell_fwd(cell, c, [["a"]]), TypeError, r"^x: expected an array of real numbers"),
        (lambda: cell_fwd(cell, c, x, np.zeros((B, H + 1))), ValueError,
         r"^h0: expected shape \(B, H\) = \(3, 3\), got \(3, 4\)"),
        (lambda: cell_fwd(cell, c, x, np.full((B, H), np.inf)), ValueError,
         r"^h0: expected finite values"),
        (lambda: cell_fwd(cell, c, x, np.zeros((B, H), np.complex64)), TypeError, r"^h0"),
        (lambda: cell_fwd(cell, c, x, lengths=[T + 1, 0, 0]), ValueError,
         r"^lengths: expected values in \[0, T\] = \[0, 4\], got 5 at index 0"),
        (lambda: c.forward(x, lengths=[1.0, 2.0, 3.0]), TypeError, r"^lengths: expected integers"),
        (lambda: c.forward(x, lengths=[1, 2]), ValueError, r"^lengths: expected shape \(B,\)"),
        (lambda: c.forward(x, bogus=1), TypeError, r"bogus"),
    ]
    if CELLS[cell][2] == 4:
        cases += [
            (lambda: c.forward(x, None, np.zeros((B + 1, H))), ValueError,
             r"^c0: expected shape \(B, H\) = \(3, 3\), got \(4, 3\)"),
            (lambda: c.forward(x, None, np.full((B, H), np.nan)), ValueError,
             r"^c0: expected finite values"),
        ]
    else:
        cases.append((lambda: c.forward(x, c0=np.zeros((B, H))), TypeError, r"c0"))
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()
    assert c.has_cache is False
    assert not c.grads.any()


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_backward_argument_errors(cell):
    p = np.random.default_rng(14).uniform(-0.5, 0.5, n_params(cell))
    c = new_cell(cell, dtype="float64", params=p)
    with pytest.raises(RuntimeError, match=r"^backward: nothing to differentiate; call forward first"):
        cell_bwd(cell, c)
    x = np.random.default_rng(11).standard_normal((B, T, I))
    cell_fwd(cell, c, x, batch_first=True)
    cases = [
        (lambda: c.backward(np.zeros((T, B, H))), ValueError,
         r"^dout: expected shape \(B, T, H\) = \(3, 4, 3\), got \(4, 3, 3\)"),
        (lambda: c.backward(np.zeros((B, T, H), np.int64)), TypeError,
         r"^dout: expected a float32 or float64 array"),
        (lambda: c.backward(np.full((B, T, H), np.nan)), ValueError, r"^dout: expected finite"),
        (lambda: c.backward(None, np.zeros((B, H + 1))), ValueError,
         r"^dhT: expected shape \(B, H\) = \(3, 3\), got \(3, 4\)"),
        (lambda: c.backward(None, np.full((B, H), -np.inf)), ValueError, r"^dhT: expected finite"),
    ]
    if CELLS[cell][2] == 4:
        cases.append((lambda: c.backward(None, None, np.zeros((1, H))), ValueError,
                      r"^dcT: expected shape \(B, H\) = \(3, 3\), got \(1, 3\)"))
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()
    assert not c.grads.any()
    # the cache survived the failed calls
    dx = cell_bwd(cell, c, np.ones((B, T, H)))[0]
    assert dx.shape == (B, T, I) and np.abs(dx).max() > 0
    assert np.abs(c.grads).max() > 0


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_failed_forward_keeps_previous_cache(cell):
    rng = np.random.default_rng(12)
    p = rng.uniform(-0.5, 0.5, n_params(cell))
    c = new_cell(cell, dtype="float64", params=p.copy())
    ref = new_cell(cell, dtype="float64", params=p.copy())
    x1 = rng.standard_normal((T, B, I))
    x2 = rng.standard_normal((T + 1, B, I))
    dout = rng.standard_normal((T, B, H))
    cell_fwd(cell, c, x1, lengths=[T, 1, 0])
    bad_x2 = x2.copy()
    bad_x2[-1, -1, -1] = np.nan
    for call in [lambda: cell_fwd(cell, c, bad_x2),
                 lambda: cell_fwd(cell, c, x2, lengths=[T + 2, 0, 0]),
                 lambda: cell_fwd(cell, c, x2, np.zeros((B + 1, H)))]:
        with pytest.raises(ValueError):
            call()
    got = cell_bwd(cell, c, dout)
    cell_fwd(cell, ref, x1, lengths=[T, 1, 0])
    want = cell_bwd(cell, ref, dout)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(c.grads, ref.grads)
    assert np.abs(c.grads).max() > 0


@pytest.mark.parametrize("cell", list(CELLS))
def test_core_non_contiguous_inputs_match_contiguous(cell):
    rng = np.random.default_rng(13)
    p = rng.uniform(-0.5, 0.5, n_params(cell))
    c = new_cell(cell, dtype="float64", params=p)
    wide = rng.standard_normal((2 * T, B, I))
    h_wide = rng.standard_normal((B, 2 * H))
    for x, bf in ((wide[::2], False), (wide[1::2].transpose(1, 0, 2), True),
                  (np.asfortranarray(wide[:T]), False)):
        assert not x.flags.c_contiguous
        h0 = h_wide[:, ::2]
        lengths = np.array([T, 9, 0, 9, 2, 9])[::2]  # strided: [T, 0, 2]
        o1 = cell_fwd(cell, c, x, h0, h0 if CELLS[cell][2] == 4 else None, lengths,
                      batch_first=bf)
        d1 = cell_bwd(cell, c, np.asfortranarray(np.ones_like(o1[0])), h0)
        o2 = cell_fwd(cell, c, np.ascontiguousarray(x), np.ascontiguousarray(h0),
                      np.ascontiguousarray(h0) if CELLS[cell][2] == 4 else None,
                      np.ascontiguousarray(lengths), batch_first=bf)
        d2 = cell_bwd(cell, c, np.ones_like(o1[0]), np.ascontiguousarray(h0))
        for a, b in zip(o1 + d1, o2 + d2):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# gemm

def test_gemm_argument_errors():
    a = np.zeros((2, 3))
    cases = [
        (lambda: _core.gemm(a, np.zeros((4, 5))), ValueError,
         r"^b: expected 3 rows of op\(b\) to match op\(a\)'s columns, got 4"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), trans_a=True), ValueError, r"^b: expected 2 rows"),
        (lambda: _core.gemm(a, np.zeros((5, 2)), trans_b=True), ValueError, r"^b: expected 3 rows"),
        (lambda: _core.gemm(np.zeros(3), np.zeros((3, 5))), ValueError, r"^a, b: expected 2-D arrays"),
        (lambda: _core.gemm(a, np.zeros((3, 5, 1))), ValueError, r"^a, b: expected 2-D arrays"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), c=np.zeros((2, 4))), ValueError,
         r"^c: expected shape \(M, N\) = \(2, 5\), got \(2, 4\)"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), c=np.zeros((2, 5), np.float32)), TypeError,
         r"^c: expected a C-contiguous writeable float64 array"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), c=np.zeros((5, 2)).T), TypeError, r"^c: expected"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), c=[[0.0] * 5] * 2), TypeError, r"^c: expected"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), isa="sse4"), ValueError,
         r"^isa: expected 'avx512', 'avx2', 'generic', 'reference' or None"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), isa=2), ValueError, r"^isa: expected"),
        (lambda: _core.gemm(np.zeros((2, 3), np.int32), np.zeros((3, 5))), TypeError,
         r"^a: expected a float32 or float64 array, got dtype int32"),
        (lambda: _core.gemm(a, np.zeros((3, 5), np.complex128)), TypeError, r"^b: expected a float32"),
        (lambda: _core.gemm(a, [["x"] * 5] * 3), TypeError, r"^b: expected an array of real numbers"),
        (lambda: _core.gemm(a, np.zeros((3, 5)), alpha="1"), TypeError, r"alpha|float|real"),
    ]
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()
    ro = np.zeros((2, 5))
    ro.flags.writeable = False
    with pytest.raises(TypeError, match=r"^c: expected a C-contiguous writeable"):
        _core.gemm(a, np.zeros((3, 5)), c=ro)
    assert not ro.any()
