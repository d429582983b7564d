"""rnnpy's public layers against PyTorch and against the NumPy reference.

For every cell (RNN tanh/relu, LSTM, GRU, peephole LSTM), in float64 and
float32, over batch sizes, sequence lengths, depths, directions, layouts,
initial states and variable lengths: the outputs, final states, input and
initial-state gradients and every entry of `layer.grads` must match.

The trusted side is always computed in float64 on the very values the layer
saw (float32 inputs are upcast exactly), so a float32 error measures rnnpy's
own rounding, not the reference's. Error metric per array:
max|a - b| / max|b|. The largest error seen per (cell, dtype) is printed when
the module finishes (run with -s, or see the captured teardown output).

torch (CPU) is optional: the tests that need it skip without it; the tests
against rnnpy._reference always run (they also cover length 0, which torch
cannot pack).
"""

import zlib

import numpy as np
import pytest
from helpers import IS_LSTM, MODES, ErrorTable, import_torch, rel_err, torch_stack

import rnnpy
from rnnpy import _reference as ref

TOL = {"float64": 1e-10, "float32": 1e-5}

# (cell, dtype, against) -> largest relative error, with the quantity and config
ERRORS = ErrorTable("largest relative error, max|a-b| / max|b|, per cell, dtype and trusted "
                    "side (worst quantity, config)")


# ---------------------------------------------------------------------------
# helpers

def check(key, name, a, b, cfg=""):
    """Assert a (rnnpy) matches b (float64 truth); record the error under key."""
    cell, dtype, _ = key
    err = rel_err(a, b)
    ERRORS.record(key, err, f"{name} {cfg}")
    assert err <= TOL[dtype], (f"{cell} {dtype} {name}: relative error {err:.3e} > "
                               f"{TOL[dtype]:.0e} (max|diff| "
                               f"{np.max(np.abs(np.asarray(a, np.float64) - b)):.3e}, "
                               f"max|ref| {np.max(np.abs(b)):.3e})")


def make_layer(mode, I, H, L, bidirectional, dtype, time_major, seed=0):
    kw = dict(num_layers=L, bidirectional=bidirectional, dtype=dtype, seed=seed,
              time_major=time_major)
    if mode == "RNN_TANH":
        return rnnpy.RNN(I, H, nonlinearity="tanh", **kw)
    if mode == "RNN_RELU":
        return rnnpy.RNN(I, H, nonlinearity="relu", **kw)
    if mode == "LSTM":
        return rnnpy.LSTM(I, H, **kw)
    if mode == "LSTM_PEEPHOLE":
        return rnnpy.LSTM(I, H, peephole=True, **kw)
    return rnnpy.GRU(I, H, **kw)


def expected_param_shapes(mode, I, H, L, D):
    G = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "LSTM_PEEPHOLE": 4, "GRU": 3}[mode]
    shapes = {}
    for layer in range(L):
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            shapes["weight_ih" + sfx] = (G * H, I if layer == 0 else D * H)
            shapes["weight_hh" + sfx] = (G * H, H)
            shapes["bias_ih" + sfx] = (G * H,)
            shapes["bias_hh" + sfx] = (G * H,)
            if mode == "LSTM_PEEPHOLE":
                shapes["weight_peep" + sfx] = (3, H)
    return shapes


def randomize(layer, rng, H):
    """Overwrite every parameter in place (through the live views).

    The scale keeps the recurrence near the edge of chaos whatever H is:
    saturating enough to test the nonlinearities, not so chaotic that float32
    rounding is amplified over the sequence beyond what the tolerance allows.
    """
    scale = min(0.6, 1.5 / np.sqrt(H))
    for arr in layer.params.values():
        arr[...] = rng.uniform(-scale, scale, arr.shape)


