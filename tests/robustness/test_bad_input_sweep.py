"""A sweep of hostile values through every argument of the public Python
entries that tests/robustness/test_bad_input.py does not reach: losses, Dense,
Embedding, LastStep, Dropout, the data helpers, optimizers, clipping, fit,
predict, load and gradcheck.

Each (entry, argument, value) call either
- raises TypeError, ValueError, KeyError or FileNotFoundError whose message
  starts with the argument's name (or the other argument of a mismatched
  pair) and says what was expected, or
- is accepted, and then gives the result of the same call with an ordinary
  value of the same meaning (CANONICAL below: None mask = all ones, a tuple =
  its array, 2**70 = any size larger than the data, ...) or passes the
  entry's own check (ORACLES: Dense's affine map, dropout's {0, x/(1-p)}, a
  split that partitions its input). An accepted value with no stated meaning
  fails, so a newly accepted value is looked at.
KNOWN_DEFECTS lists refusals whose message does not yet name the argument
and accepted values with a wrong result; they are strict xfails, so each
turns into a failure once it is fixed.
"""
import copy
import re

import numpy as np
import pytest

import rnnpy
from rnnpy import data, losses, optim

HOSTILE = {
    "None": None, "str": "abc", "object": object(), "complex": np.array([1j, 2j]),
    "empty": np.zeros(0), "empty2d": np.zeros((0, 3)), "float16": np.ones((2, 3), np.float16),
    "nan": np.full((2, 3), np.nan), "-1": -1, "0": 0, "2**70": 2 ** 70, "float nan": float("nan"),
    "float inf": float("inf"), "ragged": [[1, 2], [3]], "dict": {"a": 1},
    "strings": np.array(["x", "y"]), "True": True, "objects": np.ones((2, 3), object),
    "rank4": np.ones((2, 3, 4, 5)), "1.5": 1.5, "transposed": np.ones((3, 2)).T, "tuple": (1, 2),
}
ALLOWED = (TypeError, ValueError, KeyError, FileNotFoundError)


EMBEDDING = rnnpy.Embedding(5, 3)


def _entries():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5, 3))
    tgt = rng.integers(0, 3, (4, 5))
    mask = np.ones((4, 5), bool)
    dense = rnnpy.Dense(3, 2, dtype="float64")
    dense.flat_grads[...] = rng.standard_normal(dense.flat_grads.shape)   # for clipping
    model = rnnpy.Sequential(rnnpy.LSTM(3, 4, dtype="float64"), rnnpy.LastStep(dtype="float64"),
                             rnnpy.Dense(4, 2, dtype="float64"))
    xs, ys = rng.standard_normal((8, 5, 3)), rng.integers(0, 2, 8)

    def fit(train, epochs, batch_size, loss):
        return rnnpy.fit(model, train, loss=loss, optimizer=optim.SGD(model, lr=0.1),
                         epochs=epochs, batch_size=batch_size, progress=False)

    return {
        "softmax_cross_entropy": (losses.softmax_cross_entropy, dict(logits=logits, targets=tgt, mask=mask)),
        "binary_cross_entropy_with_logits": (losses.binary_cross_entropy_with_logits,
                                             dict(logits=logits, targets=(logits > 0) * 1.0, mask=None)),
        "mse": (losses.mse, dict(pred=logits, targets=logits * 0, mask=None)),
        "accuracy": (losses.accuracy, dict(logits=logits, targets=tgt, mask=mask)),
        "Dense.forward": (dense.forward, dict(x=np.ones((2, 3)))),
        "Embedding.forward": (EMBEDDING.forward, dict(ids=np.array([[1, 2]]))),
        "LastStep.forward": (rnnpy.LastStep().forward, dict(x=np.ones((2, 3, 4), np.float32), lengths=[1, 3])),
        "Dropout.forward": (rnnpy.Dropout(0.5).forward, dict(x=np.ones((2, 3), np.float32))),
        "batchify": (data.batchify, dict(sequence=np.arange(20), batch_size=4)),
        "windows": (data.windows, dict(data=np.arange(20).reshape(4, 5), seq_len=2)),
        "sequence_batches": (data.sequence_batches, dict(sequence=np.arange(40), batch_size=4, seq_len=3)),
        "pad_sequences": (data.pad_sequences, dict(sequences=[[1, 2], [3]], maxlen=None)),
        "one_hot": (data.one_hot, dict(indices=np.array([0, 2]), num_classes=3)),
        "train_val_split": (lambda a, val_fraction: data.train_val_split(a, val_fraction=val_fraction),
                            dict(a=np.arange(10), val_fraction=0.2)),
        "SGD": (lambda module, lr, momentum: optim.SGD(module, lr=lr, momentum=momentum),
                dict(module=dense, lr=0.1, momentum=0.9)),
        "Adam": (lambda module, lr, betas: optim.Adam(module, lr=lr, betas=betas),
                 dict(module=dense, lr=0.1, betas=(0.9, 0.99))),
        "clip_grad_norm": (optim.clip_grad_norm, dict(module=dense, max_norm=1.0)),
        "fit": (fit, dict(train=(xs, ys), epochs=1, batch_size=4, loss="cross_entropy")),
        "predict": (lambda x, batch_size: rnnpy.predict(model, x, batch_size=batch_size),
                    dict(x=xs, batch_size=4)),
        "load": (rnnpy.load, dict(path="/nonexistent/m.npz")),
        "gradcheck": (lambda x: rnnpy.gradcheck(dense, x), dict(x=np.ones((2, 3)))),
    }, model, dense


