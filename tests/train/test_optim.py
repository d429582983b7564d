"""rnnpy.optim against torch.optim, step for step.

Each optimizer runs 20 steps on a small LSTM model (one flat float64 buffer)
with random gradients written into ``model.flat_grads``; torch gets the same
values as leaf tensors with the same gradients. Parameters must agree to
max|a - b| <= 1e-12 * max(1, max|b|) after every step. Clipping is checked
against torch.nn.utils, schedules against torch.optim.lr_scheduler (the same
float arithmetic, so the sequences must be equal), and a state_dict round trip
(through np.savez, without pickle) must continue exactly like an uninterrupted
run. The largest difference seen per case is printed when the module ends.
"""
import io
import math
import warnings

import numpy as np
import pytest
from helpers import ErrorTable

import rnnpy
from rnnpy import optim

STEPS = 20
# case -> largest max|a - b| / max(1, max|b|) over all steps
DIFFS = ErrorTable("largest parameter difference against torch (max|a-b| / max(1, max|b|)):")


def make_model(dtype="float64"):
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, dtype=dtype, seed=0), rnnpy.LastStep(dtype=dtype),
                            rnnpy.Dense(4, 2, dtype=dtype, seed=1))


def random_grads(n, steps, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    # varied scales so that eps, weight decay and the square averages all matter
    scale = rng.uniform(0.01, 2.0, size=n)
    return [(rng.standard_normal(n) * scale).astype(dtype) for _ in range(steps)]


def torch_params(model, torch):
    return [torch.tensor(p.copy(), requires_grad=True) for p in model.params.values()]


def set_torch_grads(tparams, flat, torch):
    offset = 0
    for t in tparams:
        n = t.numel()
        t.grad = torch.tensor(flat[offset:offset + n].reshape(t.shape).copy())
        offset += n


def flat_torch(tparams):
    return np.concatenate([t.detach().numpy().ravel() for t in tparams])


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


OPTIM_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.5))),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True, betas=(0.7, 0.95))),
]


def _case_id(case):
    name, kw = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"


@pytest.mark.parametrize("case", OPTIM_CASES, ids=[_case_id(c) for c in OPTIM_CASES])
def test_optimizer_matches_torch(case):
    torch = pytest.importorskip("torch")
    name, kw = case
    model = make_model()
    start = model.flat_params.copy()
    tparams = torch_params(model, torch)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    worst = 0.0
    for g in random_grads(model.flat_params.size, STEPS, seed=len(kw)):
        model.flat_grads[...] = g
        set_torch_grads(tparams, g, torch)
        opt.step()
        topt.step()
        ref = flat_torch(tparams)
        worst = max(worst, rel_diff(model.flat_params, ref))
        assert worst <= 1e-12, f"step {opt.steps}: {worst:.3e}"
    DIFFS.record(_case_id(case), worst)
    assert opt.steps == STEPS
    # the run really moved the parameters, and the gradients were left alone
    assert np.max(np.abs(model.flat_params - start)) > 1e-3
    np.testing.assert_array_equal(model.flat_grads, g)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                     ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
                                     ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("AdamW", dict(lr=0.01))])
def test_optimizer_float32_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    model = make_model("float32")
    tparams = torch_params(model, torch)
    opt = getattr(optim, name)(model, **kw)
    topt = getattr(torch.optim, name)(tparams, **kw)
    worst = 0.0
    for g in random_grads(model.flat_params.size, STEPS, seed=3, dtype=np.float32):
        model.flat_grads[...] = g
        set_torch_grads(tparams, g, torch)
        opt.step()
        topt.step()
        assert model.flat_params.dtype == np.float32
        for k in opt.state:
            assert opt.state[k].dtype == np.float32
        worst = max(worst, rel_diff(model.flat_params, flat_torch(tparams)))
    DIFFS.record(f"float32 {name}({kw})", worst)
    assert worst <= 1e-6


