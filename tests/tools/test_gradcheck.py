"""Finite-difference checks of every layer's backward, in float64.

``rnnpy.gradcheck`` is run for every cell (RNN tanh and relu, LSTM, peephole
LSTM, GRU), 1 to 3 layers, one or two directions, with and without an
initial state, batch-first and time-major, with ``lengths`` (a 0 and a full
length among them) and with dropout between layers in training mode. The
gradient on subsets (last step only, the final state only, the last valid
step of each sequence) is checked by central differences computed here.
Finally, gradcheck itself is shown to fail on a wrong gradient and to refuse
a float32 layer.
"""

import re
import zlib

import numpy as np
import pytest
from helpers import CELL_KINDS

import rnnpy

I, H, T, B = 2, 3, 4, 3
EPS = 1e-5          # central differences: truncation ~eps^2, rounding ~1e-16/eps
REL_TOL = 1e-4      # worst relative error (gradcheck floors |grad| at 1e-6, so tiny
                    # gradients of deep stacks carry ~1e-5 of pure rounding)
ABS_TOL = 1e-8      # worst absolute error (the loss is O(10); observed ~1e-9)

# name -> (layer class, constructor options), from the one list of cells
CELLS = {mode.lower(): (getattr(rnnpy, k.layer), dict(k.kwargs)) for mode, k in CELL_KINDS.items()}


def make_layer(cell, num_layers=1, bidirectional=False, time_major=False, dropout=0.0,
               seed=0, dtype="float64", input_size=I, hidden_size=H):
    cls, kw = CELLS[cell]
    return cls(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
               dropout=dropout, dtype=dtype, seed=seed, time_major=time_major, **kw)


def make_inputs(layer, rng, with_state, batch=B, steps=T):
    shape = (steps, batch, layer.input_size) if layer.time_major else (batch, steps, layer.input_size)
    x = rng.standard_normal(shape)
    if not with_state:
        return x, None
    LD = layer.num_layers * layer.num_directions
    h = 0.5 * rng.standard_normal((LD, batch, layer.hidden_size))
    if isinstance(layer, rnnpy.LSTM):
        return x, (h, 0.5 * rng.standard_normal((LD, batch, layer.hidden_size)))
    return x, h


def expected_keys(layer, with_state):
    keys = set(layer.params) | {"x"}
    if with_state:
        keys |= {"state[0]", "state[1]"} if isinstance(layer, rnnpy.LSTM) else {"state[0]"}
    return keys


def expected_checked(layer, x, state, max_checks):
    arrays = list(layer.params.values()) + [np.asarray(x)]
    if state is not None:
        arrays += list(state) if isinstance(state, tuple) else [state]
    return sum(min(a.size, max_checks) for a in arrays)


def assert_result(result, layer, x, state, max_checks):
    assert result.ok and not result.failures
    assert set(result.errors) == expected_keys(layer, state is not None)
    assert result.checked == expected_checked(layer, x, state, max_checks)
    worst_abs = max(e[0] for e in result.errors.values())
    assert result.max_rel_error() < REL_TOL, result.errors
    assert worst_abs < ABS_TOL, result.errors


# ---------------------------------------------------------------------------
# gradcheck over every cell and option

VARIANTS = {
    # name: (with_state, lengths, time_major)
    "plain": (False, None, False),
    "state": (True, None, False),
    "lengths": (False, [0, T, 2], False),
    "time_major_state_lengths": (True, [T, 1, 0], True),
}


def random_like_state(st, rng):
    """A random upstream gradient shaped like a final state ((h, c) or h)."""
    if isinstance(st, tuple):
        return tuple(rng.standard_normal(a.shape) for a in st)
    return rng.standard_normal(st.shape)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_every_cell_and_option(cell, num_layers, bidirectional, variant):
    with_state, lengths, time_major = VARIANTS[variant]
    layer = make_layer(cell, num_layers, bidirectional, time_major, seed=num_layers)
    rng = np.random.default_rng(zlib.crc32(f"{cell}-{num_layers}-{bidirectional}-{variant}".encode()))
    x, state = make_inputs(layer, rng, with_state)
    before = layer.flat_params.copy()
    result = rnnpy.gradcheck(layer, x, state, lengths, eps=EPS, max_checks=12, seed=1)
    assert_result(result, layer, x, state, 12)
    # gradcheck restores every parameter exactly
    np.testing.assert_array_equal(layer.flat_params, before)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_checks_every_entry_when_unsampled(cell):
    layer = make_layer(cell, 2, True, seed=3)
    x, state = make_inputs(layer, np.random.default_rng(4), True, batch=2, steps=3)
    result = rnnpy.gradcheck(layer, x, state, [3, 1], eps=EPS, max_checks=None)
    n_state = sum(s.size for s in (state if isinstance(state, tuple) else (state,)))
    assert result.checked == layer.num_params + x.size + n_state
    assert_result(result, layer, x, state, 10**9)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_with_dropout_in_training_mode(cell, num_layers, bidirectional):
    layer = make_layer(cell, num_layers, bidirectional, dropout=0.5, seed=5)
    assert layer.training
    x, state = make_inputs(layer, np.random.default_rng(6), True)
    result = rnnpy.gradcheck(layer, x, state, [T, 2, 1], eps=EPS, max_checks=12, seed=2)
    assert_result(result, layer, x, state, 12)
    masks = [m for m in layer._last["masks"] if m is not None]
    assert len(masks) == num_layers - 1
    for m in masks:
        # the masks really drop units (and scale the rest by 1/keep)
        assert (m == 0).any() and (m == 2.0).any()
        assert set(np.unique(m)) <= {0.0, 2.0}