class Problem:
    """One random case: a layer with random weights, inputs and upstream gradients."""

    def __init__(self, mode, dtype, cfg, seed_extra=""):
        B, T, I, H, L, bi, time_major, with_state, lengths = cfg
        self.mode, self.dtype, self.cfg = mode, dtype, cfg
        self.B, self.T, self.I, self.H, self.L = B, T, I, H, L
        self.bi, self.time_major, self.with_state = bi, time_major, with_state
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self.D = D = 2 if bi else 1
        self.is_lstm = mode in IS_LSTM
        rng = np.random.default_rng(zlib.crc32(repr((mode, dtype, cfg, seed_extra)).encode()))
        self.layer = make_layer(mode, I, H, L, bi, dtype, time_major)
        randomize(self.layer, rng, H)
        dt = np.dtype(dtype)
        xs = (T, B, I) if time_major else (B, T, I)
        os_ = (T, B, D * H) if time_major else (B, T, D * H)
        self.x = rng.normal(size=xs).astype(dt)
        self.h0 = (0.5 * rng.normal(size=(L * D, B, H))).astype(dt)
        self.c0 = (0.5 * rng.normal(size=(L * D, B, H))).astype(dt)
        if not with_state:
            self.h0[...] = 0
            self.c0[...] = 0
        self.dout = rng.normal(size=os_).astype(dt)
        self.dh = rng.normal(size=(L * D, B, H)).astype(dt)
        self.dc = rng.normal(size=(L * D, B, H)).astype(dt)

    def state(self):
        if not self.with_state:
            return None
        return (self.h0.copy(), self.c0.copy()) if self.is_lstm else self.h0.copy()

    def dstate(self):
        return (self.dh.copy(), self.dc.copy()) if self.is_lstm else self.dh.copy()

    def params64(self):
        return {k: np.asarray(v, np.float64).copy() for k, v in self.layer.params.items()}

    def run_rnnpy(self):
        """forward + backward through the public API; returns a result dict."""
        lay = self.layer
        lay.zero_grad()
        out, st = lay.forward(self.x.copy(), self.state(), self.lengths)
        dx, dst = lay.backward(self.dout.copy(), self.dstate())
        dt = np.dtype(self.dtype)
        assert out.dtype == dt and dx.dtype == dt
        assert out.shape == self.dout.shape and dx.shape == self.x.shape
        res = {"out": out, "dx": dx, "grads": {k: v.copy() for k, v in lay.grads.items()}}
        if self.is_lstm:
            assert isinstance(st, tuple) and len(st) == 2
            assert isinstance(dst, tuple) and len(dst) == 2
            res["hn"], res["cn"] = st
            res["dh0"], res["dc0"] = dst
        else:
            res["hn"], res["dh0"] = st, dst
        for k in ("hn", "dh0") + (("cn", "dc0") if self.is_lstm else ()):
            assert res[k].shape == (self.L * self.D, self.B, self.H), k
            assert res[k].dtype == dt, k
        return res

    def run_reference(self):
        """float64 reference on the same values."""
        up = lambda a: np.asarray(a, np.float64)  # noqa: E731
        st = (up(self.h0), up(self.c0)) if self.is_lstm else up(self.h0)
        out, stn, cache = ref.stack_forward(
            self.mode, self.params64(), up(self.x), st, self.lengths, num_layers=self.L,
            bidirectional=self.bi, batch_first=not self.time_major, return_cache=True)
        dst = (up(self.dh), up(self.dc)) if self.is_lstm else up(self.dh)
        dx, d0, grads = ref.stack_backward(cache, up(self.dout), dst)
        res = {"out": out, "dx": dx, "grads": grads}
        if self.is_lstm:
            res["hn"], res["cn"] = stn
            res["dh0"], res["dc0"] = d0
        else:
            res["hn"], res["dh0"] = stn, d0
        return res

    def run_torch(self):
        """float64 torch (autograd) on the same values."""
        return torch_stack(self.mode, self.params64(), self.x, self.h0, self.c0, self.lengths,
                           self.L, self.bi, not self.time_major, self.dout, self.dh, self.dc)

    def compare(self, got, want, against):
        key = (self.mode, self.dtype, against)
        cfg = cfg_id(self.cfg)
        names = ["out", "hn", "dx", "dh0"] + (["cn", "dc0"] if self.is_lstm else [])
        for name in names:
            check(key, name, got[name], want[name], cfg)
        shapes = expected_param_shapes(self.mode, self.I, self.H, self.L, self.D)
        assert set(got["grads"]) == set(shapes), sorted(got["grads"])
        assert set(want["grads"]) == set(shapes)
        for name in sorted(shapes):
            assert got["grads"][name].shape == shapes[name], name
            check(key, "grad " + name, got["grads"][name], want["grads"][name], cfg)


