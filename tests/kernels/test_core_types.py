"""The C types of rnnpy._core, used directly.

RNNCell, LSTMCell (with and without peepholes) and GRUCell: flat parameter
and gradient vectors given by the caller and used in place, ``layout()`` and
the named weight views, forward/backward against the pure-NumPy reference
(rnnpy/_reference.py), batch-first against time-major, ``reverse`` against a
time flip, repeated backward, and the GIL: cells run concurrently in threads
and never share mutable state. Also ``rnnpy._core.gemm`` against NumPy for
every transpose combination, alpha/beta, every micro-kernel and both dtypes.
"""

import threading

import numpy as np
import pytest
from helpers import CELL_KINDS, run_threads

from rnnpy import _core
from rnnpy import _reference as ref

# kind -> (type, constructor keywords, gates, reference mode), from the one list of cells
_CORE_TYPES = {"RNN": _core.RNNCell, "LSTM": _core.LSTMCell, "GRU": _core.GRUCell}
KINDS = {
    mode.lower(): (_CORE_TYPES[k.layer],
                   {"peephole": bool(k.kwargs.get("peephole"))} if k.lstm else dict(k.kwargs),
                   k.gates, mode)
    for mode, k in CELL_KINDS.items()
}
ALL_KINDS = list(KINDS)
DTYPES = ["float32", "float64"]
TOL = {"float32": 2e-5, "float64": 1e-12}


def is_lstm(kind):
    return kind.startswith("lstm")


def num_params(kind, I, H):
    G = KINDS[kind][2]
    return G * H * (I + H + 2) + (3 * H if kind == "lstm_peephole" else 0)


def make_cell(kind, I, H, dtype="float64", seed=0, scale=0.5):
    """A cell over caller-owned flat vectors filled with random parameters."""
    cls, kw, _, _ = KINDS[kind]
    n = num_params(kind, I, H)
    rng = np.random.default_rng(seed)
    params = (rng.uniform(-scale, scale, n)).astype(dtype)
    grads = np.zeros(n, dtype=dtype)
    cell = cls(I, H, dtype=dtype, params=params, grads=grads, **kw)
    return cell, params, grads


def run_forward(cell, kind, x, h0=None, c0=None, lengths=None, **kw):
    """(out, hT, cT-or-None) whatever the cell kind."""
    if is_lstm(kind):
        return cell.forward(x, h0, c0, lengths, **kw)
    out, hT = cell.forward(x, h0, lengths, **kw)
    return out, hT, None


def run_backward(cell, kind, dout=None, dhT=None, dcT=None):
    """(dx, dh0, dc0-or-None) whatever the cell kind."""
    if is_lstm(kind):
        return cell.backward(dout, dhT, dcT)
    dx, dh0 = cell.backward(dout, dhT)
    return dx, dh0, None


def named(cell):
    """name -> copy of the parameter, through layout()."""
    p = cell.params
    return {name: p[off: off + int(np.prod(shape))].reshape(shape).copy()
            for name, off, shape in cell.layout()}


def named_grads(cell):
    g = cell.grads
    return {name: g[off: off + int(np.prod(shape))].reshape(shape).copy()
            for name, off, shape in cell.layout()}


def assert_close(actual, expected, tol, what):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1.0)
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol * scale:.3e}"


# ---------------------------------------------------------------------------
# the reference forward/backward (rnnpy._reference), one cell, time-major

def reference_forward(kind, p, x, h0, c0, lengths=None, reverse=False):
    """Time-major reference forward -> (out, hT, cT-or-None, cache)."""
    w = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    if kind in ("rnn_tanh", "rnn_relu"):
        out, h, cache = ref.rnn_cell_forward(x, h0, *w, nonlinearity=kind[4:], lengths=lengths,
                                             reverse=reverse, return_cache=True)
        return out, h, None, cache
    if kind == "gru":
        out, h, cache = ref.gru_cell_forward(x, h0, *w, lengths=lengths, reverse=reverse,
                                             return_cache=True)
        return out, h, None, cache
    out, h, c, cache = ref.lstm_cell_forward(x, h0, c0, *w, w_peep=p.get("weight_peep"),
                                             lengths=lengths, reverse=reverse,
                                             return_cache=True)
    return out, h, c, cache