def test_dropout_masks_are_fixed_only_inside_gradcheck():
    """Two training-mode forwards draw different masks, which is why gradcheck
    must hold them fixed; it stops doing so when it returns."""
    layer = make_layer("lstm", 2, False, dropout=0.5, seed=7)
    x, _ = make_inputs(layer, np.random.default_rng(8), False)
    out1, _ = layer.forward(x)
    out2, _ = layer.forward(x)
    assert np.max(np.abs(out1 - out2)) > 1e-6
    result = rnnpy.gradcheck(layer, x, eps=EPS, max_checks=12)
    assert result.ok and result.max_rel_error() < REL_TOL
    assert getattr(layer, "_reuse_masks", False) is False
    out3, _ = layer.forward(x)
    out4, _ = layer.forward(x)
    assert np.max(np.abs(out3 - out4)) > 1e-6
    layer.eval()
    out5, _ = layer.forward(x)
    out6, _ = layer.forward(x)
    np.testing.assert_array_equal(out5, out6)


# ---------------------------------------------------------------------------
# gradients on subsets of the outputs, checked here by central differences

def _loss_and_grads(layer, x, state, lengths, R, S):
    """Forward, then backward with dout=R and dstate=S; returns the analytic
    gradients as a dict and a function that evaluates the linear loss."""
    is_lstm = isinstance(layer, rnnpy.LSTM)

    def loss():
        out, st = layer.forward(x, state, lengths)
        total = 0.0 if R is None else float(np.sum(out * R))
        if S is not None:
            parts = st if is_lstm else (st,)
            spec = S if is_lstm else (S,)
            for s, w in zip(parts, spec):
                if w is not None:
                    total += float(np.sum(s * w))
        return total

    layer.zero_grad()
    layer.forward(x, state, lengths)
    dx, dstate = layer.backward(R, S)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    analytic["x"] = dx
    if state is not None:
        for k, ds in enumerate(dstate if is_lstm else (dstate,)):
            analytic[f"state[{k}]"] = ds
    return analytic, loss


def check_subset(layer, x, state, lengths, R, S, samples=8, seed=0):
    """Compares every analytic gradient with central differences on a sample
    of entries; returns the worst absolute error and the count of checks."""
    rng = np.random.default_rng(seed)
    analytic, loss = _loss_and_grads(layer, x, state, lengths, R, S)
    arrays = dict(layer.params)
    arrays["x"] = x
    if state is not None:
        for k, s in enumerate(state if isinstance(state, tuple) else (state,)):
            arrays[f"state[{k}]"] = s
    worst, checked = 0.0, 0
    for name, arr in arrays.items():
        flat = arr.reshape(-1)
        assert np.shares_memory(flat, arr)
        idx = rng.choice(flat.size, min(samples, flat.size), replace=False)
        for j in idx:
            old = flat[j]
            flat[j] = old + EPS
            lp = loss()
            flat[j] = old - EPS
            lm = loss()
            flat[j] = old
            num = (lp - lm) / (2 * EPS)
            ana = float(analytic[name].reshape(-1)[j])
            err = abs(ana - num)
            assert err <= 1e-8 + 1e-6 * abs(num), f"{name}[{j}]: analytic {ana}, numeric {num}"
            worst = max(worst, err)
            checked += 1
    return worst, checked, analytic


SUBSET_CELLS = list(CELLS)