def cfg_id(c):
    B, T, I, H, L, bi, tm, st, lengths = c
    s = f"B{B}T{T}I{I}H{H}L{L}" + ("bi" if bi else "") + ("_tm" if tm else "_bf")
    s += "_h0" if st else ""
    if lengths is not None:
        s += "_len" + "-".join(str(n) for n in lengths)
    return s


# ---------------------------------------------------------------------------
# parity with torch

# B, T, I, H, num_layers, bidirectional, time_major, initial state, lengths
TORCH_CONFIGS = [
    (3, 7, 4, 8, 1, False, False, True, None),
    (1, 1, 3, 5, 1, False, True, False, None),
    (1, 9, 5, 6, 2, True, False, True, None),
    (4, 1, 3, 7, 3, True, True, True, None),
    (5, 12, 6, 16, 2, False, True, False, None),
    (4, 10, 3, 9, 3, False, False, True, [10, 4, 1, 7]),
    (5, 8, 4, 6, 2, True, False, False, [3, 8, 1, 8, 5]),
    (3, 6, 2, 5, 1, True, True, True, [6, 2, 5]),
    (1, 5, 3, 4, 2, True, False, True, [3]),
    # sizes off every SIMD width and block edge, and the smallest possible
    (7, 11, 17, 33, 2, True, False, True, [11, 1, 5, 11, 3, 2, 9]),
    (6, 4, 1, 1, 1, False, True, True, None),
]
DTYPES = ["float64", "float32"]


@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=cfg_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"])
def test_matches_torch(mode, dtype, cfg):
    import_torch()
    p = Problem(mode, dtype, cfg)
    p.compare(p.run_rnnpy(), p.run_torch(), "torch")