def reference_backward(kind, cache, dout, dhT, dcT):
    """-> (dx, dh0, dc0-or-None, grads dict)."""
    if kind in ("rnn_tanh", "rnn_relu"):
        dx, dh0, g = ref.rnn_cell_backward(dout, dhT, cache)
        return dx, dh0, None, g
    if kind == "gru":
        dx, dh0, g = ref.gru_cell_backward(dout, dhT, cache)
        return dx, dh0, None, g
    return ref.lstm_cell_backward(dout, dhT, dcT, cache)


# ---------------------------------------------------------------------------
# construction, layout and views

@pytest.mark.parametrize("kind", ALL_KINDS)
def test_layout_names_offsets_and_shapes(kind):
    I, H = 3, 2
    cell, params, grads = make_cell(kind, I, H)
    G = KINDS[kind][2]
    expected = [("weight_ih", 0, (G * H, I)),
                ("weight_hh", G * H * I, (G * H, H)),
                ("bias_ih", G * H * (I + H), (G * H,)),
                ("bias_hh", G * H * (I + H + 1), (G * H,))]
    if kind == "lstm_peephole":
        expected.append(("weight_peep", G * H * (I + H + 2), (3, H)))
    assert [(n, o, tuple(s)) for n, o, s in cell.layout()] == expected
    assert cell.num_params == num_params(kind, I, H) == params.size
    _, last_off, last_shape = expected[-1]
    assert last_off + int(np.prod(last_shape)) == cell.num_params
    assert cell.input_size == I and cell.hidden_size == H
    assert cell.dtype == "float64"
    assert cell.kind == kind
    assert cell.params is params and cell.grads is grads


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_default_buffers_are_zeroed_and_of_the_dtype(kind, dtype):
    cls, kw, _, _ = KINDS[kind]
    cell = cls(2, 3, dtype=dtype, **kw)
    assert cell.dtype == dtype
    assert cell.params.dtype == np.dtype(dtype) and cell.grads.dtype == np.dtype(dtype)
    assert cell.params.shape == (num_params(kind, 2, 3),)
    assert not cell.params.any() and not cell.grads.any()
    assert not np.shares_memory(cell.params, cell.grads)
    # the default dtype is float32
    assert cls(2, 3, **kw).dtype == "float32"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_weight_attributes_are_views_of_params(kind):
    I, H = 3, 2
    cell, params, _ = make_cell(kind, I, H)
    layout = {n: (o, tuple(s)) for n, o, s in cell.layout()}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peep"):
        view = getattr(cell, name)
        if name not in layout:
            assert view is None, name
            continue
        off, shape = layout[name]
        assert view.shape == shape and view.dtype == params.dtype
        assert np.shares_memory(view, params), name
        np.testing.assert_array_equal(view, params[off: off + view.size].reshape(shape))
        # writing through the view changes the flat vector, and vice versa
        view.flat[-1] = 123.0
        assert params[off + view.size - 1] == 123.0
        params[off] = -7.0
        assert getattr(cell, name).flat[0] == -7.0
    # the view stays valid after the cell is gone (it keeps params alive)
    w = cell.weight_hh
    del cell
    assert w.flat[0] == -7.0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_params_are_used_in_place(kind):
    I, H, T, B = 3, 4, 3, 2
    cell, params, _ = make_cell(kind, I, H)
    x = np.random.default_rng(1).standard_normal((T, B, I))
    out1 = run_forward(cell, kind, x)[0]
    # writing into the caller's flat vector changes what forward computes
    bias_off = dict((n, o) for n, o, _ in cell.layout())["bias_ih"]
    params[bias_off: bias_off + H] += 0.5
    out2 = run_forward(cell, kind, x)[0]
    assert np.max(np.abs(out2 - out1)) > 1e-3
    p = named(cell)
    h0 = np.zeros((B, H))
    expected = reference_forward(kind, p, x, h0, h0 if is_lstm(kind) else None)[0]
    assert_close(out2, expected, 1e-12, "out after writing into params")
    # with every parameter zero the state stays zero (tanh(0) = relu(0) = 0;
    # LSTM: g = 0 so c = 0; GRU: n = 0 and h = z*h_prev = 0)
    params[...] = 0
    out3, hT, _ = run_forward(cell, kind, x)
    assert not out3.any() and not hT.any()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_backward_adds_into_given_grads(kind):
    I, H, T, B = 2, 3, 4, 2
    cell, _, grads = make_cell(kind, I, H)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, I))
    run_forward(cell, kind, x)
    dout = rng.standard_normal((T, B, H))
    dhT = rng.standard_normal((B, H))
    dx1, dh01, dc01 = run_backward(cell, kind, dout, dhT)
    once = grads.copy()
    assert np.count_nonzero(once) > once.size // 3  # relu may leave a unit dead
    dx2, dh02, dc02 = run_backward(cell, kind, dout, dhT)
    # the cache is read-only: the second call returns the same gradients ...
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(dh01, dh02)
    if dc01 is not None:
        np.testing.assert_array_equal(dc01, dc02)
    # ... and adds them again into the caller's vector (the kernels add step
    # by step, so the sum is exact only up to rounding)
    np.testing.assert_allclose(grads, 2 * once, rtol=1e-14, atol=1e-15)
    assert cell.grads is grads
    # zero_grad clears the caller's vector in place
    cell.zero_grad()
    assert not grads.any()
    run_backward(cell, kind, dout, dhT)
    np.testing.assert_array_equal(grads, once)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_backward_preaccumulated_grads_are_kept(kind):
    cell, _, grads = make_cell(kind, 2, 2)
    grads[...] = 5.0
    x = np.random.default_rng(3).standard_normal((2, 1, 2))
    run_forward(cell, kind, x)
    run_backward(cell, kind, None, None)  # zero upstream gradient: adds zero
    np.testing.assert_array_equal(grads, np.full_like(grads, 5.0))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_clear_cache_and_has_cache(kind):
    cell, _, _ = make_cell(kind, 2, 2)
    assert cell.has_cache is False
    with pytest.raises(RuntimeError, match="forward"):
        run_backward(cell, kind)
    run_forward(cell, kind, np.ones((2, 1, 2)))
    assert cell.has_cache is True
    cell.clear_cache()
    assert cell.has_cache is False
    with pytest.raises(RuntimeError, match="forward first"):
        run_backward(cell, kind)