class DictModule:
    """A module with only params/grads dicts (no flat buffers), non-contiguous included."""

    def __init__(self, flat):
        self._base = flat.reshape(2, -1).copy()
        self.params = {"a": self._base[0], "b": self._base[1, ::2]}
        self._gbase = np.zeros_like(self._base)
        self.grads = {"a": self._gbase[0], "b": self._gbase[1, ::2]}

    def set_grads(self, g):
        n = self.params["a"].size
        self.grads["a"][...] = g[:n]
        self.grads["b"][...] = g[n:]

    def values(self):
        return np.concatenate([self.params["a"], self.params["b"]])


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("RMSprop", dict(lr=0.01, centered=True, momentum=0.3)),
                                     ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1))])
def test_dict_module_same_as_flat(name, kw):
    flat = np.random.default_rng(5).standard_normal(40)
    dm = DictModule(flat)
    n = dm.params["a"].size + dm.params["b"].size
    vec = type("Vec", (), {})()
    vec.flat_params = dm.values().copy()
    vec.flat_grads = np.zeros(n)
    opt_d = getattr(optim, name)(dm, **kw)
    opt_v = getattr(optim, name)(vec, **kw)
    for g in random_grads(n, 10, seed=9):
        dm.set_grads(g)
        vec.flat_grads[...] = g
        opt_d.step()
        opt_v.step()
    np.testing.assert_array_equal(dm.values(), vec.flat_params)
    assert not np.array_equal(dm.values(), flat[:n])
    opt_d.zero_grad()
    assert not dm.grads["a"].any() and not dm.grads["b"].any()


