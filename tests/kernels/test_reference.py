"""The pure-NumPy reference (rnnpy/_reference.py) against PyTorch.

The reference is what the C kernels are tested against, so it is itself
checked here: outputs, final states and every gradient, in float64 to 1e-12,
for nn.RNN (tanh, relu), nn.LSTM and nn.GRU with copied weights, with
pack_padded_sequence for variable lengths, and for the peephole LSTM against a
torch-autograd implementation of the same equations. Length 0 (which torch
cannot pack) is checked through its defining properties and finite
differences.
"""

import importlib.util
import pathlib
import zlib

import helpers
import numpy as np
import pytest

try:
    from rnnpy import _reference as ref
except ImportError:  # the compiled package is not built: load the file alone
    _path = pathlib.Path(helpers.ROOT) / "rnnpy" / "_reference.py"
    _spec = importlib.util.spec_from_file_location("rnnpy_reference", _path)
    ref = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(ref)

from helpers import GATES, IS_LSTM, MODES, rel_err, torch_stack  # noqa: E402


# ---------------------------------------------------------------------------
# helpers

def check(name, a, b, tol):
    err = rel_err(a, b)
    assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.1e}"


def make_params(mode, I, H, L, D, rng, scale=0.6, dtype=np.float64):
    G = GATES[mode]
    p = {}
    for layer in range(L):
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            isz = I if layer == 0 else D * H
            p["weight_ih" + sfx] = rng.uniform(-scale, scale, (G * H, isz)).astype(dtype)
            p["weight_hh" + sfx] = rng.uniform(-scale, scale, (G * H, H)).astype(dtype)
            p["bias_ih" + sfx] = rng.uniform(-scale, scale, (G * H,)).astype(dtype)
            p["bias_hh" + sfx] = rng.uniform(-scale, scale, (G * H,)).astype(dtype)
            if mode == "LSTM_PEEPHOLE":
                p["weight_peep" + sfx] = rng.uniform(-scale, scale, (3, H)).astype(dtype)
    return p


def ref_stack(mode, params, x, h0, c0, lengths, L, bidirectional, batch_first, dout, dh, dc=None):
    state = (h0, c0) if mode in IS_LSTM else h0
    out, st, cache = ref.stack_forward(mode, params, x, state, lengths, num_layers=L,
                                       bidirectional=bidirectional, batch_first=batch_first,
                                       return_cache=True)
    dstate = (dh, dc) if mode in IS_LSTM else dh
    dx, dst, grads = ref.stack_backward(cache, dout, dstate)
    res = {"out": out, "dx": dx, "grads": grads}
    if mode in IS_LSTM:
        res["hn"], res["cn"] = st
        res["dh0"], res["dc0"] = dst
    else:
        res["hn"], res["cn"] = st, None
        res["dh0"], res["dc0"] = dst, None
    return res


def compare_all(a, b, tol, is_lstm):
    """Compare every output and gradient of two result dicts (b trusted)."""
    for key in ("out", "hn", "dx", "dh0") + (("cn", "dc0") if is_lstm else ()):
        check(key, a[key], b[key], tol)
    assert set(a["grads"]) == set(b["grads"])
    for k in b["grads"]:
        check(k, a["grads"][k], b["grads"][k], tol)


def random_problem(mode, B, T, I, H, L, bidirectional, batch_first, rng):
    D = 2 if bidirectional else 1
    params = make_params(mode, I, H, L, D, rng)
    x = rng.normal(size=(B, T, I) if batch_first else (T, B, I))
    h0 = rng.normal(size=(L * D, B, H)) * 0.5
    c0 = rng.normal(size=(L * D, B, H)) * 0.5
    dout = rng.normal(size=(B, T, D * H) if batch_first else (T, B, D * H))
    dh = rng.normal(size=(L * D, B, H))
    dc = rng.normal(size=(L * D, B, H))
    return params, x, h0, c0, dout, dh, dc


# ---------------------------------------------------------------------------
# whole stacks against torch