# ---------------------------------------------------------------------------
# kernels against the NumPy reference

@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_forward_backward_match_reference(kind, dtype, reverse, with_lengths):
    I, H, T, B = 3, 4, 5, 3
    cell, _, _ = make_cell(kind, I, H, dtype=dtype, seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((B, H))).astype(dtype) if is_lstm(kind) else None
    lengths = np.array([0, T, 2]) if with_lengths else None
    out, hT, cT = run_forward(cell, kind, x, h0, c0, lengths, reverse=reverse)

    p64 = {k: v.astype(np.float64) for k, v in named(cell).items()}
    x64, h064 = x.astype(np.float64), h0.astype(np.float64)
    c064 = None if c0 is None else c0.astype(np.float64)
    r_out, r_h, r_c, cache = reference_forward(kind, p64, x64, h064, c064, lengths, reverse)
    tol = TOL[dtype]
    assert out.dtype == np.dtype(dtype) and out.shape == (T, B, H)
    assert_close(out, r_out, tol, "out")
    assert_close(hT, r_h, tol, "hT")
    if cT is not None:
        assert_close(cT, r_c, tol, "cT")
    if with_lengths:
        # past a sequence's length: zero output, and length 0 keeps h0
        assert not out[:, 0].any()
        assert not out[2:, 2].any()
        np.testing.assert_array_equal(hT[0], h0[0])
        if cT is not None:
            np.testing.assert_array_equal(cT[0], c0[0])

    dout = rng.standard_normal((T, B, H)).astype(dtype)
    dhT = rng.standard_normal((B, H)).astype(dtype)
    dcT = rng.standard_normal((B, H)).astype(dtype) if is_lstm(kind) else None
    dx, dh0, dc0 = run_backward(cell, kind, dout, dhT, dcT)
    r_dx, r_dh0, r_dc0, r_g = reference_backward(
        kind, cache, dout.astype(np.float64), dhT.astype(np.float64),
        None if dcT is None else dcT.astype(np.float64))
    assert dx.dtype == np.dtype(dtype)
    assert_close(dx, r_dx, tol, "dx")
    assert_close(dh0, r_dh0, tol, "dh0")
    if dc0 is not None:
        assert_close(dc0, r_dc0, tol, "dc0")
    g = named_grads(cell)
    assert set(g) == set(r_g)
    for name in g:
        assert_close(g[name], r_g[name], tol * 10, f"grad {name}")
    if with_lengths:
        # a sequence of length 0 gets no input gradient, and passes dhT to dh0
        assert not dx[:, 0].any()
        np.testing.assert_array_equal(dh0[0], dhT[0])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_reference_agrees_reversed_and_ragged(kind):
    """The cell and the reference agree reversed and over ragged lengths, to 1e-12."""
    I, H, T, B = 2, 3, 4, 2
    cell, _, _ = make_cell(kind, I, H, seed=6)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H)) * 0.3
    c0 = rng.standard_normal((B, H)) * 0.3 if is_lstm(kind) else None
    for reverse in (False, True):
        for lengths in (None, np.array([1, 4])):
            out, hT, cT = run_forward(cell, kind, x, h0, c0, lengths, reverse=reverse)
            r_out, r_h, r_c, _ = reference_forward(kind, named(cell), x, h0, c0, lengths, reverse)
            assert_close(out, r_out, 1e-12, "out")
            assert_close(hT, r_h, 1e-12, "hT")
            if cT is not None:
                assert_close(cT, r_c, 1e-12, "cT")


