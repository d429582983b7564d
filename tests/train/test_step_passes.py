"""The non-recurrent parts of a training step: the optimizers update in
scratch arrays kept between steps (no temporary of the parameters' size per
operation), with the same roundings as the formulas written out; softmax
cross-entropy's gradient is the same bits as the float64 formula written out;
the gradient norm of clipping is the float64 sum of squares; the Embedding's
gradient sums each token's rows."""
import math
import tracemalloc

import numpy as np
import pytest

import rnnpy
from rnnpy import optim
from rnnpy.nn.layers import _add_rows
from rnnpy.train import losses


def _model(dtype="float32"):
    m = rnnpy.Sequential(rnnpy.Embedding(11, 6, dtype=dtype, seed=0),
                         rnnpy.LSTM(6, 40, dtype=dtype, seed=1),
                         rnnpy.Dense(40, 11, dtype=dtype, seed=2))
    return m


def _grads(model, step):
    rng = np.random.default_rng(step)
    model.flat_grads[...] = rng.standard_normal(model.flat_grads.size) * (step + 1)


# -- the update rules, written out as operations on whole arrays (PyTorch's order)
def _lerp_ref(start, end, weight):
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _adam_ref(p, g, m, v, vmax, t, lr, b1, b2, eps, wd, amsgrad, decoupled):
    if wd:
        if decoupled:
            p = p * (1.0 - lr * wd)
        else:
            g = g + wd * p
    m = _lerp_ref(m, g, 1.0 - b1)
    v = v * b2 + ((1.0 - b2) * g) * g
    step_size = lr / (1.0 - b1 ** t)
    bc2 = (1.0 - b2 ** t) ** 0.5
    if amsgrad:
        vmax = np.maximum(vmax, v)
    denom = np.sqrt(vmax if amsgrad else v) / bc2 + eps
    return p + (-step_size * m) / denom, m, v, vmax


def _sgd_ref(p, g, buf, t, lr, momentum, dampening, wd, nesterov):
    if wd:
        g = g + wd * p
    if momentum:
        buf = g.copy() if t == 1 else buf * momentum + (1.0 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def _rmsprop_ref(p, g, sq, ga, buf, lr, alpha, eps, momentum, centered, wd):
    if wd:
        g = g + wd * p
    sq = sq * alpha + ((1.0 - alpha) * g) * g
    if centered:
        ga = _lerp_ref(ga, g, 1.0 - alpha)
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = buf * momentum + g / avg
        return p - lr * buf, sq, ga, buf
    return p + (-lr * g) / avg, sq, ga, buf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw,cls", [
    ({}, optim.Adam), ({"weight_decay": 0.1, "amsgrad": True}, optim.Adam),
    ({"weight_decay": 0.1}, optim.Adam), ({"weight_decay": 0.05}, optim.AdamW),
    ({"betas": (0.3, 0.6)}, optim.Adam)])
def test_adam_same_bits_as_written_out(dtype, kw, cls):
    model = _model(dtype)
    opt = cls(model, lr=0.01, **kw)
    p = model.flat_params.copy()
    z = np.zeros_like(p)
    m, v, vmax = z, z, z
    b1, b2 = kw.get("betas", (0.9, 0.999))
    for t in range(1, 5):
        _grads(model, t)
        g = model.flat_grads.copy()
        opt.step()
        p, m, v, vmax = _adam_ref(p, g, m, v, vmax, float(t), 0.01, b1, b2, 1e-8,
                                  kw.get("weight_decay", 0.0), kw.get("amsgrad", False),
                                  cls is optim.AdamW)
        assert np.array_equal(model.flat_params, p), t
        assert np.array_equal(opt.state["exp_avg"], m) and np.array_equal(opt.state["exp_avg_sq"], v)


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True,
                                                        "weight_decay": 0.01},
                                {"momentum": 0.5, "dampening": 0.2, "weight_decay": 0.1}])
def test_sgd_same_bits_as_written_out(kw):
    model = _model()
    opt = optim.SGD(model, lr=0.05, **kw)
    p, buf = model.flat_params.copy(), None
    for t in range(1, 5):
        _grads(model, t)
        g = model.flat_grads.copy()
        opt.step()
        p, buf = _sgd_ref(p, g, buf, t, 0.05, kw.get("momentum", 0.0), kw.get("dampening", 0.0),
                          kw.get("weight_decay", 0.0), kw.get("nesterov", False))
        assert np.array_equal(model.flat_params, p), t


@pytest.mark.parametrize("kw", [{}, {"centered": True}, {"momentum": 0.9, "weight_decay": 0.01},
                                {"centered": True, "momentum": 0.5}])