CONFIGS = [
    # B, T, I, H, L, bidirectional, batch_first, lengths
    (3, 6, 4, 5, 1, False, False, None),
    (1, 1, 3, 4, 1, True, True, None),
    (4, 7, 3, 5, 2, True, True, None),
    (4, 8, 2, 6, 3, False, False, [8, 3, 1, 5]),
    (5, 6, 3, 4, 2, True, True, [2, 6, 1, 6, 4]),
    (2, 5, 4, 3, 1, True, False, [1, 4]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "B{}T{}I{}H{}L{}{}{}{}".format(
    *c[:5], "bi" if c[5] else "", "bf" if c[6] else "tm", "len" if c[7] else ""))
def test_stack_matches_torch(mode, cfg):
    B, T, I, H, L, bi, bf, lengths = cfg
    rng = np.random.default_rng(zlib.crc32(repr((mode, cfg)).encode()))
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, L, bi, bf, rng)
    r = ref_stack(mode, params, x, h0, c0, lengths, L, bi, bf, dout, dh, dc)
    t = torch_stack(mode, params, x, h0, c0, lengths, L, bi, bf, dout, dh, dc)
    compare_all(r, t, 1e-12, mode in IS_LSTM)
    # padded steps really are zero, and the reference did not reorder the batch
    if lengths is not None:
        out_tm = np.swapaxes(r["out"], 0, 1) if bf else r["out"]
        for b, n in enumerate(lengths):
            assert np.all(out_tm[n:, b] == 0)
            assert np.any(out_tm[:n, b] != 0)


@pytest.mark.parametrize("mode", MODES)
def test_stack_without_state_is_zero_state(mode):
    rng = np.random.default_rng(7)
    params, x, h0, c0, dout, dh, dc = random_problem(mode, 3, 4, 2, 5, 2, True, True, rng)
    out1, st1 = ref.stack_forward(mode, params, x, None, num_layers=2, bidirectional=True)
    z = np.zeros_like(h0)
    out2, st2 = ref.stack_forward(mode, params, x, (z, z) if mode in IS_LSTM else z,
                                  num_layers=2, bidirectional=True)
    np.testing.assert_array_equal(out1, out2)
    t = torch_stack(mode, params, x, z, z, None, 2, True, True, dout, dh, dc)
    check("out", out1, t["out"], 1e-12)


# ---------------------------------------------------------------------------
# the cell functions directly

def _cell_call(mode, x, h0, c0, p, lengths=None, reverse=False):
    w = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    if mode.startswith("RNN"):
        nl = "tanh" if mode == "RNN_TANH" else "relu"
        out, h, cache = ref.rnn_cell_forward(x, h0, *w, nonlinearity=nl, lengths=lengths,
                                             reverse=reverse, return_cache=True)
        return out, (h,), cache
    if mode in IS_LSTM:
        peep = p.get("weight_peep_l0")
        out, h, c, cache = ref.lstm_cell_forward(x, h0, c0, *w, w_peep=peep, lengths=lengths,
                                                 reverse=reverse, return_cache=True)
        return out, (h, c), cache
    out, h, cache = ref.gru_cell_forward(x, h0, *w, lengths=lengths, reverse=reverse,
                                         return_cache=True)
    return out, (h,), cache


def _cell_back(mode, dout, dstate, cache):
    if mode.startswith("RNN"):
        dx, dh0, g = ref.rnn_cell_backward(dout, dstate[0], cache)
        return dx, (dh0,), g
    if mode in IS_LSTM:
        dx, dh0, dc0, g = ref.lstm_cell_backward(dout, dstate[0], dstate[1], cache)
        return dx, (dh0, dc0), g
    dx, dh0, g = ref.gru_cell_backward(dout, dstate[0], cache)
    return dx, (dh0,), g