@pytest.mark.parametrize("cfg", TORCH_CONFIGS[:9:2] + TORCH_CONFIGS[5:6] + TORCH_CONFIGS[9:10],
                         ids=cfg_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_peephole_matches_torch_autograd(dtype, cfg):
    import_torch()
    p = Problem("LSTM_PEEPHOLE", dtype, cfg)
    got = p.run_rnnpy()
    p.compare(got, p.run_torch(), "torch")
    # the peephole weights were random, so they must have had an effect
    plain = {k: v for k, v in p.params64().items() if not k.startswith("weight_peep")}
    st = (p.h0.astype(np.float64), p.c0.astype(np.float64))
    out_plain, _ = ref.stack_forward("LSTM", plain, p.x.astype(np.float64), st, p.lengths,
                                     num_layers=p.L, bidirectional=p.bi,
                                     batch_first=not p.time_major)
    assert rel_err(got["out"], out_plain) > 1e-3


# ---------------------------------------------------------------------------
# parity with the NumPy reference (every mode, including length 0)

REF_CONFIGS = [
    (3, 5, 4, 6, 2, True, False, True, None),
    (4, 6, 3, 5, 2, True, False, True, [6, 0, 3, 1]),
    (3, 5, 2, 4, 1, False, True, False, [0, 5, 2]),
    (2, 4, 3, 4, 3, True, True, True, [0, 0]),
    (1, 1, 2, 3, 1, False, False, True, [0]),
]


@pytest.mark.parametrize("cfg", REF_CONFIGS, ids=cfg_id)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_matches_reference(mode, dtype, cfg):
    p = Problem(mode, dtype, cfg)
    got = p.run_rnnpy()
    want = p.run_reference()
    p.compare(got, want, "reference")
    if p.lengths is not None:
        for b in np.flatnonzero(p.lengths == 0):
            # a length-0 sequence: zero output, state and its gradient pass through
            sel = (slice(None), b) if p.time_major else (b,)
            assert np.all(got["out"][sel] == 0)
            assert np.all(got["dx"][sel] == 0)
            np.testing.assert_array_equal(got["hn"][:, b], p.h0[:, b])
            np.testing.assert_array_equal(got["dh0"][:, b], p.dh[:, b])
            if p.is_lstm:
                np.testing.assert_array_equal(got["cn"][:, b], p.c0[:, b])
                np.testing.assert_array_equal(got["dc0"][:, b], p.dc[:, b])


# ---------------------------------------------------------------------------
# the backward contract

@pytest.mark.parametrize("mode", MODES)
def test_parameter_shapes_and_names(mode):
    for L, bi in ((1, False), (2, True), (3, False)):
        lay = make_layer(mode, 3, 5, L, bi, "float64", False)
        want = expected_param_shapes(mode, 3, 5, L, 2 if bi else 1)
        assert {k: v.shape for k, v in lay.params.items()} == want
        assert {k: v.shape for k, v in lay.grads.items()} == want
        assert all(v.dtype == np.float64 for v in lay.params.values())
    lay = make_layer(mode, 3, 5, 1, False, "float32", False)
    assert all(v.dtype == np.float32 for v in lay.params.values())
    assert all(v.dtype == np.float32 for v in lay.grads.values())


@pytest.mark.parametrize("mode", MODES)
def test_backward_adds_into_grads(mode):
    p = Problem(mode, "float64", (3, 4, 2, 5, 2, True, False, True, [4, 2, 3]))
    first = p.run_rnnpy()
    # a second backward without zero_grad adds the same amount again
    p.layer.forward(p.x.copy(), p.state(), p.lengths)
    p.layer.backward(p.dout.copy(), p.dstate())
    for k, v in p.layer.grads.items():
        np.testing.assert_allclose(v, 2 * first["grads"][k], rtol=1e-13, atol=0, err_msg=k)
    p.layer.zero_grad()
    for k, v in p.layer.grads.items():
        assert np.all(v == 0), k


@pytest.mark.parametrize("mode", MODES)
def test_partial_upstream_gradients(mode):
    """dout=None means zeros, dstate=None means zeros; LSTM (dh, None) and (None, dc)."""
    cfg = (3, 5, 2, 4, 2, True, False, True, [5, 1, 3])
    p = Problem(mode, "float64", cfg)
    lay = p.layer
    dt = np.float64
    cases = [(None, p.dstate()), (p.dout, None)]
    if p.is_lstm:
        cases += [(p.dout, (p.dh, None)), (None, (None, p.dc))]
    for dout, dstate in cases:
        lay.zero_grad()
        lay.forward(p.x.copy(), p.state(), p.lengths)
        dx, dst = lay.backward(dout, dstate)
        q = Problem(mode, "float64", cfg)  # same seed: same weights and inputs
        q.dout = np.zeros_like(q.dout) if dout is None else q.dout
        if p.is_lstm:
            ds = (None, None) if dstate is None else dstate
            q.dh = np.zeros_like(q.dh) if ds[0] is None else q.dh
            q.dc = np.zeros_like(q.dc) if ds[1] is None else q.dc
        else:
            q.dh = np.zeros_like(q.dh) if dstate is None else q.dh
        want = q.run_reference()
        key = (mode, "float64", "reference")
        check(key, "dx (partial)", dx, want["dx"])
        if p.is_lstm:
            check(key, "dh0 (partial)", dst[0], want["dh0"])
            check(key, "dc0 (partial)", dst[1], want["dc0"])
        else:
            check(key, "dh0 (partial)", dst, want["dh0"])
        for k in want["grads"]:
            check(key, "grad " + k + " (partial)", lay.grads[k], want["grads"][k])
        assert dx.dtype == dt


@pytest.mark.parametrize("mode", MODES)
def test_truncated_bptt_chains_windows(mode):
    """Two windows with the state carried between them, backward chained
    through dstate, give the gradients of one run over the whole sequence."""
    B, T, I, H, L = 2, 8, 3, 4, 2
    p = Problem(mode, "float64", (B, T, I, H, L, False, False, True, None))
    lay = p.layer
    lay.zero_grad()
    out_full, st_full = lay.forward(p.x.copy(), p.state())
    dx_full, d0_full = lay.backward(p.dout.copy(), p.dstate())
    g_full = {k: v.copy() for k, v in lay.grads.items()}

    lay.zero_grad()
    cut = 3
    out1, st1 = lay.forward(p.x[:, :cut].copy(), p.state())
    out2, st2 = lay.forward(p.x[:, cut:].copy(), st1)
    dx2, dst1 = lay.backward(p.dout[:, cut:].copy(), p.dstate())
    # backward for window 1 needs window 1's forward to be the most recent
    lay.forward(p.x[:, :cut].copy(), p.state())
    dx1, d0 = lay.backward(p.dout[:, :cut].copy(), dst1)

    key = (mode, "float64", "self")
    check(key, "out (windows)", np.concatenate([out1, out2], axis=1), out_full)
    check(key, "dx (windows)", np.concatenate([dx1, dx2], axis=1), dx_full)
    if p.is_lstm:
        check(key, "hn (windows)", st2[0], st_full[0])
        check(key, "dh0 (windows)", d0[0], d0_full[0])
        check(key, "dc0 (windows)", d0[1], d0_full[1])
    else:
        check(key, "hn (windows)", st2, st_full)
        check(key, "dh0 (windows)", d0, d0_full)
    for k in g_full:
        check(key, "grad " + k + " (windows)", lay.grads[k], g_full[k])


@pytest.mark.parametrize("mode", MODES)
def test_params_are_live_views(mode):
    p = Problem(mode, "float64", (2, 3, 2, 4, 1, False, False, True, None))
    lay = p.layer
    out1, _ = lay.forward(p.x.copy(), p.state())
    lay.params["bias_hh_l0"][...] += 0.25
    out2, _ = lay.forward(p.x.copy(), p.state())
    assert rel_err(out2, out1) > 1e-3
    check((mode, "float64", "reference"), "out (after edit)", out2, p.run_reference()["out"])
    # with dropout 0, eval and train compute the same function
    lay.eval()
    out3, _ = lay.forward(p.x.copy(), p.state())
    lay.train()
    np.testing.assert_array_equal(out3, out2)


@pytest.mark.parametrize("mode", MODES)
def test_forward_does_not_modify_inputs(mode):
    p = Problem(mode, "float64", (3, 4, 2, 5, 2, True, True, True, [4, 1, 2]))
    x, st, lengths = p.x.copy(), p.state(), p.lengths.copy()
    st_copy = tuple(a.copy() for a in st) if p.is_lstm else st.copy()
    p.layer.forward(x, st, lengths)
    np.testing.assert_array_equal(x, p.x)
    np.testing.assert_array_equal(lengths, p.lengths)
    if p.is_lstm:
        np.testing.assert_array_equal(st[0], st_copy[0])
        np.testing.assert_array_equal(st[1], st_copy[1])
    else:
        np.testing.assert_array_equal(st, st_copy)
    dout, dst = p.dout.copy(), p.dstate()
    p.layer.backward(dout, dst)
    np.testing.assert_array_equal(dout, p.dout)


def test_non_contiguous_inputs():
    """Strided views give the same results as their contiguous copies."""
    p = Problem("LSTM", "float64", (3, 5, 4, 6, 2, True, False, True, [5, 2, 4]))
    want = p.run_rnnpy()
    lay = p.layer
    lay.zero_grad()
    big = np.zeros((p.B, p.T, 2 * p.I))
    big[:, :, ::2] = p.x
    xs = big[:, :, ::2]
    assert not xs.flags.c_contiguous
    h0 = np.asfortranarray(p.h0)
    out, st = lay.forward(xs, (h0, p.c0), p.lengths)
    dbig = np.zeros((p.B, p.T, 2 * p.D * p.H))
    dbig[:, :, 1::2] = p.dout
    dx, dst = lay.backward(dbig[:, :, 1::2], p.dstate())
    key = ("LSTM", "float64", "self")
    check(key, "out (strided)", out, want["out"])
    check(key, "dx (strided)", dx, want["dx"])
    check(key, "dh0 (strided)", dst[0], want["dh0"])
    for k in want["grads"]:
        check(key, "grad " + k + " (strided)", lay.grads[k], want["grads"][k])


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_accepts_array_likes(mode):
    """Nested lists for x, state and dout, a list for lengths: same as arrays."""
    p = Problem(mode, "float64", (2, 3, 2, 3, 1, False, False, True, [3, 1]))
    want = p.run_rnnpy()
    lay = p.layer
    lay.zero_grad()
    st = (p.h0.tolist(), p.c0.tolist()) if p.is_lstm else p.h0.tolist()
    out, _ = lay.forward(p.x.tolist(), st, [3, 1])
    dst = (p.dh.tolist(), p.dc.tolist()) if p.is_lstm else p.dh.tolist()
    dx, _ = lay.backward(p.dout.tolist(), dst)
    np.testing.assert_array_equal(out, want["out"])
    np.testing.assert_array_equal(dx, want["dx"])
    for k in want["grads"]:
        np.testing.assert_array_equal(lay.grads[k], want["grads"][k])