def test_zero_grad_and_lr_attribute():
    model = make_model()
    model.flat_grads[...] = 1.0
    opt = optim.SGD(model, lr=0.5)
    opt.zero_grad()
    assert not model.flat_grads.any()
    before = model.flat_params.copy()
    model.flat_grads[...] = 2.0
    opt.lr = 0.25
    opt.step()
    np.testing.assert_allclose(model.flat_params, before - 0.5, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0


def test_optimizer_follows_rebinding_into_sequential():
    # an optimizer built on a layer keeps working after the layer moves into a Sequential
    dense = rnnpy.Dense(3, 2, dtype="float64", seed=0)
    opt = optim.SGD(dense, lr=1.0)
    rnnpy.Sequential(dense)
    before = dense.params["weight"].copy()
    dense.grads["weight"][...] = 1.0
    opt.step()
    np.testing.assert_array_equal(dense.params["weight"], before - 1.0)


# -- clipping --------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e6])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    model = make_model()
    g = random_grads(model.flat_params.size, 1, seed=2)[0]
    model.flat_grads[...] = g
    tparams = torch_params(model, torch)
    set_torch_grads(tparams, g, torch)
    norm = optim.clip_grad_norm(model, max_norm)
    tnorm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
    assert abs(norm - tnorm) <= 1e-13 * tnorm
    assert abs(norm - np.linalg.norm(g)) <= 1e-13 * norm
    tg = np.concatenate([t.grad.numpy().ravel() for t in tparams])
    assert rel_diff(model.flat_grads, tg) <= 1e-14
    DIFFS.record(f"clip_grad_norm(max_norm={max_norm})", rel_diff(model.flat_grads, tg))
    expected = min(np.linalg.norm(g), max_norm)
    assert abs(np.linalg.norm(model.flat_grads) - expected) <= 1e-5 * expected


def test_clip_grad_norm_nonfinite_like_torch():
    torch = pytest.importorskip("torch")
    for bad in (np.inf, np.nan):
        model = make_model()
        g = random_grads(model.flat_params.size, 1, seed=4)[0]
        g[7] = bad
        model.flat_grads[...] = g
        tparams = torch_params(model, torch)
        set_torch_grads(tparams, g, torch)
        norm = optim.clip_grad_norm(model, 1.0)
        tnorm = float(torch.nn.utils.clip_grad_norm_(tparams, 1.0))
        assert (math.isnan(norm) and math.isnan(tnorm)) or norm == tnorm
        tg = np.concatenate([t.grad.numpy().ravel() for t in tparams])
        np.testing.assert_array_equal(model.flat_grads, tg)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    model = make_model()
    g = random_grads(model.flat_params.size, 1, seed=6)[0]
    g[3] = np.nan
    model.flat_grads[...] = g
    tparams = torch_params(model, torch)
    set_torch_grads(tparams, g, torch)
    optim.clip_grad_value(model, 0.3)
    torch.nn.utils.clip_grad_value_(tparams, 0.3)
    tg = np.concatenate([t.grad.numpy().ravel() for t in tparams])
    np.testing.assert_array_equal(model.flat_grads, tg)
    assert np.nanmax(np.abs(model.flat_grads)) == 0.3


def test_clip_without_torch():
    model = make_model()
    model.flat_grads[...] = 0.0
    model.flat_grads[:2] = [3.0, 4.0]
    assert optim.clip_grad_norm(model, 1.0) == 5.0
    np.testing.assert_allclose(model.flat_grads[:2], [0.6, 0.8], rtol=1e-6)
    optim.clip_grad_value(model, 0.7)
    np.testing.assert_allclose(model.flat_grads[:2], [0.6, 0.7], rtol=1e-6)


# -- schedules ------------------------------------------------------------------------------

def torch_lrs(torch, make, epochs, metrics=None, lr=0.1):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = [opt.param_groups[0]["lr"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in range(epochs):
            opt.step()
            sched.step(metrics[e]) if metrics is not None else sched.step()
            out.append(opt.param_groups[0]["lr"])
    return out


def our_lrs(make, epochs, metrics=None, lr=0.1):
    opt = optim.SGD(make_model(), lr=lr)
    sched = make(opt)
    out = [opt.lr]
    for e in range(epochs):
        sched.step(metrics[e]) if metrics is not None else sched.step()
        out.append(opt.lr)
        assert sched.get_last_lr() == opt.lr
    return out


PLATEAU = [5.0, 4.0, 4.0, 4.0, 3.9999, 4.1, 4.2, 4.3, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0,
           1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]

SCHEDULES = [
    ("StepLR", dict(step_size=3), None),
    ("StepLR", dict(step_size=4, gamma=0.7), None),
    ("ExponentialLR", dict(gamma=0.9), None),
    ("CosineAnnealingLR", dict(T_max=7), None),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.01), None),
    ("ReduceLROnPlateau", dict(patience=2), PLATEAU),
    ("ReduceLROnPlateau", dict(patience=1, factor=0.5, cooldown=2, min_lr=0.002), PLATEAU),
    ("ReduceLROnPlateau", dict(patience=0, threshold=0.2, threshold_mode="abs"), PLATEAU),
    ("ReduceLROnPlateau", dict(mode="max", patience=1, factor=0.3), PLATEAU),
    ("ReduceLROnPlateau", dict(mode="max", patience=1, threshold=0.01, threshold_mode="abs",
                               eps=1e-3, min_lr=0.05), [-m for m in PLATEAU]),
]


@pytest.mark.parametrize("name,kw,metrics", SCHEDULES,
                         ids=[f"{n}{sorted(k.items())}" for n, k, _ in SCHEDULES])
def test_schedule_matches_torch(name, kw, metrics):
    torch = pytest.importorskip("torch")
    tmake = lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kw)  # noqa: E731
    make = lambda o: getattr(optim, name)(o, **kw)  # noqa: E731
    want = torch_lrs(torch, tmake, 30, metrics)
    got = our_lrs(make, 30, metrics)
    assert got == want
    assert len(set(got)) >= 2  # the schedule really changed the rate