@pytest.mark.parametrize("mode", MODES)
def test_cell_functions_match_torch(mode):
    rng = np.random.default_rng(11)
    T, B, I, H = 5, 3, 4, 6
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, 1, False, False, rng)
    out, st, cache = _cell_call(mode, x, h0[0], c0[0], params)
    dx, dst, g = _cell_back(mode, dout, (dh[0], dc[0]), cache)
    t = torch_stack(mode, params, x, h0, c0, None, 1, False, False, dout, dh, dc)
    check("out", out, t["out"], 1e-12)
    check("hT", st[0], t["hn"][0], 1e-12)
    check("dx", dx, t["dx"], 1e-12)
    check("dh0", dst[0], t["dh0"][0], 1e-12)
    if mode in IS_LSTM:
        check("cT", st[1], t["cn"][0], 1e-12)
        check("dc0", dst[1], t["dc0"][0], 1e-12)
    for k in g:
        check(k, g[k], t["grads"][k + "_l0"], 1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_reverse_is_forward_on_reversed_sequences(mode):
    """reverse=True with lengths equals the forward cell on each sequence's
    valid steps read backwards (a check that does not involve torch)."""
    rng = np.random.default_rng(12)
    T, B, I, H = 6, 4, 3, 5
    lengths = np.array([6, 0, 3, 1])
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, 1, False, False, rng)
    out, st, cache = _cell_call(mode, x, h0[0], c0[0], params, lengths, reverse=True)
    dx, dst, g = _cell_back(mode, dout, (dh[0], dc[0]), cache)
    gsum = {k: np.zeros_like(v) for k, v in g.items()}
    for b, n in enumerate(lengths):
        xb = x[:n, b:b + 1][::-1]
        ob, sb, cb = _cell_call(mode, xb, h0[0, b:b + 1], c0[0, b:b + 1], params)
        np.testing.assert_allclose(out[:n, b:b + 1], ob[::-1], rtol=1e-13, atol=1e-14)
        assert np.all(out[n:, b] == 0)
        for s, s1 in zip(st, sb):
            np.testing.assert_allclose(s[b:b + 1], s1, rtol=1e-13, atol=1e-14)
        dxb, dsb, gb = _cell_back(mode, dout[:n, b:b + 1][::-1],
                                  (dh[0, b:b + 1], dc[0, b:b + 1]), cb)
        np.testing.assert_allclose(dx[:n, b:b + 1], dxb[::-1], rtol=1e-12, atol=1e-13)
        assert np.all(dx[n:, b] == 0)
        for s, s1 in zip(dst, dsb):
            np.testing.assert_allclose(s[b:b + 1], s1, rtol=1e-12, atol=1e-13)
        for k in gsum:
            gsum[k] += gb[k]
    for k in g:
        np.testing.assert_allclose(g[k], gsum[k], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# length 0, which torch cannot pack

@pytest.mark.parametrize("mode", MODES)
def test_length_zero(mode):
    """A length-0 row passes its state through untouched, outputs zeros, gets
    dh0 = dhT (dc0 = dcT) and dx = 0, and leaves the other rows (compared with
    torch on the batch without it) and the weight gradients unchanged."""
    rng = np.random.default_rng(13)
    B, T, I, H, L = 4, 5, 3, 4, 2
    lengths = np.array([5, 0, 2, 3])
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, L, True, True, rng)
    r = ref_stack(mode, params, x, h0, c0, lengths, L, True, True, dout, dh, dc)
    assert np.all(r["out"][1] == 0)
    assert np.all(r["dx"][1] == 0)
    np.testing.assert_array_equal(r["hn"][:, 1], h0[:, 1])
    np.testing.assert_array_equal(r["dh0"][:, 1], dh[:, 1])
    if mode in IS_LSTM:
        np.testing.assert_array_equal(r["cn"][:, 1], c0[:, 1])
        np.testing.assert_array_equal(r["dc0"][:, 1], dc[:, 1])
    keep = [0, 2, 3]
    t = torch_stack(mode, params, x[keep], h0[:, keep], c0[:, keep], lengths[keep], L, True,
                    True, dout[keep], dh[:, keep], dc[:, keep])
    check("out", r["out"][keep], t["out"], 1e-12)
    check("hn", r["hn"][:, keep], t["hn"], 1e-12)
    check("dx", r["dx"][keep], t["dx"], 1e-12)
    check("dh0", r["dh0"][:, keep], t["dh0"], 1e-12)
    if mode in IS_LSTM:
        check("cn", r["cn"][:, keep], t["cn"], 1e-12)
        check("dc0", r["dc0"][:, keep], t["dc0"], 1e-12)
    for k in t["grads"]:
        check(k, r["grads"][k], t["grads"][k], 1e-12)