# MODEL: the model fit trains and predict runs; DENSE: the module of the optimizers and clipping
ENTRIES, MODEL, DENSE = _entries()
CASES = [(e, a, h) for e, (_, base) in ENTRIES.items() for a in base for h in HOSTILE
         if not (e == "fit" and a == "epochs" and h == "2**70")]   # a valid, endless run


# the other argument a refusal may name: the side of a mismatch that is checked
# (train_val_split's arrays are its *arrays)
PARTNER = {("binary_cross_entropy_with_logits", "logits"): "targets",
           ("softmax_cross_entropy", "logits"): "targets", ("accuracy", "logits"): "targets",
           ("mse", "pred"): "targets", ("fit", "train"): "x|y", ("train_val_split", "a"): "arrays",
           ("batchify", "batch_size"): "sequence", ("sequence_batches", "batch_size"): "sequence"}
# none at present: ragged lists, integers beyond int64, sizes no array can have,
# an empty batch and a scalar through Dropout are all handled (rnnpy._validate.array,
# new_array, as_float_array)
KNOWN_DEFECTS: dict = {}

LOGITS_SHAPE, MASK_SHAPE = (4, 5, 3), (4, 5)
# (entry, argument, value name) -> an ordinary value meaning the same
CANONICAL = {
    ("softmax_cross_entropy", "mask", "None"): np.ones(MASK_SHAPE, bool),
    ("accuracy", "mask", "None"): np.ones(MASK_SHAPE, bool),
    **{(e, "mask", h): v for e in ("binary_cross_entropy_with_logits", "mse")
       for h, v in [("None", np.ones(LOGITS_SHAPE)), ("True", np.ones(LOGITS_SHAPE)),
                    ("0", np.zeros(LOGITS_SHAPE))]},
    ("LastStep.forward", "lengths", "None"): np.array([3, 3]),
    ("LastStep.forward", "lengths", "tuple"): np.array([1, 2]),
    ("Embedding.forward", "ids", "tuple"): np.array([1, 2]),
    ("one_hot", "indices", "tuple"): np.array([1, 2]),
    ("windows", "seq_len", "2**70"): 10 ** 6,
    ("sequence_batches", "seq_len", "2**70"): 10 ** 6,
    ("pad_sequences", "maxlen", "None"): None,
    ("train_val_split", "val_fraction", "0"): 0.0,
    **{(e, "lr", h): v for e in ("SGD", "Adam") for h, v in [("0", 0.0), ("2**70", 2.0 ** 70),
                                                             ("1.5", 1.5)]},
    ("SGD", "momentum", "0"): 0.0,
    **{("clip_grad_norm", "max_norm", h): v for h, v in [("0", 0.0), ("2**70", 2.0 ** 70),
                                                         ("1.5", 1.5)]},
    ("fit", "epochs", "0"): 0,
    ("fit", "batch_size", "2**70"): 8,
    ("predict", "batch_size", "None"): 8,
    ("predict", "batch_size", "2**70"): 8,
}
# values whose contiguous copy is the ordinary value: the entry must not care about layout
for _e, _a, _h in [("Dense.forward", "x", "transposed"), ("windows", "data", "transposed"),
                   ("windows", "data", "float16"), ("windows", "data", "nan"),
                   ("windows", "data", "rank4"), ("pad_sequences", "sequences", "transposed"),
                   ("pad_sequences", "sequences", "float16"), ("pad_sequences", "sequences", "nan"),
                   ("pad_sequences", "sequences", "rank4"), ("gradcheck", "x", "transposed"),
                   ("gradcheck", "x", "float16"), ("gradcheck", "x", "empty2d"),
                   ("Dense.forward", "x", "empty2d")]:
    CANONICAL[(_e, _a, _h)] = np.array(HOSTILE[_h], order="C")
