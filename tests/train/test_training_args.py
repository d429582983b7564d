"""Bad arguments to the training API are refused with an exception naming the
argument, and objects built for another model (an optimizer, a schedule's
optimizer) are refused instead of training nothing."""
import numpy as np
import pytest

import rnnpy
from rnnpy import optim


def _model(seed=0):
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, seed=seed), rnnpy.LastStep(),
                            rnnpy.Dense(4, 2, seed=seed + 1))


X = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
Y = np.array([0, 1] * 4)


def _fit(m, **kw):
    args = dict(loss="cross_entropy", epochs=1, batch_size=4, progress=False)
    args.update(kw)
    if "optimizer" not in args:
        args["optimizer"] = optim.Adam(m)
    return rnnpy.fit(m, (X, Y), **args)


# -- objects of another model ---------------------------------------------------------
def test_optimizer_of_another_model_is_refused_and_nothing_changes():
    m, other = _model(), _model()
    p0, q0 = m.flat_params.copy(), other.flat_params.copy()
    with pytest.raises(ValueError, match="optimizer: built for another model"):
        _fit(m, optimizer=optim.Adam(other, lr=0.1))
    np.testing.assert_array_equal(m.flat_params, p0)
    np.testing.assert_array_equal(other.flat_params, q0)


def test_optimizer_of_a_free_layer_is_refused():
    m = _model()
    with pytest.raises(ValueError, match="optimizer: built for another model"):
        _fit(m, optimizer=optim.SGD(rnnpy.Dense(4, 2), lr=0.1))


def test_optimizer_of_a_module_inside_the_model_trains_that_module():
    m = _model()
    head = m.modules[2]
    lstm0 = m.modules[0].flat_params.copy()
    h0 = head.flat_params.copy()
    _fit(m, optimizer=optim.SGD(head, lr=0.5))
    np.testing.assert_array_equal(m.modules[0].flat_params, lstm0)
    assert not np.array_equal(head.flat_params, h0)


def test_compile_with_an_optimizer_of_another_model_is_refused():
    m, other = _model(), _model()
    with pytest.raises(ValueError, match="optimizer: built for another model"):
        m.compile(optimizer=optim.Adam(other), loss="cross_entropy")


def test_scheduler_of_another_optimizer_is_refused():
    m, other = _model(), _model()
    opt = optim.Adam(m)
    with pytest.raises(ValueError, match="scheduler: built for another optimizer"):
        _fit(m, optimizer=opt, scheduler=optim.StepLR(optim.Adam(other), 1))
    with pytest.raises(ValueError, match="scheduler: built for another optimizer"):
        _fit(m, optimizer=opt, scheduler=optim.StepLR(optim.Adam(m), 1))


def test_resume_with_an_optimizer_of_another_model_is_refused(tmp_path):
    m, other = _model(), _model()
    ck = str(tmp_path / "ck.npz")
    _fit(m, callbacks=[rnnpy.ModelCheckpoint(ck)], seed=1)
    p0 = m.flat_params.copy()
    with pytest.raises(ValueError, match="optimizer: built for another model"):
        _fit(m, optimizer=optim.Adam(other), resume=ck, epochs=2,
             callbacks=[rnnpy.ModelCheckpoint(ck)])
    np.testing.assert_array_equal(m.flat_params, p0)


# -- bad values, table-driven ---------------------------------------------------------
def _call(where, **kw):
    m = _model()
    if where == "fit":
        return _fit(m, **kw)
    if where == "evaluate":
        return rnnpy.evaluate(m, (X, Y), **{"loss": "cross_entropy", **kw})
    if where == "predict":
        return rnnpy.predict(m, X, **kw)
    if where == "gradcheck":
        d = rnnpy.Dense(3, 2, dtype="float64", seed=0)
        return rnnpy.gradcheck(d, np.ones((2, 3)), **kw)
    raise AssertionError(where)