def test_all_lengths_zero():
    rng = np.random.default_rng(14)
    params, x, h0, c0, dout, dh, dc = random_problem("LSTM", 2, 3, 2, 4, 1, False, False, rng)
    r = ref_stack("LSTM", params, x, h0, c0, [0, 0], 1, False, False, dout, dh, dc)
    assert np.all(r["out"] == 0) and np.all(r["dx"] == 0)
    np.testing.assert_array_equal(r["hn"], h0)
    np.testing.assert_array_equal(r["dc0"], dc)
    for v in r["grads"].values():
        assert np.all(v == 0)


# ---------------------------------------------------------------------------
# finite differences: an independent check of the hand-written BPTT

@pytest.mark.parametrize("mode", MODES)
def test_directional_derivatives(mode):
    """<grad, v> equals the central difference of the loss along a random v,
    separately for x, each initial state and each parameter."""
    rng = np.random.default_rng(15)
    B, T, I, H, L = 3, 4, 2, 3, 2
    lengths = np.array([4, 0, 2])
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, L, True, True, rng)
    is_lstm = mode in IS_LSTM

    def loss(params, x, h0, c0):
        out, st = ref.stack_forward(mode, params, x, (h0, c0) if is_lstm else h0, lengths,
                                    num_layers=L, bidirectional=True)
        if is_lstm:
            return np.sum(out * dout) + np.sum(st[0] * dh) + np.sum(st[1] * dc)
        return np.sum(out * dout) + np.sum(st * dh)

    r = ref_stack(mode, params, x, h0, c0, lengths, L, True, True, dout, dh, dc)
    eps = 1e-6
    inputs = {"x": x, "h0": h0, "c0": c0}
    grads = {"x": r["dx"], "h0": r["dh0"], "c0": r["dc0"]}
    names = ["x", "h0"] + (["c0"] if is_lstm else []) + sorted(params)
    for name in names:
        base = inputs[name] if name in inputs else params[name]
        g = grads[name] if name in grads else r["grads"][name]
        v = rng.normal(size=base.shape)

        def at(s):
            p2 = dict(params)
            i2 = dict(inputs)
            if name in inputs:
                i2[name] = base + s * v
            else:
                p2[name] = base + s * v
            return loss(p2, i2["x"], i2["h0"], i2["c0"])

        fd = (at(eps) - at(-eps)) / (2 * eps)
        an = np.sum(g * v)
        assert abs(fd - an) <= 1e-6 * max(1.0, abs(an)), f"{name}: fd {fd} vs analytic {an}"


# ---------------------------------------------------------------------------
# float32

@pytest.mark.parametrize("mode", MODES)
def test_float32_computes_in_float32(mode):
    rng = np.random.default_rng(16)
    B, T, I, H, L = 3, 6, 3, 5, 2
    lengths = [6, 2, 4]
    params, x, h0, c0, dout, dh, dc = random_problem(mode, B, T, I, H, L, True, True, rng)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    p32 = {k: f32(v) for k, v in params.items()}
    r32 = ref_stack(mode, p32, f32(x), f32(h0), f32(c0), lengths, L, True, True,
                    f32(dout), f32(dh), f32(dc))
    assert r32["out"].dtype == np.float32 and r32["dx"].dtype == np.float32
    assert all(v.dtype == np.float32 for v in r32["grads"].values())
    # the float64 truth on the same (float32-representable) inputs
    up = lambda a: np.asarray(f32(a), np.float64)  # noqa: E731
    t = torch_stack(mode, {k: up(v) for k, v in params.items()}, up(x), up(h0), up(c0),
                    lengths, L, True, True, up(dout), up(dh), up(dc))
    compare_all(r32, t, 2e-5, mode in IS_LSTM)
    # and it really is float32 arithmetic, not float64 rounded at the end
    assert rel_err(r32["grads"]["weight_hh_l0"], t["grads"]["weight_hh_l0"]) > 1e-10


def test_bad_lengths_rejected():
    rng = np.random.default_rng(17)
    params, x, h0, c0, dout, dh, dc = random_problem("GRU", 2, 3, 2, 4, 1, False, True, rng)
    for bad in ([4, 1], [-1, 2], [1, 2, 3]):
        with pytest.raises(ValueError, match="lengths"):
            ref.stack_forward("GRU", params, x, lengths=bad, num_layers=1, bidirectional=False)