CANONICAL[("pad_sequences", "sequences", "ragged")] = [[1, 2], [3]]


def _dropout_check(kwargs, out):
    x = np.asarray(kwargs["x"], np.float32)
    out = np.asarray(out)
    assert out.shape == x.shape
    kept = np.isclose(out, 2 * x, equal_nan=True, rtol=0, atol=0)
    assert np.all(kept | (out == 0)), (x, out)


def _split_check(kwargs, res):
    a = np.asarray(kwargs["a"])
    train, val = res
    assert len(train) + len(val) == len(a)
    both = np.concatenate([train, val]).reshape(len(a), -1)
    rows = sorted(map(repr, a.reshape(len(a), -1).tolist()))
    assert sorted(map(repr, both.tolist())) == rows


def _optimizer_check(kwargs, opt):
    assert opt.lr == float(kwargs["lr"])
    assert getattr(opt, "momentum", 0.0) == float(kwargs.get("momentum", 0.0))


def _clip_check(kwargs, norm, before):
    grads = kwargs["module"].flat_grads
    assert norm == np.linalg.norm(before)
    assert norm > 0
    if norm <= kwargs["max_norm"]:
        np.testing.assert_array_equal(grads, before)
    else:
        np.testing.assert_allclose(grads, before * (kwargs["max_norm"] / norm), rtol=1e-6, atol=0)


def _no_epochs_check(kwargs, history, params_before):
    np.testing.assert_array_equal(MODEL.flat_params, params_before)
    assert not any(history.history.values())


# entries (or (entry, argument)) whose accepted values are checked against an
# independent oracle, besides the ordinary equivalent; an oracle taking three
# arguments gets the flat vector the call may change (grads, params) as before it
ORACLES = {
    "SGD": _optimizer_check,
    "Adam": _optimizer_check,
    "clip_grad_norm": _clip_check,
    ("fit", "epochs"): _no_epochs_check,
    "Dropout.forward": _dropout_check,
    "train_val_split": _split_check,
    "Embedding.forward": lambda kw, out: np.testing.assert_array_equal(
        out, EMBEDDING.params["weight"][np.asarray(kw["ids"])]),
    "one_hot": lambda kw, out: np.testing.assert_array_equal(
        out, np.eye(3)[np.asarray(kw["indices"])]),
}


def _normal(result):
    """A comparable form of a result: arrays, numbers, lists of them, the
    parameters of a module; None for objects compared through their effect."""
    if hasattr(result, "__next__") or isinstance(result, (list, tuple)):
        return [_normal(r) for r in result]
    if isinstance(result, (np.ndarray, float, int, np.generic)):
        return np.asarray(result)
    if hasattr(result, "ok") and hasattr(result, "errors"):   # a gradcheck result
        return np.asarray(result.ok)
    if hasattr(result, "lr"):                                  # an optimizer
        return [np.asarray(result.lr), np.asarray(getattr(result, "momentum", 0.0))]
    return None