def test_rmsprop_same_bits_as_written_out(kw):
    model = _model()
    opt = optim.RMSprop(model, lr=0.01, **kw)
    p = model.flat_params.copy()
    z = np.zeros_like(p)
    sq, ga, buf = z, z, z
    for t in range(1, 5):
        _grads(model, t)
        g = model.flat_grads.copy()
        opt.step()
        p, sq, ga, buf = _rmsprop_ref(p, g, sq, ga, buf, 0.01, 0.99, 1e-8, kw.get("momentum", 0.0),
                                      kw.get("centered", False), kw.get("weight_decay", 0.0))
        assert np.array_equal(model.flat_params, p), t


@pytest.mark.parametrize("make", [
    lambda m: optim.Adam(m, lr=1e-3, weight_decay=0.01, amsgrad=True),
    lambda m: optim.AdamW(m, lr=1e-3),
    lambda m: optim.SGD(m, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda m: optim.RMSprop(m, lr=1e-3, centered=True, momentum=0.9, weight_decay=0.01)])
def test_optimizer_step_allocates_no_parameter_sized_temporaries(make):
    """After the first steps, a step reuses its scratch: its peak of new
    memory stays below one array of the parameters' size (a temporary per
    operation, as `p += (-lr * m) / denom` makes, would be several)."""
    model = _model()
    opt = make(model)
    for t in range(2):
        _grads(model, t)
        opt.step()
    _grads(model, 5)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < model.flat_params.nbytes / 2, (peak, model.flat_params.nbytes)


# -- softmax cross-entropy
def _ce_ref(x, t, keep=None, cw=None, sw=None, reduction="mean"):
    """The float64 formula written out (the gradient's roundings)."""
    C = x.shape[-1]
    z = x.reshape(-1, C).astype(np.float64)
    t = t.reshape(-1)
    w = np.ones(t.shape) if keep is None else keep.reshape(-1).astype(np.float64)
    t = np.where(w > 0, t, 0)
    if cw is not None:
        w = w * cw[t]
    if sw is not None:
        w = w * np.broadcast_to(sw.reshape(sw.shape + (1,) * (x.ndim - 1 - sw.ndim)),
                                x.shape[:-1]).reshape(-1)
    rows = np.arange(t.size)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1)
    nll = np.log(s) - z[rows, t]
    count = w.sum()
    scale = 1.0 if reduction == "sum" else (1.0 / count if count > 0 else 0.0)
    grad = e / s[:, None]
    grad[rows, t] -= 1.0
    grad *= (w * scale)[:, None]
    return math.fsum(nll * w) * scale, grad.reshape(x.shape).astype(x.dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["plain", "mask", "weights", "sum", "sample", "all masked"])