@pytest.mark.parametrize("time_major", [False, True], ids=["bf", "tm"])
@pytest.mark.parametrize("cell", SUBSET_CELLS)
def test_gradient_of_the_last_step_only(cell, time_major):
    layer = make_layer(cell, 2, True, time_major=time_major, seed=9)
    rng = np.random.default_rng(10)
    x, state = make_inputs(layer, rng, True)
    out, _ = layer.forward(x, state)
    R = np.zeros_like(out)
    last = rng.standard_normal(R[-1].shape if time_major else R[:, -1].shape)
    if time_major:
        R[-1] = last
    else:
        R[:, -1] = last
    worst, checked, analytic = check_subset(layer, x, state, None, R, None)
    assert worst < 1e-8 and checked > 40
    # through the recurrence every step's input gets a gradient, not only the last
    dx = analytic["x"]
    first = dx[0] if time_major else dx[:, 0]
    assert np.abs(first).max() > 1e-4
    assert np.abs(analytic["weight_hh_l0"]).max() > 1e-3


@pytest.mark.parametrize("cell", SUBSET_CELLS)
def test_gradient_of_the_final_state_only(cell):
    layer = make_layer(cell, 2, False, seed=11)
    rng = np.random.default_rng(12)
    x, state = make_inputs(layer, rng, True)
    _, st = layer.forward(x, state)
    S = random_like_state(st, rng)
    worst, checked, analytic = check_subset(layer, x, state, None, None, S)
    assert worst < 1e-8 and checked > 40
    assert np.abs(analytic["state[0]"]).max() > 1e-3


@pytest.mark.parametrize("which", [0, 1], ids=["h_only", "c_only"])
def test_lstm_gradient_of_h_or_c_alone(which):
    layer = make_layer("lstm_peephole", 2, True, seed=13)
    rng = np.random.default_rng(14)
    x, state = make_inputs(layer, rng, True)
    _, (h, c) = layer.forward(x, state)
    S = [None, None]
    S[which] = rng.standard_normal(h.shape)
    worst, checked, analytic = check_subset(layer, x, state, [T, 0, 2], None, tuple(S))
    assert worst < 1e-8 and checked > 40
    # a length-0 sequence passes its final-state gradient straight to its
    # initial state and gets no input gradient
    k = 1
    if which == 0:
        np.testing.assert_array_equal(analytic["state[0]"][:, k], S[0][:, k])
        assert not analytic["state[1]"][:, k].any()
    else:
        np.testing.assert_array_equal(analytic["state[1]"][:, k], S[1][:, k])
        assert not analytic["state[0]"][:, k].any()
    assert not analytic["x"][k].any()


@pytest.mark.parametrize("cell", SUBSET_CELLS)
def test_gradient_of_each_sequences_last_valid_step(cell):
    """The classification loss on variable lengths: dout only at t = len-1."""
    layer = make_layer(cell, 1, True, seed=15)
    rng = np.random.default_rng(16)
    lengths = np.array([T, 1, 3])
    x, state = make_inputs(layer, rng, True)
    out, _ = layer.forward(x, state, lengths)
    R = np.zeros_like(out)
    for b, n in enumerate(lengths):
        R[b, n - 1] = rng.standard_normal(out.shape[2])
    worst, checked, analytic = check_subset(layer, x, state, lengths, R, None)
    assert worst < 1e-8 and checked > 30
    # padded steps receive no gradient
    for b, n in enumerate(lengths):
        assert not analytic["x"][b, n:].any()


@pytest.mark.parametrize("cell", SUBSET_CELLS)
def test_all_steps_and_final_state_with_lengths(cell):
    layer = make_layer(cell, 3, False, seed=17)
    rng = np.random.default_rng(18)
    x, state = make_inputs(layer, rng, True)
    lengths = [0, T, 2]
    out, st = layer.forward(x, state, lengths)
    R = rng.standard_normal(out.shape)
    S = random_like_state(st, rng)
    worst, checked, analytic = check_subset(layer, x, state, lengths, R, S)
    assert worst < 1e-8 and checked > 40
    assert not analytic["x"][0].any() and not analytic["x"][2, 2:].any()


@pytest.mark.parametrize("cell", SUBSET_CELLS)
def test_no_upstream_gradient_gives_zero_gradients(cell):
    layer = make_layer(cell, 2, True, seed=19)
    x, state = make_inputs(layer, np.random.default_rng(20), True)
    layer.forward(x, state)
    layer.zero_grad()
    dx, dstate = layer.backward(None, None)
    assert dx.shape == x.shape and not dx.any()
    for ds in (dstate if isinstance(dstate, tuple) else (dstate,)):
        assert not ds.any()
    assert not layer.flat_grads.any()


# ---------------------------------------------------------------------------
# gradcheck must be able to fail