# ---------------------------------------------------------------------------
# layouts, reverse, lengths

@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_first_equals_time_major(kind, dtype):
    I, H, T, B = 3, 4, 5, 3
    tm, _, g_tm = make_cell(kind, I, H, dtype=dtype, seed=8)
    bf, _, g_bf = make_cell(kind, I, H, dtype=dtype, seed=8)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype) if is_lstm(kind) else None
    lengths = np.array([2, 5, 0])
    tol = TOL[dtype]
    for reverse in (False, True):
        o1, h1, c1 = run_forward(tm, kind, x, h0, c0, lengths, reverse=reverse)
        xb = np.ascontiguousarray(x.transpose(1, 0, 2))
        o2, h2, c2 = run_forward(bf, kind, xb, h0, c0, lengths, reverse=reverse,
                                 batch_first=True)
        assert o2.shape == (B, T, H)
        assert_close(o2.transpose(1, 0, 2), o1, tol, "out")
        assert_close(h2, h1, tol, "hT")
        if c1 is not None:
            assert_close(c2, c1, tol, "cT")
        dout = rng.standard_normal((T, B, H)).astype(dtype)
        dhT = rng.standard_normal((B, H)).astype(dtype)
        tm.zero_grad()
        bf.zero_grad()
        d1 = run_backward(tm, kind, dout, dhT)
        d2 = run_backward(bf, kind, np.ascontiguousarray(dout.transpose(1, 0, 2)), dhT)
        assert d2[0].shape == (B, T, I)
        assert_close(d2[0].transpose(1, 0, 2), d1[0], tol, "dx")
        assert_close(d2[1], d1[1], tol, "dh0")
        if d1[2] is not None:
            assert_close(d2[2], d1[2], tol, "dc0")
        assert_close(g_bf, g_tm, tol * 10, "grads")
        assert np.abs(g_tm).max() > 0.01


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_reverse_equals_forward_on_flipped_input(kind):
    I, H, T, B = 3, 3, 5, 2
    fwd, _, g_f = make_cell(kind, I, H, seed=10)
    rev, _, g_r = make_cell(kind, I, H, seed=10)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5 if is_lstm(kind) else None
    o_r, h_r, c_r = run_forward(rev, kind, x, h0, c0, reverse=True)
    o_f, h_f, c_f = run_forward(fwd, kind, x[::-1], h0, c0)
    assert_close(o_r, o_f[::-1], 1e-13, "out")
    assert_close(h_r, h_f, 1e-13, "hT")
    if c_r is not None:
        assert_close(c_r, c_f, 1e-13, "cT")
    # the reversed output differs from the plain forward output
    o_plain = run_forward(make_cell(kind, I, H, seed=10)[0], kind, x, h0, c0)[0]
    assert np.max(np.abs(o_plain - o_r)) > 1e-3
    dout = rng.standard_normal((T, B, H))
    dhT = rng.standard_normal((B, H))
    d_r = run_backward(rev, kind, dout, dhT)
    d_f = run_backward(fwd, kind, np.ascontiguousarray(dout[::-1]), dhT)
    assert_close(d_r[0], d_f[0][::-1], 1e-13, "dx")
    assert_close(d_r[1], d_f[1], 1e-13, "dh0")
    if d_r[2] is not None:
        assert_close(d_r[2], d_f[2], 1e-13, "dc0")
    assert_close(g_r, g_f, 1e-12, "grads")


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_lengths_equal_running_each_sequence_alone(kind):
    """A padded batch with lengths gives each sequence what it gets alone."""
    I, H, T = 2, 3, 5
    cell, _, _ = make_cell(kind, I, H, seed=12)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((T, 3, I))
    lengths = [3, 5, 1]
    for reverse in (False, True):
        out, hT, cT = run_forward(cell, kind, x, lengths=lengths, reverse=reverse)
        for b, n in enumerate(lengths):
            o1, h1, c1 = run_forward(cell, kind, x[:n, b:b + 1], reverse=reverse)
            assert_close(out[:n, b:b + 1], o1, 1e-13, f"out[{b}]")
            assert not out[n:, b].any()
            assert_close(hT[b:b + 1], h1, 1e-13, f"hT[{b}]")
            if cT is not None:
                assert_close(cT[b:b + 1], c1, 1e-13, f"cT[{b}]")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_chains_across_windows(kind):
    """Running T steps in two windows with the state carried equals one run."""
    I, H, T, B = 2, 3, 6, 2
    cell, _, _ = make_cell(kind, I, H, seed=14)
    x = np.random.default_rng(15).standard_normal((T, B, I))
    out, hT, cT = run_forward(cell, kind, x)
    o1, h1, c1 = run_forward(cell, kind, x[:4])
    o2, h2, c2 = run_forward(cell, kind, x[4:], h1, c1)
    assert_close(np.concatenate([o1, o2]), out, 1e-13, "out")
    assert_close(h2, hT, 1e-13, "hT")
    if cT is not None:
        assert_close(c2, cT, 1e-13, "cT")


