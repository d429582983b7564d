"""A sweep of hostile values through every argument of the public Python
entries that tests/test_bad_input.py does not reach: losses, Dense,
Embedding, LastStep, Dropout, the data helpers, optimizers, clipping, fit,
predict, load and gradcheck.

Each (entry, argument, value) call must either succeed or raise TypeError,
ValueError, KeyError or FileNotFoundError; an IndexError, AttributeError,
ZeroDivisionError or anything else escaping from inside rnnpy is a defect.
"""
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


def _entries():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5, 3))
    tgt = rng.integers(0, 3, (4, 5))
    mask = np.ones((4, 5), bool)
    dense = rnnpy.Dense(3, 2, dtype="float64")
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
        "Embedding.forward": (rnnpy.Embedding(5, 3).forward, dict(ids=np.array([[1, 2]]))),
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
    }


ENTRIES = _entries()
CASES = [(e, a, h) for e, (_, base) in ENTRIES.items() for a in base for h in HOSTILE
         if not (e == "fit" and a == "epochs" and h == "2**70")]   # a valid, endless run


@pytest.mark.parametrize("entry,arg,hostile", CASES)
def test_hostile_value_gets_a_python_error_or_a_result(entry, arg, hostile):
    fn, base = ENTRIES[entry]
    kwargs = dict(base, **{arg: HOSTILE[hostile]})
    try:
        result = fn(**kwargs)
        if hasattr(result, "__next__"):
            list(result)
    except ALLOWED:
        pass


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