NAN = float("nan")
BAD = [
    # (where, argument, value)
    ("fit", "callbacks", [1]), ("fit", "callbacks", 5), ("fit", "callbacks", "x"),
    ("fit", "scheduler", 5), ("fit", "scheduler", "step"), ("fit", "optimizer", None),
    ("fit", "optimizer", 5), ("fit", "optimizer", "nadam"),
    ("fit", "clip_norm", -1), ("fit", "clip_norm", NAN), ("fit", "clip_norm", "1"),
    ("fit", "clip_value", -1), ("fit", "clip_value", float("inf")), ("fit", "clip_value", True),
    ("fit", "initial_epoch", -1), ("fit", "initial_epoch", 1.5), ("fit", "initial_epoch", None),
    ("fit", "progress", "x"), ("fit", "progress", 2),
    ("fit", "stateful", "x"), ("fit", "shuffle", "yes"), ("fit", "shuffle", None),
    ("fit", "metrics", 5), ("fit", "metrics", ["nope"]), ("fit", "metrics", [5]),
    ("fit", "resume", 5), ("fit", "resume", ""),
    ("fit", "class_weight", 5), ("fit", "class_weight", {0: -1.0}),
    ("fit", "epochs", -1), ("fit", "epochs", 1.0), ("fit", "epochs", None),
    ("fit", "batch_size", 0), ("fit", "batch_size", 2.0), ("fit", "batch_size", None),
    ("fit", "seed", -1), ("fit", "seed", 1.5),
    ("fit", "verbose", 3), ("fit", "verbose", "x"),
    ("fit", "steps_per_epoch", 0), ("fit", "validation_split", 1.5),
    ("fit", "val", 5), ("fit", "loss", "nope"), ("fit", "loss", 5),
    ("evaluate", "batch_size", 0), ("evaluate", "batch_size", "x"), ("evaluate", "stateful", "x"),
    ("evaluate", "steps", 0), ("evaluate", "metrics", 5), ("evaluate", "loss", "nope"),
    ("evaluate", "verbose", 7),
    ("predict", "batch_size", 0), ("predict", "batch_size", 1.5), ("predict", "lengths", 5),
    ("predict", "lengths", [1, 2]), ("predict", "verbose", 9),
    ("gradcheck", "eps", -1.0), ("gradcheck", "eps", 0.0), ("gradcheck", "eps", NAN),
    ("gradcheck", "atol", -1.0), ("gradcheck", "rtol", "x"), ("gradcheck", "max_checks", 0),
    ("gradcheck", "seed", -1), ("gradcheck", "raise_exception", "x"),
]


@pytest.mark.parametrize("where,arg,value", BAD, ids=[f"{w}-{a}-{v!r}" for w, a, v in BAD])
def test_bad_argument_is_refused_by_name(where, arg, value):
    with pytest.raises((TypeError, ValueError, KeyError)) as err:
        _call(where, **{arg: value})
    assert f"{arg}:" in str(err.value) or f"{arg}[" in str(err.value), str(err.value)


@pytest.mark.parametrize("where", ["fit", "evaluate", "predict"])
@pytest.mark.parametrize("model", [None, 5, "m", np.zeros(3)])
def test_a_model_that_is_no_module_is_refused(where, model):
    call = {"fit": lambda: rnnpy.fit(model, (X, Y), loss="mse", optimizer="adam"),
            "evaluate": lambda: rnnpy.evaluate(model, (X, Y), loss="mse"),
            "predict": lambda: rnnpy.predict(model, X)}[where]
    with pytest.raises(TypeError, match="model: expected an rnnpy module"):
        call()


CONSTRUCTORS = [
    (rnnpy.EarlyStopping, "patience", -1), (rnnpy.EarlyStopping, "patience", 1.5),
    (rnnpy.EarlyStopping, "monitor", 5), (rnnpy.EarlyStopping, "monitor", ""),
    (rnnpy.EarlyStopping, "min_delta", NAN), (rnnpy.EarlyStopping, "min_delta", -1.0),
    (rnnpy.EarlyStopping, "mode", "up"), (rnnpy.EarlyStopping, "mode", 5),
    (rnnpy.EarlyStopping, "restore_best", "x"), (rnnpy.EarlyStopping, "restore_best_weights", 2),
    (rnnpy.ModelCheckpoint, "path", None), (rnnpy.ModelCheckpoint, "path", 5),
    (rnnpy.ModelCheckpoint, "path", ""), (rnnpy.ModelCheckpoint, "path", "a\0b"),
    (rnnpy.ModelCheckpoint, "monitor", 5), (rnnpy.ModelCheckpoint, "mode", "x"),
    (rnnpy.ModelCheckpoint, "save_best_only", "x"),
]


@pytest.mark.parametrize("cls,arg,value", CONSTRUCTORS,
                         ids=[f"{c.__name__}-{a}-{v!r}" for c, a, v in CONSTRUCTORS])
