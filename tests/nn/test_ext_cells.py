"""The extended cells: layer norm, zoneout, recurrent dropout and the LSTM
projection, alone and together, through the public layers.

- Every option against a torch-autograd implementation of the same equations
  (tests/torch_ext.py), fed the very masks rnnpy drew: outputs, final states,
  input and initial-state gradients and every entry of ``grads``, in float64
  and float32, in training and in evaluation, over depth, directions, layouts
  and ragged lengths.
- proj_size against torch.nn.LSTM(proj_size=...) itself.
- Finite-difference gradient checks in float64 with the masks held fixed.
- What the options mean: zoneout 1 keeps the state, zero masks are the plain
  cell, recurrent dropout is one mask per sequence, evaluation is deterministic.
- Bad options and masks get errors that name them; saving and ONNX export
  know the options.

The largest relative error per option and dtype is printed at the end (run
with -s).
"""
import os

import numpy as np
import pytest
from helpers import ErrorTable, import_torch, rel_err
from torch_ext import torch_ext_stack

import rnnpy
from rnnpy import _core

TOL = {"float64": 1e-10, "float32": 1e-5}
ERRORS = ErrorTable("extended cells, largest relative error max|a-b| / max|b| against torch:")

# (cell, options): each option alone, then combinations
CONFIGS = [
    ("lstm", {"layer_norm": True}),
    ("lstm", {"zoneout": 0.3}),
    ("lstm", {"zoneout": (0.15, 0.5)}),
    ("lstm", {"recurrent_dropout": 0.4}),
    ("lstm", {"proj_size": 3}),
    ("lstm", {"peephole": True, "layer_norm": True}),
    ("lstm", {"proj_size": 3, "layer_norm": True, "peephole": True, "zoneout": (0.2, 0.3),
              "recurrent_dropout": 0.25}),
    ("gru", {"layer_norm": True}),
    ("gru", {"zoneout": 0.3}),
    ("gru", {"recurrent_dropout": 0.4}),
    ("gru", {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.3}),
    ("rnn", {"zoneout": 0.3}),
    ("rnn", {"recurrent_dropout": 0.3}),
    ("rnn_relu", {"zoneout": 0.2, "recurrent_dropout": 0.3}),
]
# (num_layers, bidirectional, time_major, lengths)
SHAPES = [(2, True, False, [5, 3, 0]), (1, False, True, None)]
T, B, I, H = 5, 3, 4, 6


def _id(cfg):
    kind, opts = cfg
    return kind + "-" + "-".join(f"{k}={v}" for k, v in opts.items())


def make(kind, opts, dtype, L=1, bidirectional=False, time_major=False, seed=0):
    cls = {"lstm": rnnpy.LSTM, "gru": rnnpy.GRU, "rnn": rnnpy.RNN, "rnn_relu": rnnpy.RNN}[kind]
    kw = dict(opts)
    if kind == "rnn_relu":
        kw["nonlinearity"] = "relu"
    m = cls(I, H, num_layers=L, bidirectional=bidirectional, dtype=dtype, seed=seed,
            time_major=time_major, **kw)
    rng = np.random.default_rng(seed + 100)
    for name, v in m.params.items():   # gains away from 1 and a bias away from 0
        if name.startswith("ln_weight_"):
            v[...] = rng.uniform(0.5, 1.5, v.shape)
        elif name.startswith("ln_bias_"):
            v[...] = rng.uniform(-0.5, 0.5, v.shape)
    return m