def test_schedule_values_without_torch():
    assert our_lrs(lambda o: optim.StepLR(o, 2, 0.5), 5, lr=1.0) == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cos = our_lrs(lambda o: optim.CosineAnnealingLR(o, T_max=4), 8, lr=1.0)
    closed = [(1 + math.cos(math.pi * e / 4)) / 2 for e in range(9)]
    np.testing.assert_allclose(cos, closed, atol=1e-15)
    plateau = our_lrs(lambda o: optim.ReduceLROnPlateau(o, patience=1), 4, [1, 1, 1, 1], lr=1.0)
    assert plateau == [1.0, 1.0, 1.0, 0.1, 0.1]


# -- state dicts --------------------------------------------------------------------------

def savez_roundtrip(state):
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                     ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
                                     ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_state_dict_resume_is_exact(name, kw):
    grads = random_grads(make_model().flat_params.size, STEPS, seed=11)

    def run(model, opt, sched, gs):
        for g in gs:
            model.flat_grads[...] = g
            opt.step()
            sched.step()

    model = make_model()
    opt = getattr(optim, name)(model, **kw)
    sched = optim.StepLR(opt, step_size=3, gamma=0.5)
    run(model, opt, sched, grads)

    model2 = make_model()
    opt2 = getattr(optim, name)(model2, **kw)
    sched2 = optim.StepLR(opt2, step_size=3, gamma=0.5)
    run(model2, opt2, sched2, grads[:5])
    saved = (model2.state_dict(), savez_roundtrip(opt2.state_dict()),
             savez_roundtrip(sched2.state_dict()))

    model3 = make_model()
    model3.load_state_dict(saved[0])
    opt3 = getattr(optim, name)(model3, lr=123.0)  # hyperparameters come from the state
    sched3 = optim.StepLR(opt3, step_size=3, gamma=0.5)
    opt3.load_state_dict(saved[1])
    sched3.load_state_dict(saved[2])
    assert opt3.steps == 5 and opt3.lr == opt2.lr
    run(model3, opt3, sched3, grads[5:])
    np.testing.assert_array_equal(model3.flat_params, model.flat_params)
    assert opt3.lr == opt.lr
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(opt3.state_dict()[k], v)


def test_plateau_state_dict_roundtrip():
    opt = optim.SGD(make_model(), lr=1.0)
    s = optim.ReduceLROnPlateau(opt, patience=1, cooldown=1)
    for m in [3, 2, 2, 2]:
        s.step(m)
    opt2 = optim.SGD(make_model(), lr=opt.lr)
    s2 = optim.ReduceLROnPlateau(opt2, patience=1, cooldown=1)
    s2.load_state_dict(savez_roundtrip(s.state_dict()))
    for m in [2, 2, 2, 1, 1, 1, 1]:
        s.step(m)
        s2.step(m)
        assert (opt.lr, s.best, s.num_bad_epochs) == (opt2.lr, s2.best, s2.num_bad_epochs)
    assert opt.lr < 0.1


def test_load_state_dict_rejects_bad_state():
    model = make_model()
    opt = optim.Adam(model, lr=0.01)
    good = opt.state_dict()
    with pytest.raises(KeyError, match="exp_avg_sq"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "exp_avg_sq"})
    with pytest.raises(KeyError, match="max_exp_avg_sq"):
        opt.load_state_dict(dict(good, amsgrad=True))  # amsgrad needs its state vector
    with pytest.raises(ValueError, match=r"state\['exp_avg'\].*\(154,\)"):
        opt.load_state_dict(dict(good, exp_avg=np.zeros(5)))
    with pytest.raises(ValueError, match="betas"):
        opt.load_state_dict(dict(good, beta1=1.5, lr=7.0))
    assert opt.lr == 0.01  # nothing changed
    with pytest.raises(KeyError, match="momentum_buffer"):
        optim.SGD(model, lr=0.1).load_state_dict({"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                                  "weight_decay": 0.0, "nesterov": False,
                                                  "step": 1})
    sched = optim.StepLR(opt, 2)
    with pytest.raises(KeyError, match="last_epoch"):
        sched.load_state_dict({"base_lr": 0.1, "last_lr": 0.1})