def _same(a, b):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif a is None:
        assert b is None
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)


def _call(entry, kwargs):
    """Runs one call from the model's current parameters; returns its
    comparable result and the parameters after it."""
    fn, _ = ENTRIES[entry]
    before, grads = MODEL.flat_params.copy(), DENSE.flat_grads.copy()
    try:
        result = _normal(fn(**kwargs))
        return result, MODEL.flat_params.copy(), fn
    finally:
        MODEL.flat_params[...] = before
        DENSE.flat_grads[...] = grads


def _check_refusal(entry, arg, exc):
    msg = str(exc)
    names = arg + ("|" + PARTNER[(entry, arg)] if (entry, arg) in PARTNER else "")
    # the name, indexed or not, first or after where it is ("Sequential[0] LSTM: x: ...")
    named = re.match(rf"^(.*: )?({names})(\[[^\]]*\])*: ", msg)
    assert named, f"the refusal does not name the argument: {msg!r}"
    if not isinstance(exc, FileNotFoundError):
        assert "expected" in msg, f"the refusal does not say what was expected: {msg!r}"


def _cases():
    out = []
    for case in CASES:
        if case in KNOWN_DEFECTS:
            out.append(pytest.param(*case, marks=pytest.mark.xfail(
                strict=True, reason=KNOWN_DEFECTS[case])))
        else:
            out.append(case)
    return out


@pytest.mark.parametrize("entry,arg,hostile", _cases())
def test_hostile_value_gets_a_named_refusal_or_a_correct_result(entry, arg, hostile):
    fn, base = ENTRIES[entry]
    kwargs = dict(base, **{arg: HOSTILE[hostile]})
    try:
        got, params_after, fn = _call(entry, kwargs)
    except ALLOWED as exc:
        _check_refusal(entry, arg, exc)
        return
    oracle = ORACLES.get(entry) or ORACLES.get((entry, arg))
    if oracle is not None:
        if oracle.__code__.co_argcount == 3:
            flat = MODEL.flat_params if entry == "fit" else kwargs["module"].flat_grads
            before = flat.copy()
            oracle(kwargs, fn(**kwargs), before)
            flat[...] = before
        else:
            oracle(kwargs, fn(**kwargs))
        if entry in ("Dropout.forward", "train_val_split", "Embedding.forward", "one_hot"):
            return   # random, or checked whole by the oracle
    key = (entry, arg, hostile)
    assert key in CANONICAL, f"{key} was accepted, and no test says what it means"
    want, want_params, _ = _call(entry, dict(base, **{arg: copy.deepcopy(CANONICAL[key])}))
    _same(got, want)
    np.testing.assert_allclose(params_after, want_params, rtol=1e-12, atol=0)


def test_every_stated_meaning_is_used():
    """No stale entries: each canonical value and known defect is a case of the sweep."""
    assert set(CANONICAL) <= set(CASES) and set(KNOWN_DEFECTS) <= set(CASES)


def test_fit_names_a_batch_without_a_batch_axis():
    model = rnnpy.Dense(2, 2, dtype="float64")
    with pytest.raises(ValueError, match="^x: expected a batch of inputs with a leading batch axis"):
        rnnpy.fit(model, [(1.0, 2)], loss="mse", optimizer=optim.SGD(model, lr=0.1), progress=False)


def test_windows_over_empty_data_is_refused():
    with pytest.raises(ValueError, match=r"^data: expected at least one element, got shape \(0, 3\)"):
        data.windows(np.zeros((0, 3)), 2)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, float("inf"), "2"])
def test_predict_refuses_a_bad_batch_size(value):
    model = rnnpy.Dense(2, 2, dtype="float64")
    with pytest.raises(ValueError, match="^batch_size: expected a positive integer or None"):
        rnnpy.predict(model, np.ones((4, 2)), batch_size=value)