def run_both(kind, opts, dtype, shape, training, seed=0):
    """rnnpy forward + backward and the torch reference on the same values."""
    torch = import_torch()
    L, bidir, time_major, lengths = shape
    m = make(kind, opts, dtype, L, bidir, time_major, seed)
    m.train(training)
    D, Hs = m.num_directions, m.state_size
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((T, B, I) if time_major else (B, T, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((L * D, B, Hs))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((L * D, B, H))).astype(dtype)
    lstm = kind == "lstm"
    out, st = m.forward(x, (h0, c0) if lstm else h0, lengths)
    R = rng.standard_normal(out.shape).astype(dtype)
    S = rng.standard_normal((L * D, B, Hs)).astype(dtype)
    U = rng.standard_normal((L * D, B, H)).astype(dtype)
    m.zero_grad()
    dx, dst = m.backward(R, (S, U) if lstm else S)
    hT, cT = st if lstm else (st, None)
    dh0, dc0 = dst if lstm else (dst, None)

    def t64(a, grad=False):
        return torch.tensor(np.asarray(a, np.float64)).requires_grad_(grad)

    params = {k: t64(v, True) for k, v in m.params.items()}
    xt, h0t, c0t = t64(x, True), t64(h0, True), t64(c0, True) if lstm else None
    masks = []
    for cm in m._last["cell_masks"]:
        tm = {}
        for k, v in cm.items():
            if k != "rec_mask" and v.ndim == 3 and not time_major:
                v = v.transpose(1, 0, 2)
            tm[k] = t64(v)
        masks.append(tm)
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    valid = torch.tensor(np.arange(T)[:, None, None] < lens[None, :, None])
    xin = xt if time_major else xt.transpose(0, 1)
    o, hn, cn = torch_ext_stack(torch, "rnn" if kind == "rnn_relu" else kind, params, xin, h0t,
                                c0t, valid, L, D, masks, relu=kind == "rnn_relu")
    o = o if time_major else o.transpose(0, 1)
    loss = (o * t64(R)).sum() + (hn * t64(S)).sum() + ((cn * t64(U)).sum() if lstm else 0)
    loss.backward()
    pairs = [("out", out, o.detach()), ("hT", hT, hn.detach()), ("dx", dx, xt.grad),
             ("dh0", dh0, h0t.grad)]
    if lstm:
        pairs += [("cT", cT, cn.detach()), ("dc0", dc0, c0t.grad)]
    pairs += [(f"grad {k}", m.grads[k], params[k].grad) for k in m.params]
    return m, [(n, a, b.numpy()) for n, a, b in pairs]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=["L2-bi-batchfirst-ragged", "L1-timemajor"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_matches_torch_autograd(cfg, dtype, shape, training):
    kind, opts = cfg
    _, pairs = run_both(kind, opts, dtype, shape, training)
    tol = TOL[dtype]
    if dtype == "float32" and opts.get("layer_norm"):
        # normalising amplifies rounding by 1/std: on the two-layer LSTM case
        # torch's own float32 result is 4.8e-06 away from float64, rnnpy's 9e-06
        tol = 5e-5
    worst = 0.0
    for name, a, b in pairs:
        err = rel_err(a, b)
        worst = max(worst, err)
        assert err <= tol, f"{name}: relative error {err:.3e} > {tol:.0e}"
    ERRORS.record((_id(cfg), dtype), worst)


def test_training_masks_are_drawn_and_used():
    """In training the layer passes per-step zoneout masks and a per-sequence
    recurrent mask; evaluation passes the zoneout rate and no dropout mask."""
    m = make("lstm", {"zoneout": (0.2, 0.4), "recurrent_dropout": 0.5}, "float64")
    x = np.random.default_rng(0).standard_normal((B, T, I))
    m.forward(x)
    cm = m._last["cell_masks"][0]
    assert cm["zoneout_h"].shape == (B, T, H) and cm["zoneout_c"].shape == (B, T, H)
    assert set(np.unique(cm["zoneout_h"])) <= {0.0, 1.0}
    assert set(np.unique(cm["rec_mask"])) <= {0.0, 2.0} and cm["rec_mask"].shape == (B, H)
    m.eval()
    m.forward(x)
    cm = m._last["cell_masks"][0]
    assert set(cm) == {"zoneout_h", "zoneout_c"}
    np.testing.assert_array_equal(cm["zoneout_h"], np.full(H, 0.2))
    np.testing.assert_array_equal(cm["zoneout_c"], np.full(H, 0.4))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_projection_matches_torch_lstm(dtype):
    """proj_size against torch.nn.LSTM(proj_size=...): two bidirectional layers,
    batch-first, ragged lengths through packing, every gradient."""
    torch = import_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    P, L, lengths = 3, 2, [5, 2, 4]
    m = rnnpy.LSTM(I, H, num_layers=L, bidirectional=True, proj_size=P, dtype=dtype, seed=3)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((2 * L, B, P)).astype(dtype)
    c0 = rng.standard_normal((2 * L, B, H)).astype(dtype)
    out, (hT, cT) = m.forward(x, (h0, c0), lengths)
    assert out.shape == (B, T, 2 * P) and hT.shape == (2 * L, B, P) and cT.shape == (2 * L, B, H)
    R, S, U = (rng.standard_normal(a.shape).astype(dtype) for a in (out, hT, cT))
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(R, (S, U))

    tm = torch.nn.LSTM(I, H, num_layers=L, bidirectional=True, proj_size=P, batch_first=True,
                       dtype=torch.float64)
    tm.load_state_dict({k: torch.tensor(v.astype(np.float64)) for k, v in m.params.items()})
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    h0t = torch.tensor(h0.astype(np.float64), requires_grad=True)
    c0t = torch.tensor(c0.astype(np.float64), requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    o, (hn, cn) = tm(packed, (h0t, c0t))
    o, _ = pad_packed_sequence(o, batch_first=True, total_length=T)
    loss = (o * torch.tensor(R.astype(np.float64))).sum() \
        + (hn * torch.tensor(S.astype(np.float64))).sum() \
        + (cn * torch.tensor(U.astype(np.float64))).sum()
    loss.backward()
    named = dict(tm.named_parameters())
    pairs = [("out", out, o), ("hT", hT, hn), ("cT", cT, cn), ("dx", dx, xt.grad),
             ("dh0", dh0, h0t.grad), ("dc0", dc0, c0t.grad)]
    pairs += [(f"grad {k}", m.grads[k], named[k].grad) for k in m.params]
    assert set(m.params) == set(named)
    worst = 0.0
    for name, a, b in pairs:
        err = rel_err(a, b.detach().numpy())
        worst = max(worst, err)
        assert err <= TOL[dtype], f"{name}: relative error {err:.3e}"
    ERRORS.record(("proj_size=3 vs torch.nn.LSTM", dtype), worst)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_gradcheck_with_masks_fixed(cfg):
    """Central differences of the float64 layer in training mode, with the
    zoneout and dropout masks held fixed (rnnpy.gradcheck holds them)."""
    kind, opts = cfg
    m = make(kind, opts, "float64", L=2, bidirectional=True, seed=5)
    m.train()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, I))
    res = rnnpy.gradcheck(m, x, lengths=[4, 2], max_checks=60, seed=1)
    assert res.ok and res.checked > 100


def _cell(kind, opts, dtype="float64"):
    rng = np.random.default_rng(2)
    if kind == "lstm":
        c = _core.LSTMCell(I, H, dtype=dtype, **opts)
    elif kind == "gru":
        c = _core.GRUCell(I, H, dtype=dtype, **opts)
    else:
        c = _core.RNNCell(I, H, dtype=dtype, **opts)
    c.params[...] = rng.uniform(-0.5, 0.5, c.num_params)
    return c


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_zero_masks_are_the_plain_cell(kind):
    """zoneout 0 and a recurrent mask of ones take the extended kernel, and give
    the plain kernel's outputs and gradients."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    plain, ext = _cell(kind, {}), _cell(kind, {})
    kw = {"zoneout_h": np.zeros(H), "rec_mask": np.ones((B, H))}
    if kind == "lstm":
        kw["zoneout_c"] = np.zeros((T, B, H))
    a = plain.forward(x, lengths=[5, 1, 3])
    b = ext.forward(x, lengths=[5, 1, 3], **kw)
    for u, v in zip(a, b):
        np.testing.assert_allclose(v, u, rtol=1e-13, atol=1e-14)
    ga, gb = plain.backward(dout), ext.backward(dout)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(v, u, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ext.grads, plain.grads, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_zoneout_of_one_keeps_the_state(kind):
    """A zoneout mask of ones everywhere: every step keeps h0 (and c0)."""
    rng = np.random.default_rng(4)
    cell = _cell(kind, {})
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    if kind == "lstm":
        c0 = rng.standard_normal((B, H))
        out, hT, cT = cell.forward(x, h0, c0, zoneout_h=np.ones(H), zoneout_c=np.ones(H))
        np.testing.assert_array_equal(cT, c0)
    else:
        out, hT = cell.forward(x, h0, zoneout_h=np.ones(H))
    np.testing.assert_array_equal(hT, h0)
    np.testing.assert_array_equal(out, np.broadcast_to(h0, out.shape))


def test_recurrent_dropout_drops_units_from_the_recurrence_only():
    """A recurrent mask of zeros cuts W_hh out: each step of an RNN is then the
    one-step run of the plain cell from a zero state, whatever h_{t-1} was;
    a mask of 2s doubles h_{t-1} where it enters W_hh and nowhere else."""
    rng = np.random.default_rng(5)
    cell, ref = _cell("rnn", {}), _cell("rnn", {})
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    out, _ = cell.forward(x, h0, rec_mask=np.zeros((B, H)))
    for t in range(T):
        np.testing.assert_allclose(out[t], ref.forward(x[t:t + 1], np.zeros((B, H)))[0][0],
                                   rtol=1e-14, atol=1e-15)
    out2, _ = cell.forward(x[:1], h0, rec_mask=np.full((B, H), 2.0))
    np.testing.assert_allclose(out2, ref.forward(x[:1], 2 * h0)[0], rtol=1e-14, atol=1e-15)


def test_evaluation_is_deterministic_and_training_is_seeded():
    opts = {"zoneout": 0.3, "recurrent_dropout": 0.3, "layer_norm": True}
    x = np.random.default_rng(6).standard_normal((B, T, I)).astype(np.float32)
    a, b = make("gru", opts, "float32", seed=9), make("gru", opts, "float32", seed=9)
    ya, yb = a.forward(x)[0], b.forward(x)[0]
    np.testing.assert_array_equal(ya, yb)                 # same seed, same masks
    assert not np.array_equal(a.forward(x)[0], ya)        # fresh masks each call
    a.eval()
    e1, e2 = a.forward(x)[0], a.forward(x)[0]
    np.testing.assert_array_equal(e1, e2)


@pytest.mark.parametrize("threads", [2])
def test_threads_do_not_change_results(threads):
    opts = {"proj_size": 4, "layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.2}
    rng = np.random.default_rng(8)
    x = rng.standard_normal((32, 20, 16)).astype(np.float32)
    a = rnnpy.LSTM(16, 48, seed=1, **opts)
    b = rnnpy.LSTM(16, 48, seed=1, threads=threads, **opts)
    ya, yb = a.forward(x)[0], b.forward(x)[0]
    np.testing.assert_array_equal(ya, yb)
    g = rng.standard_normal(ya.shape).astype(np.float32)
    np.testing.assert_array_equal(a.backward(g)[0], b.backward(g)[0])
    np.testing.assert_array_equal(a.flat_grads, b.flat_grads)


def test_save_and_load_keep_the_options(tmp_path):
    m = make("lstm", {"proj_size": 3, "layer_norm": True, "zoneout": (0.1, 0.2),
                      "recurrent_dropout": 0.3, "peephole": True}, "float32", L=2,
             bidirectional=True)
    path = tmp_path / "m.npz"
    m.save(path)
    n = rnnpy.load(path)
    assert n.get_config() == m.get_config()
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    m.eval()
    n.eval()
    np.testing.assert_array_equal(n.forward(x)[0], m.forward(x)[0])


@pytest.mark.parametrize("cls, kw, exc, match", [
    (rnnpy.LSTM, {"zoneout": 1.0}, ValueError, "zoneout"),
    (rnnpy.LSTM, {"zoneout": -0.1}, ValueError, "zoneout"),
    (rnnpy.LSTM, {"zoneout": (0.1,)}, ValueError, "zoneout"),
    (rnnpy.LSTM, {"zoneout": (0.1, 1.5)}, ValueError, r"zoneout\[1\]"),
    (rnnpy.GRU, {"zoneout": (0.1, 0.2)}, TypeError, "zoneout"),
    (rnnpy.RNN, {"zoneout": "0.1"}, TypeError, "zoneout"),
    (rnnpy.GRU, {"recurrent_dropout": 1.0}, ValueError, "recurrent_dropout"),
    (rnnpy.LSTM, {"proj_size": H}, ValueError, "proj_size"),
    (rnnpy.LSTM, {"proj_size": -1}, ValueError, "proj_size"),
    (rnnpy.LSTM, {"proj_size": True}, TypeError, "proj_size"),
    (rnnpy.LSTM, {"proj_size": 2.0}, TypeError, "proj_size"),
    (rnnpy.LSTM, {"layer_norm": "yes"}, TypeError, "layer_norm"),
    (rnnpy.GRU, {"layer_norm": 1}, TypeError, "layer_norm"),
    (rnnpy.RNN, {"layer_norm": True}, TypeError, "layer_norm"),
])
def test_bad_options_are_named(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(I, H, **kw)


@pytest.mark.parametrize("kind, kw, exc, match", [
    ("lstm", {"rec_mask": np.ones((B, H + 1))}, ValueError, r"rec_mask: expected shape \(B, H\)"),
    ("gru", {"rec_mask": np.full((B, H), np.nan)}, ValueError, "rec_mask: expected finite"),
    ("rnn", {"zoneout_h": np.full(H, 2.0)}, ValueError, r"zoneout_h: expected values in \[0, 1\]"),
    ("rnn", {"zoneout_h": np.full(H, -0.5)}, ValueError, r"zoneout_h: expected values in \[0, 1\]"),
    ("gru", {"zoneout_h": np.zeros((T, B, H + 1))}, ValueError, "zoneout_h: expected shape"),
    ("lstm", {"zoneout_c": np.zeros(H - 1)}, ValueError, "zoneout_c: expected shape"),
    ("lstm", {"zoneout_c": "x"}, TypeError, "zoneout_c"),
    ("gru", {"zoneout_c": np.zeros(H)}, TypeError, "zoneout_c"),
])
def test_bad_masks_are_named(kind, kw, exc, match):
    cell = _cell(kind, {})
    x = np.zeros((T, B, I))
    with pytest.raises(exc, match=match):
        cell.forward(x, **kw)
    assert not cell.has_cache


def test_projected_cell_checks_state_shapes():
    cell = _cell("lstm", {"proj_size": 2})
    x = np.zeros((T, B, I))
    with pytest.raises(ValueError, match=r"h0: expected shape \(B, P\) = \(3, 2\)"):
        cell.forward(x, np.zeros((B, H)))
    out, hT, cT = cell.forward(x)
    assert out.shape == (T, B, 2) and hT.shape == (B, 2) and cT.shape == (B, H)
    with pytest.raises(ValueError, match=r"dout: expected shape \(T, B, P\)"):
        cell.backward(np.zeros((T, B, H)))
    with pytest.raises(ValueError, match=r"proj_size: expected an int in \[0, hidden_size\)"):
        _core.LSTMCell(I, H, proj_size=H)


def test_onnx_export_knows_the_options(tmp_path):
    if os.environ.get("RNNPY_SANITIZED"):
        pytest.skip("onnxruntime is not loaded into the sanitized build")
    pytest.importorskip("onnx")
    for kw in ({"proj_size": 2}, {"layer_norm": True}, {"zoneout": 0.1}):
        with pytest.raises(ValueError, match="cannot export to ONNX: option " + next(iter(kw))):
            rnnpy.export_onnx(rnnpy.LSTM(I, H, **kw), tmp_path / "m.onnx")
    # recurrent dropout does nothing in evaluation, so the plain graph is exact
    ort = pytest.importorskip("onnxruntime")
    m = rnnpy.GRU(I, H, recurrent_dropout=0.5, seed=0)
    m.eval()
    path = tmp_path / "g.onnx"
    rnnpy.export_onnx(m, path)
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lengths = np.arange(B) % (T + 1)
    got = sess.run(None, {"x": x, "lengths": lengths})[0]
    np.testing.assert_allclose(got, m.forward(x, lengths=lengths)[0], rtol=1e-5, atol=1e-6)


def test_training_with_every_option_learns():
    """fit() on the course's easy temporal-order task with a projected,
    layer-normalised LSTM under zoneout and recurrent dropout: it learns the
    task (evaluation mode, zoneout's expectation), like the plain cell does."""
    from rnnpy.demos.temporal_order import TemporalOrder
    from rnnpy.optim import Adam
    from rnnpy.training import evaluate, fit

    gen = TemporalOrder("easy", 32, seed=0)
    x_test, y_test, _ = TemporalOrder("easy", 32, seed=1000).dataset(5)
    model = rnnpy.Sequential(
        rnnpy.LSTM(8, 16, proj_size=8, layer_norm=True, zoneout=(0.05, 0.3),
                   recurrent_dropout=0.1, seed=0),
        rnnpy.LastStep(), rnnpy.Dense(8, 4, seed=0))

    def batches():
        for _ in range(20):
            x, y, _ = gen.batch()
            yield x, y

    fit(model, batches, loss="softmax_cross_entropy", optimizer=Adam(model, lr=1e-2), epochs=8,
        progress=False)
    assert evaluate(model, (x_test, y_test), loss="softmax_cross_entropy")["accuracy"] == 1.0
