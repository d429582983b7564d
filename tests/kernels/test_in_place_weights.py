"""A batch of one over few steps reads the weights where they lie (one
row-vector product per step) instead of packing them once per call. That
path must compute what the packed one computes: a sequence alone (B = 1)
against the same sequence twice in a batch of two (packed), forward and
every gradient, for every cell and option, in float64 and float32."""
import numpy as np
import pytest

from rnnpy import _core

# (T, I, H): T = 1 (always in place), T = 3 with I, H >= 96 (both weights in
# place), T = 4 with I = 8 (W_ih packed, W_hh in place), and T = 40 (packed)
SHAPES = [(1, 5, 7), (3, 100, 96), (4, 8, 160), (40, 12, 64)]
CELLS = [("lstm", {}), ("lstm", {"peephole": True}), ("lstm", {"proj_size": "H/2"}),
         ("lstm", {"layer_norm": True}), ("gru", {}), ("gru", {"layer_norm": True}),
         ("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"})]


def _make(kind, I, H, dtype, opts):
    cls = {"lstm": _core.LSTMCell, "gru": _core.GRUCell, "rnn": _core.RNNCell}[kind]
    return cls(I, H, dtype=dtype, **{k: H // 2 if v == "H/2" else v for k, v in opts.items()})


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-11), ("float32", 2e-4)])
@pytest.mark.parametrize("kind,opts", CELLS, ids=[f"{k}-{'-'.join(o) or 'plain'}" for k, o in CELLS])
@pytest.mark.parametrize("T,I,H", SHAPES)
def test_alone_equals_twice_in_a_batch(kind, opts, T, I, H, dtype, rtol):
    rng = np.random.default_rng(T * 1000 + I + H)
    one, two = _make(kind, I, H, dtype, opts), _make(kind, I, H, dtype, opts)
    one.params[:] = rng.standard_normal(one.num_params) * (0.05 if kind == "rnn" else 0.3) / np.sqrt(H / 8)
    two.params[:] = one.params
    Hs = H // 2 if opts.get("proj_size") else H
    x = rng.standard_normal((T, 1, I)).astype(dtype)
    dout = rng.standard_normal((T, 1, Hs)).astype(dtype)
    x2, dout2 = np.concatenate([x, x], axis=1), np.concatenate([dout, dout], axis=1)
    for threads in (1, 2):
        one.threads = two.threads = threads
        one.zero_grad()
        two.zero_grad()
        got, want = one.forward(x), two.forward(x2)
        # (out (T, B, Hs), h_T (B, Hs)[, c_T (B, H)]): the first sequence of the two
        np.testing.assert_allclose(got[0], want[0][:, :1], rtol=rtol, atol=rtol * 1e-2)
        for g, w in zip(got[1:], want[1:]):
            np.testing.assert_allclose(g, w[:1], rtol=rtol, atol=rtol * 1e-2)
        gi, wi = one.backward(dout), two.backward(dout2)
        np.testing.assert_allclose(gi[0], wi[0][:, :1], rtol=rtol, atol=rtol * 1e-2)  # dx
        # each copy of the sequence adds its gradient: the batch of two has twice the weights'
        scale = np.abs(two.grads).max()
        assert scale > 0
        np.testing.assert_allclose(2 * one.grads, two.grads, rtol=rtol, atol=rtol * 1e-2 * scale)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_in_place_bits_do_not_depend_on_threads(kind):
    # products large enough (G x K >= 2^20 multiply-adds) to be split over two threads
    rng = np.random.default_rng(5)
    T, I, H = 2, 700, 1024 if kind == "rnn" else 512
    cell = _make(kind, I, H, "float32", {})
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.3 / np.sqrt(H / 8)
    x = rng.standard_normal((T, 1, I)).astype(np.float32)
    dout = rng.standard_normal((T, 1, H)).astype(np.float32)
    got = []
    for threads in (1, 2):
        cell.threads = threads
        cell.zero_grad()
        out = cell.forward(x)
        dx = cell.backward(dout)[0]
        got.append((out[0], dx, cell.grads.copy(), cell.forward(x, keep_cache=False)[0]))
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0][0], got[0][3])  # inference and training forward alike