def test_softmax_cross_entropy_same_gradient_bits(dtype, case):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 7, 13)) * 4).astype(dtype)
    t = rng.integers(0, 13, (5, 7))
    kw, ref = {}, {}
    if case in ("mask", "all masked"):
        keep = rng.random((5, 7)) < 0.6 if case == "mask" else np.zeros((5, 7), bool)
        t = np.where(keep, t, -100)
        kw["mask"] = ref["keep"] = keep
    if case == "weights":
        kw["weight"] = ref["cw"] = rng.random(13) + 0.5
    if case == "sum":
        kw["reduction"] = ref["reduction"] = "sum"
    if case == "sample":
        kw["sample_weight"] = ref["sw"] = rng.random(5)
    loss, grad = losses.softmax_cross_entropy(x, t, **kw)
    want_loss, want_grad = _ce_ref(x, t, **ref)
    assert grad.dtype == x.dtype and grad.shape == x.shape
    assert np.array_equal(grad, want_grad)
    assert loss == pytest.approx(want_loss, rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("mask", [False, True])
def test_softmax_cross_entropy_in_row_blocks_same_bits(mask):
    """Many classes: the rows go through the work array in several blocks
    (and a last, shorter one); the result is the one-block formula's."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 70, 1000)) * 3).astype(np.float32)   # 210 rows, blocks of 65
    t = rng.integers(0, 1000, (3, 70))
    keep = rng.random((3, 70)) < 0.7 if mask else None
    loss, grad = losses.softmax_cross_entropy(x, t, mask=keep)
    want_loss, want_grad = _ce_ref(x, t, keep=keep)
    assert np.array_equal(grad, want_grad)
    assert loss == pytest.approx(want_loss, rel=1e-14)


def test_softmax_cross_entropy_extreme_logits_finite():
    x = np.array([[1e30, -1e30, 0.0], [-3e38, 3e38, 1.0]], np.float32)
    loss, grad = losses.softmax_cross_entropy(x, np.array([1, 1]))
    assert loss == pytest.approx(1e30)   # row 0: 2e30 / 2; row 1: 0
    assert np.array_equal(grad, np.array([[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], np.float32))


# -- clipping
def test_clip_norm_is_the_float64_norm():
    model = _model()
    _grads(model, 3)
    g = model.flat_grads.astype(np.float64)
    want = math.sqrt(math.fsum(g * g))
    before = model.flat_grads.copy()
    norm = optim.clip_grad_norm(model, 1.0)
    assert norm == pytest.approx(want, rel=1e-13)
    coef = 1.0 / (want + 1e-6)
    np.testing.assert_allclose(model.flat_grads, before * coef, rtol=1e-6)
    model.flat_grads[3] = np.inf
    assert optim.clip_grad_norm(model, 1.0) == np.inf


# -- Embedding's gradient
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_gradient_sums_each_tokens_rows(padding_idx):
    rng = np.random.default_rng(0)
    emb = rnnpy.Embedding(9, 4, dtype="float64", seed=0, padding_idx=padding_idx)
    ids = rng.integers(0, 9, (6, 30))
    dy = rng.standard_normal((6, 30, 4))
    emb.forward(ids)
    emb.grads["weight"][...] = 1.0   # adds into what is there
    emb.backward(dy)
    want = np.ones((9, 4))
    for i, row in zip(ids.ravel(), dy.reshape(-1, 4)):
        if i != padding_idx:
            want[i] += row
    np.testing.assert_allclose(emb.grads["weight"], want, rtol=1e-13, atol=1e-13)
    if padding_idx is not None:
        assert np.array_equal(emb.grads["weight"][padding_idx], np.ones(4))


def test_add_rows_edge_cases():
    table = np.zeros((3, 2))
    _add_rows(table, np.zeros(0, np.intp), np.zeros((0, 2)))
    assert not table.any()
    _add_rows(table, np.array([2, 2, 2]), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert np.array_equal(table, [[0, 0], [0, 0], [9, 12]])


# -- Adam's one-pass kernel (a model with one flat buffer) against its NumPy twin
class _Named:
    """A module without flat buffers, its parameters in two arrays: the
    optimizer takes its NumPy path."""

    def __init__(self, model):
        self.flat = model.flat_params.copy()
        self.flat_g = model.flat_grads.copy()
        half = self.flat.size // 2
        self.params = {"a": self.flat[:half], "b": self.flat[half:]}
        self.grads = {"a": self.flat_g[:half], "b": self.flat_g[half:]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls,kw", [
    (optim.Adam, {}), (optim.Adam, {"weight_decay": 0.1, "amsgrad": True}),
    (optim.Adam, {"betas": (0.3, 0.6), "eps": 1e-3}), (optim.AdamW, {"weight_decay": 0.05}),
    (optim.AdamW, {"amsgrad": True, "betas": (0.2, 0.9)})])
def test_adam_kernel_same_bits_as_numpy_path(dtype, cls, kw, monkeypatch):
    model = _model(dtype)
    twin = _Named(model)
    calls = []
    real = rnnpy._core.adam_step
    monkeypatch.setattr(rnnpy._core, "adam_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    opt, opt2 = cls(model, lr=0.02, **kw), cls(twin, lr=0.02, **kw)
    for t in range(4):
        _grads(model, t)
        twin.flat_g[...] = model.flat_grads
        if t == 2:
            model.flat_grads[5] = twin.flat_g[5] = np.nan   # NaN goes through alike
        opt.step()
        opt2.step()
        assert np.array_equal(model.flat_params, twin.flat, equal_nan=True), t
        for k in opt.state:
            assert np.array_equal(opt.state[k], opt2.state[k], equal_nan=True), (t, k)
    assert len(calls) == 4 and opt.steps == opt2.steps == 4


def test_adam_subclass_update_is_used():
    class Half(optim.Adam):
        def _update(self, p, g, state):
            p -= 0.5

    model = _model()
    before = model.flat_params.copy()
    Half(model, lr=0.1).step()
    np.testing.assert_allclose(model.flat_params, before - 0.5)


def test_adam_step_kernel_refuses_bad_vectors():
    p = np.zeros(5, np.float32)
    g, m, v = np.zeros(5, np.float32), np.zeros(5, np.float32), np.zeros(5, np.float32)
    kw = dict(weight_decay=0.0, decay=1.0, beta1=0.9, beta2=0.999, eps=1e-8, step_size=1e-3,
              bc2_sqrt=0.03, decoupled=False)
    with pytest.raises(TypeError, match="^g: expected a contiguous float32"):
        rnnpy._core.adam_step(p, g.astype(np.float64), m, v, None, **kw)
    with pytest.raises(ValueError, match="^v: expected 5 values"):
        rnnpy._core.adam_step(p, g, m, np.zeros(4, np.float32), None, **kw)
    with pytest.raises(TypeError, match="^m: expected a contiguous writeable"):
        ro = np.zeros(5, np.float32)
        ro.flags.writeable = False
        rnnpy._core.adam_step(p, g, ro, v, None, **kw)
    with pytest.raises(ValueError, match="must not share memory"):
        rnnpy._core.adam_step(p, g, m, m, None, **kw)
    with pytest.raises(TypeError, match="^vmax: expected"):
        rnnpy._core.adam_step(p, g, m, v, [0.0] * 5, **kw)
    rnnpy._core.adam_step(p, p.copy(), m, v, None, **kw)   # fine: nothing shared