# ---------------------------------------------------------------------------
# GEMM

ISAS = ["generic", "avx2", "avx512", "reference", None]
GEMM_SHAPES = [(1, 1, 1), (1, 7, 1), (3, 5, 7), (2, 1, 9), (17, 33, 9), (31, 16, 65),
               (65, 130, 67)]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_numpy(isa, dtype):
    rng = np.random.default_rng(16)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for M, N, K in GEMM_SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                for alpha, beta in ((1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.75, -1.5), (0.0, 2.0)):
                    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
                    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
                    c0 = rng.standard_normal((M, N)).astype(dtype)
                    c = c0.copy()
                    res = _core.gemm(a, b, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, c=c,
                                     isa=isa)
                    assert res is c
                    assert res.dtype == dtype
                    A = a.T if ta else a
                    Bm = b.T if tb else b
                    want = alpha * (A.astype(np.float64) @ Bm.astype(np.float64)) + beta * c0
                    scale = max(1.0, float(np.abs(A).sum(1).max() * np.abs(Bm).max()))
                    err = float(np.max(np.abs(res - want)))
                    assert err <= tol * scale, (
                        f"isa={isa} {dtype.__name__} M,N,K={M},{N},{K} ta={ta} tb={tb} "
                        f"alpha={alpha} beta={beta}: error {err:.3e}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_new_output_and_beta_zero_ignores_c(isa, dtype):
    rng = np.random.default_rng(17)
    a = rng.standard_normal((5, 3)).astype(dtype)
    b = rng.standard_normal((3, 4)).astype(dtype)
    res = _core.gemm(a, b, isa=isa)
    assert res.shape == (5, 4) and res.dtype == dtype
    np.testing.assert_allclose(res, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)
    c = np.full((5, 4), np.nan, dtype=dtype)
    res = _core.gemm(a, b, beta=0.0, c=c, isa=isa)
    assert np.isfinite(res).all(), "beta = 0 must not read C"
    # K = 0 scales C by beta
    c = np.ones((5, 4), dtype=dtype)
    res = _core.gemm(np.ones((5, 0), dtype), np.ones((0, 4), dtype), beta=3.0, c=c, isa=isa)
    np.testing.assert_array_equal(res, np.full((5, 4), 3.0, dtype))


def test_gemm_dtype_follows_a_and_isa_name():
    a64 = np.arange(6.0).reshape(2, 3)
    b = np.arange(3.0).reshape(3, 1)
    assert _core.gemm(a64, b).dtype == np.float64
    assert _core.gemm(a64.astype(np.float32), b).dtype == np.float32
    np.testing.assert_array_equal(_core.gemm([[1, 2]], [[3], [4]]), [[11.0]])
    assert _core.gemm_isa() in ("generic", "avx2", "avx512")


def test_gemm_non_contiguous_inputs():
    rng = np.random.default_rng(18)
    big_a = rng.standard_normal((6, 10))
    big_b = rng.standard_normal((10, 8))
    a = big_a[:, ::2]           # (6, 5), strided
    b = big_b[::2, 1::2]        # (5, 4), strided
    np.testing.assert_allclose(_core.gemm(a, b), a @ b, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(_core.gemm(np.asfortranarray(a), b), a @ b, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------
# threads and state

def _big_inputs(seed, T=60, B=16, I=32, H=48):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, I)), H


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_two_cells_in_two_threads_match_sequential_runs(kind):
    x1, H = _big_inputs(19)
    x2, _ = _big_inputs(20)
    I = x1.shape[2]
    c1, _, g1 = make_cell(kind, I, H, seed=21, scale=0.1)
    c2, _, g2 = make_cell(kind, I, H, seed=22, scale=0.1)
    s1, _, sg1 = make_cell(kind, I, H, seed=21, scale=0.1)
    s2, _, sg2 = make_cell(kind, I, H, seed=22, scale=0.1)
    dout = np.random.default_rng(23).standard_normal((x1.shape[0], x1.shape[1], H))
    want = []
    for cell, x in ((s1, x1), (s2, x2)):
        out = run_forward(cell, kind, x)
        back = run_backward(cell, kind, dout)
        want.append((out, back))

    barrier = threading.Barrier(2)
    got = [None, None]

    def work(k, cell, x):
        barrier.wait()
        outs = []
        for _ in range(3):
            cell.zero_grad()
            outs.append((run_forward(cell, kind, x), run_backward(cell, kind, dout)))
        got[k] = outs

    run_threads(work, [(0, c1, x1), (1, c2, x2)])
    for k in range(2):
        for (out, back) in got[k]:
            for a, b in zip(out + back, want[k][0] + want[k][1]):
                if a is None:
                    assert b is None
                else:
                    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(g1, sg1)
    np.testing.assert_array_equal(g2, sg2)


def test_gil_is_released_during_forward():
    """While one thread is inside a long forward, another thread keeps running."""
    x, H = _big_inputs(24, T=100, B=16, I=64, H=128)
    cell, _, _ = make_cell("lstm", x.shape[2], H, seed=25, scale=0.05)
    run_forward(cell, "lstm", x[:2])  # warm up
    done = threading.Event()
    ticks = []

    def busy():
        for _ in range(3):
            run_forward(cell, "lstm", x)
        done.set()

    t = threading.Thread(target=busy)
    t.start()
    while not done.is_set():
        ticks.append(1)
        done.wait(0.0005)
    t.join()
    # with the GIL held for the whole kernel the main thread could only tick
    # between the three calls; with it released it ticks all along
    assert len(ticks) > 10


def test_same_cell_from_two_threads_never_corrupts():
    """A call on a cell that another thread is running gets RuntimeError ("in
    use by another thread"), never a mixed result; a call after it runs.
    The worker keeps running until such a refusal has been seen, so the
    contention is certain, not left to timing; results are always those of
    a sequential run."""
    kind = "gru"
    x, H = _big_inputs(26, T=200, B=16, I=32, H=64)
    cell, _, _ = make_cell(kind, x.shape[2], H, seed=27, scale=0.1)
    fresh, _, _ = make_cell(kind, x.shape[2], H, seed=27, scale=0.1)
    want_out, want_h, _ = run_forward(fresh, kind, x)
    small = x[:3, :2]
    want_small = run_forward(fresh, kind, small)[0]

    results, busy_errors, other_errors = [], [], []
    start, refused = threading.Event(), threading.Event()

    def worker():
        start.set()
        while len(results) < 4 or (not refused.is_set() and len(results) < 400):
            results.append(run_forward(cell, kind, x))

    t = threading.Thread(target=worker)
    t.start()
    start.wait()
    small_results = []
    while t.is_alive():
        try:
            small_results.append(run_forward(cell, kind, small)[0])
        except RuntimeError as exc:
            busy_errors.append(str(exc))
            refused.set()
        except Exception as exc:  # anything else is a defect
            other_errors.append(exc)
    t.join()
    assert not other_errors, other_errors
    assert busy_errors, (f"{len(small_results)} calls during {len(results)} forwards of "
                         "another thread, none refused")
    for msg in busy_errors:
        assert "in use by another thread" in msg
    assert 4 <= len(results) < 400
    for out, h, _ in results:
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(h, want_h)
    for out in small_results:
        np.testing.assert_array_equal(out, want_small)
    # the cell is usable and correct afterwards
    out, h, _ = run_forward(cell, kind, x)
    np.testing.assert_array_equal(out, want_out)
    dx = run_backward(cell, kind, np.ones_like(out))[0]
    run_forward(fresh, kind, x)
    dx_fresh = run_backward(fresh, kind, np.ones_like(out))[0]
    np.testing.assert_array_equal(dx, dx_fresh)
    assert np.abs(dx).max() > 0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_cells_share_no_mutable_state(kind):
    """Interleaving two cells' forward/backward gives each its own gradients."""
    I, H = 2, 3
    a, _, ga = make_cell(kind, I, H, seed=28)
    b, _, gb = make_cell(kind, I, H, seed=29)
    rng = np.random.default_rng(30)
    xa = rng.standard_normal((4, 2, I))
    xb = rng.standard_normal((3, 5, I))  # a different shape on purpose
    # sequential, one cell at a time
    a2, _, ga2 = make_cell(kind, I, H, seed=28)
    b2, _, gb2 = make_cell(kind, I, H, seed=29)
    oa = run_forward(a2, kind, xa)[0]
    da = run_backward(a2, kind, np.ones_like(oa))
    ob = run_forward(b2, kind, xb)[0]
    db = run_backward(b2, kind, np.ones_like(ob))
    # interleaved
    run_forward(a, kind, xa)
    run_forward(b, kind, xb)
    da_i = run_backward(a, kind, np.ones_like(oa))
    db_i = run_backward(b, kind, np.ones_like(ob))
    np.testing.assert_array_equal(da_i[0], da[0])
    np.testing.assert_array_equal(db_i[0], db[0])
    np.testing.assert_array_equal(ga, ga2)
    np.testing.assert_array_equal(gb, gb2)
    assert not np.shares_memory(ga, gb)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_backward_uses_the_saved_input_not_the_callers_array(kind):
    """forward keeps a copy of x: changing x afterwards does not change backward."""
    cell, _, grads = make_cell(kind, 2, 3, seed=31)
    rng = np.random.default_rng(32)
    x = rng.standard_normal((3, 2, 2))
    x_copy = x.copy()
    run_forward(cell, kind, x)
    x[...] = 100.0
    run_backward(cell, kind, np.ones((3, 2, 3)))
    g1 = grads.copy()
    cell.zero_grad()
    run_forward(cell, kind, x_copy)
    run_backward(cell, kind, np.ones((3, 2, 3)))
    np.testing.assert_array_equal(grads, g1)