# -- bad hyperparameters ----------------------------------------------------------------

BAD = [
    (optim.SGD, dict(lr=-0.1), ValueError, "lr"),
    (optim.SGD, dict(lr=float("nan")), ValueError, "lr"),
    (optim.SGD, dict(lr="0.1"), TypeError, "lr"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (optim.SGD, dict(lr=0.1, momentum=1.0), ValueError, "momentum"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (optim.SGD, dict(lr=0.1, dampening=2.0), ValueError, "dampening"),
    (optim.SGD, dict(lr=0.1, nesterov=True), ValueError, "nesterov"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, dampening=0.1), ValueError, "nesterov"),
    (optim.SGD, dict(lr=0.1, nesterov="yes"), TypeError, "nesterov"),
    (optim.RMSprop, dict(alpha=1.0), ValueError, "alpha"),
    (optim.RMSprop, dict(alpha=-0.1), ValueError, "alpha"),
    (optim.RMSprop, dict(eps=0.0), ValueError, "eps"),
    (optim.RMSprop, dict(momentum=-1), ValueError, "momentum"),
    (optim.RMSprop, dict(centered=2), TypeError, "centered"),
    (optim.Adam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (optim.Adam, dict(betas=0.9), TypeError, "betas"),
    (optim.Adam, dict(eps=-1e-8), ValueError, "eps"),
    (optim.Adam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (optim.AdamW, dict(lr=-1), ValueError, "lr"),
    (optim.AdamW, dict(amsgrad=None), TypeError, "amsgrad"),
]


@pytest.mark.parametrize("cls,kw,exc,match", BAD,
                         ids=[f"{c.__name__}{sorted(k.items())}" for c, k, _, _ in BAD])
def test_bad_hyperparameters(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(make_model(), **kw)


def test_bad_module_and_clip_arguments():
    with pytest.raises(TypeError, match="module"):
        optim.SGD(object(), lr=0.1)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(make_model(), -1.0)
    with pytest.raises(ValueError, match="clip_value"):
        optim.clip_grad_value(make_model(), -1.0)


BAD_SCHED = [
    (optim.StepLR, dict(step_size=0), ValueError, "step_size"),
    (optim.StepLR, dict(step_size=1.5), TypeError, "step_size"),
    (optim.StepLR, dict(step_size=2, gamma=0.0), ValueError, "gamma"),
    (optim.ExponentialLR, dict(gamma=-1.0), ValueError, "gamma"),
    (optim.CosineAnnealingLR, dict(T_max=0), ValueError, "T_max"),
    (optim.CosineAnnealingLR, dict(T_max=3, eta_min=-1.0), ValueError, "eta_min"),
    (optim.ReduceLROnPlateau, dict(mode="up"), ValueError, "mode"),
    (optim.ReduceLROnPlateau, dict(factor=1.0), ValueError, "factor"),
    (optim.ReduceLROnPlateau, dict(patience=-1), ValueError, "patience"),
    (optim.ReduceLROnPlateau, dict(threshold=-0.1), ValueError, "threshold"),
    (optim.ReduceLROnPlateau, dict(threshold_mode="x"), ValueError, "threshold_mode"),
]


@pytest.mark.parametrize("cls,kw,exc,match", BAD_SCHED,
                         ids=[f"{c.__name__}{sorted(k.items())}" for c, k, _, _ in BAD_SCHED])
def test_bad_schedule_arguments(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(optim.SGD(make_model(), lr=0.1), **kw)


def test_schedule_needs_an_optimizer_and_plateau_a_number():
    with pytest.raises(TypeError, match="optimizer"):
        optim.StepLR(object(), 2)
    sched = optim.ReduceLROnPlateau(optim.SGD(make_model(), lr=0.1))
    with pytest.raises(TypeError, match="metric"):
        sched.step("low")