class Corrupting:
    """Wraps a layer and perturbs one gradient that backward returns or adds."""

    def __init__(self, inner, target, index, delta):
        self.inner, self.target, self.index, self.delta = inner, target, index, delta

    dtype = property(lambda self: self.inner.dtype)
    params = property(lambda self: self.inner.params)
    grads = property(lambda self: self.inner.grads)

    def forward(self, x, state=None, lengths=None):
        return self.inner.forward(x, state, lengths)

    def zero_grad(self):
        self.inner.zero_grad()

    def backward(self, dout=None, dstate=None):
        dx, ds = self.inner.backward(dout, dstate)
        if self.target == "x":
            dx.reshape(-1)[self.index] += self.delta
        elif self.target.startswith("state"):
            k = int(self.target[6])
            arr = ds[k] if isinstance(ds, tuple) else ds
            arr.reshape(-1)[self.index] += self.delta
        else:
            self.inner.grads[self.target].reshape(-1)[self.index] += self.delta
        return dx, ds


@pytest.mark.parametrize("cell,target,index", [
    ("lstm", "weight_hh_l0", 5),
    ("gru", "bias_hh_l1", 2),
    ("rnn_tanh", "weight_ih_l0_reverse", 0),
    ("lstm_peephole", "weight_peep_l0", 4),
    ("gru", "x", 7),
    ("lstm", "state[1]", 3),
    ("rnn_relu", "state[0]", 1),
])
def test_gradcheck_detects_a_corrupted_gradient(cell, target, index):
    layer = make_layer(cell, 2, True, seed=21)
    x, state = make_inputs(layer, np.random.default_rng(22), True)
    bad = Corrupting(layer, target, index, 1e-4)
    with pytest.raises(AssertionError, match=re.escape(f"{target}[{index}]")):
        rnnpy.gradcheck(bad, x, state, eps=EPS, max_checks=None)
    result = rnnpy.gradcheck(bad, x, state, eps=EPS, max_checks=None, raise_exception=False)
    assert not result.ok
    assert [(n, j) for n, j, _, _ in result.failures] == [(target, index)]
    _, _, ana, num = result.failures[0]
    assert ana - num == pytest.approx(1e-4, rel=1e-3)
    assert result.errors[target][0] == pytest.approx(1e-4, rel=1e-3)
    # the untouched layer passes the same check
    good = rnnpy.gradcheck(layer, x, state, eps=EPS, max_checks=None)
    assert good.ok and good.max_rel_error() < REL_TOL


def test_gradcheck_detects_gradient_leaking_into_padding():
    layer = make_layer("gru", 1, False, seed=23)
    x, _ = make_inputs(layer, np.random.default_rng(24), False)
    lengths = [T, 2, 0]
    # x[1, 3, 0] is past sequence 1's length: its true gradient is exactly 0
    index = np.ravel_multi_index((1, 3, 0), x.shape)
    bad = Corrupting(layer, "x", index, 1e-6)
    with pytest.raises(AssertionError, match=rf"x\[{index}\]"):
        rnnpy.gradcheck(bad, x, None, lengths, eps=EPS, max_checks=None)
    assert rnnpy.gradcheck(layer, x, None, lengths, eps=EPS, max_checks=None).ok


def test_gradcheck_tolerances_are_honoured():
    """A perturbation below atol passes, the same one above it fails."""
    layer = make_layer("rnn_tanh", 1, False, seed=25)
    x, _ = make_inputs(layer, np.random.default_rng(26), False)
    bad = Corrupting(layer, "bias_ih_l0", 0, 1e-7)
    ok = rnnpy.gradcheck(bad, x, eps=EPS, max_checks=None, atol=1e-6, rtol=0.0)
    assert ok.ok and 0.9e-7 < ok.errors["bias_ih_l0"][0] < 1.1e-7
    with pytest.raises(AssertionError, match="bias_ih_l0"):
        rnnpy.gradcheck(bad, x, eps=EPS, max_checks=None, atol=1e-8, rtol=0.0)


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_refuses_float32(cell):
    layer = make_layer(cell, 1, False, dtype="float32")
    x = np.zeros((B, T, I), dtype=np.float32)
    with pytest.raises(ValueError, match="float64"):
        rnnpy.gradcheck(layer, x)


def test_gradcheck_refuses_complex_input_instead_of_dropping_the_imaginary_part():
    layer = rnnpy.GRU(2, 3, dtype="float64", seed=0)
    with pytest.raises(TypeError, match=r"^x: expected real numbers \(or integer tokens\), got dtype complex128"):
        rnnpy.gradcheck(layer, np.ones((1, 2, 2), dtype=complex))


def test_gradcheck_leaves_the_callers_gradients_as_they_were():
    layer = rnnpy.LSTM(2, 3, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    out, _ = layer.forward(x)
    layer.backward(np.ones_like(out))
    before = layer.flat_grads.copy()
    assert before.any()
    assert rnnpy.gradcheck(layer, x, max_checks=10).ok
    np.testing.assert_array_equal(layer.flat_grads, before)