def test_bad_callback_argument_is_refused_by_name(cls, arg, value, tmp_path):
    kw = {} if cls is rnnpy.EarlyStopping else {"path": str(tmp_path / "c.npz")}
    kw[arg] = value
    with pytest.raises((TypeError, ValueError)) as err:
        cls(**kw)
    assert f"{arg}:" in str(err.value), str(err.value)


def _opt_call(cls, **kw):
    return cls(_model(), **kw)


OPTIMIZER_ARGS = [
    (optim.SGD, {"lr": -1}, "lr"), (optim.SGD, {"lr": 0.1, "momentum": 1.5}, "momentum"),
    (optim.SGD, {"lr": 0.1, "nesterov": "x"}, "nesterov"), (optim.SGD, {"lr": "x"}, "lr"),
    (optim.SGD, {"lr": 0.1, "weight_decay": NAN}, "weight_decay"),
    (optim.Adam, {"betas": (0.9, 1.0)}, "betas[1]"), (optim.Adam, {"betas": 0.9}, "betas"),
    (optim.Adam, {"eps": 0}, "eps"), (optim.Adam, {"amsgrad": 3}, "amsgrad"),
    (optim.AdamW, {"weight_decay": -1}, "weight_decay"),
    (optim.RMSprop, {"alpha": 1.0}, "alpha"), (optim.RMSprop, {"centered": "x"}, "centered"),
]


@pytest.mark.parametrize("cls,kw,name", OPTIMIZER_ARGS,
                         ids=[f"{c.__name__}-{n}" for c, _, n in OPTIMIZER_ARGS])
def test_bad_optimizer_argument_is_refused_by_name(cls, kw, name):
    with pytest.raises((TypeError, ValueError)) as err:
        _opt_call(cls, **kw)
    assert str(err.value).startswith(f"{name}:"), str(err.value)


SCHEDULE_ARGS = [
    (optim.StepLR, {"step_size": 0}, "step_size"), (optim.StepLR, {"step_size": 1, "gamma": 0}, "gamma"),
    (optim.ExponentialLR, {"gamma": NAN}, "gamma"), (optim.CosineAnnealingLR, {"T_max": 1.5}, "T_max"),
    (optim.CosineAnnealingLR, {"T_max": 3, "eta_min": -1}, "eta_min"),
    (optim.ReduceLROnPlateau, {"mode": "up"}, "mode"), (optim.ReduceLROnPlateau, {"factor": 1.0}, "factor"),
    (optim.ReduceLROnPlateau, {"patience": -1}, "patience"),
    (optim.ReduceLROnPlateau, {"threshold_mode": "x"}, "threshold_mode"),
    (optim.ReduceLROnPlateau, {"cooldown": 0.5}, "cooldown"),
]


@pytest.mark.parametrize("cls,kw,name", SCHEDULE_ARGS,
                         ids=[f"{c.__name__}-{n}" for c, _, n in SCHEDULE_ARGS])
def test_bad_schedule_argument_is_refused_by_name(cls, kw, name):
    with pytest.raises((TypeError, ValueError)) as err:
        cls(optim.SGD(_model(), lr=0.1), **kw)
    assert str(err.value).startswith(f"{name}:"), str(err.value)


@pytest.mark.parametrize("fn,name", [(optim.clip_grad_norm, "max_norm"),
                                     (optim.clip_grad_value, "clip_value")])
@pytest.mark.parametrize("value", [-1, NAN, "x", None])
def test_bad_clipping_argument_is_refused_by_name(fn, name, value):
    with pytest.raises((TypeError, ValueError)) as err:
        fn(_model(), value)
    assert str(err.value).startswith(f"{name}:"), str(err.value)


@pytest.mark.parametrize("fn", [optim.clip_grad_norm, optim.clip_grad_value])
@pytest.mark.parametrize("module", [None, 5, "m"])
def test_clipping_something_that_is_no_module_is_refused(fn, module):
    with pytest.raises(TypeError, match="module:"):
        fn(module, 1.0)


@pytest.mark.parametrize("layer", [None, 5, np.zeros(3)])
def test_gradcheck_of_something_that_is_no_module_is_refused(layer):
    with pytest.raises(TypeError, match="layer: expected an rnnpy module"):
        rnnpy.gradcheck(layer, np.ones((2, 3)))
