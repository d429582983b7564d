"""Backward differentiates what forward saw: editing, in place, any array given
to forward (x, ids, state, lengths) or returned by it (out, state, pooled
output) between forward and backward leaves every gradient unchanged."""
import numpy as np
import pytest

import rnnpy
from rnnpy import losses

F64 = "float64"
B, T, I, H = 3, 5, 4, 3
LENGTHS = [5, 2, 0]


def _arrays(obj):
    """Every ndarray in a (nested) tuple/list."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _arrays(o)]
    return []


def _scribble(arrays):
    for a in arrays:
        if not a.flags.writeable:
            continue
        if a.dtype.kind in "iu":
            a[...] = 0      # still valid ids / lengths
        else:
            a[...] = 7.5


def _recurrent(cls, **kw):
    def build():
        m = cls(I, H, dtype=F64, seed=1, **kw)
        tm = kw.get("time_major", False)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, B, I) if tm else (B, T, I))
        LD = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
        Hs = kw.get("proj_size", 0) or H
        h0 = rng.standard_normal((LD, B, Hs))
        state = (h0, rng.standard_normal((LD, B, H))) if cls is rnnpy.LSTM else h0
        return m, (x, state, np.array(LENGTHS)), {}
    return build


CASES = {
    "dense": lambda: (rnnpy.Dense(I, H, dtype=F64, seed=0),
                      (np.random.default_rng(0).standard_normal((B, T, I)),), {}),
    "embedding": lambda: (rnnpy.Embedding(6, H, dtype=F64, seed=0),
                          (np.random.default_rng(0).integers(1, 6, (B, T)),), {}),
    "laststep": lambda: (rnnpy.LastStep(dtype=F64),
                         (np.random.default_rng(0).standard_normal((B, T, I)), np.array(LENGTHS)), {}),
    "laststep_two_directions": lambda: (
        rnnpy.LastStep(time_major=True, dtype=F64),
        (np.random.default_rng(0).standard_normal((T, B, 2 * H)), np.array(LENGTHS)),
        {"directions": 2}),
    "dropout": lambda: (rnnpy.Dropout(0.5, dtype=F64, seed=0),
                        (np.random.default_rng(0).standard_normal((B, T, I)),), {}),
    "rnn": _recurrent(rnnpy.RNN, nonlinearity="relu", num_layers=2, dropout=0.3),
    "lstm_bi": _recurrent(rnnpy.LSTM, bidirectional=True, num_layers=2, time_major=True),
    "lstm_peephole_proj": _recurrent(rnnpy.LSTM, peephole=True, proj_size=2),
    "lstm_ln_zoneout": _recurrent(rnnpy.LSTM, layer_norm=True, zoneout=(0.2, 0.4),
                                  recurrent_dropout=0.3),
    "gru_mul": _recurrent(rnnpy.GRU, bidirectional=True, merge_mode="mul"),
    "gru_apart": _recurrent(rnnpy.GRU, bidirectional=True, merge_mode=None, layer_norm=True),
    "rnn_ave": _recurrent(rnnpy.RNN, bidirectional=True, merge_mode="ave", zoneout=0.3),
    "sequential": lambda: (
        rnnpy.Sequential(rnnpy.Embedding(6, I, dtype=F64, seed=0),
                         rnnpy.LSTM(I, H, bidirectional=True, dtype=F64, seed=1),
                         rnnpy.Dropout(0.4, dtype=F64, seed=2), rnnpy.LastStep(dtype=F64),
                         rnnpy.Dense(2 * H, 2, dtype=F64, seed=3), rnnpy.Dense(2, 2, dtype=F64, seed=4)),
        (np.random.default_rng(0).integers(1, 6, (B, T)),
         [(np.ones((2, B, H)), np.ones((2, B, H)))], np.array(LENGTHS)), {}),
}


def _grads(case, scribble):
    module, args, kwargs = CASES[case]()
    module.train()
    inputs = [a.copy() for a in _arrays(args)]
    out = module.forward(*args, **kwargs)
    rng = np.random.default_rng(5)
    y = out[0] if module.is_recurrent else out
    dy = tuple(rng.standard_normal(a.shape) for a in y) if isinstance(y, tuple) \
        else rng.standard_normal(y.shape)
    dstate = None
    if module.is_recurrent:
        dstate = [tuple(rng.standard_normal(a.shape) for a in s) if isinstance(s, tuple)
                  else rng.standard_normal(s.shape) for s in out[1]] \
            if isinstance(module, rnnpy.Sequential) else \
            (tuple(rng.standard_normal(a.shape) for a in out[1]) if isinstance(out[1], tuple)
             else rng.standard_normal(out[1].shape))
    if scribble:
        _scribble(_arrays(args) + _arrays(out))
    else:   # the arguments were not changed by forward itself
        for a, b in zip(inputs, _arrays(args)):
            np.testing.assert_array_equal(a, b)
    module.zero_grad()
    back = module.backward(dy, dstate) if module.is_recurrent else module.backward(dy)
    return [a.copy() for a in _arrays(back)] + [module.flat_grads.copy()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_editing_inputs_and_outputs_after_forward_leaves_gradients(case):
    want = _grads(case, scribble=False)
    got = _grads(case, scribble=True)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_dense_issue_example():
    d = rnnpy.Dense(2, 2, dtype=F64, seed=0)
    x = np.array([[1.0, 2.0]])
    d.forward(x)
    x[...] = 100.0
    d.backward(np.ones((1, 2)))
    np.testing.assert_array_equal(d.grads["weight"], [[1.0, 2.0], [1.0, 2.0]])


@pytest.mark.parametrize("loss, targets", [
    (losses.softmax_cross_entropy, np.array([[0, 1, 2, 1, 0]] * B)),
    (losses.binary_cross_entropy_with_logits, np.full((B, T, 3), 0.25)),
    (losses.mse, np.full((B, T, 3), 0.5)),
])
def test_loss_gradients_do_not_alias_their_inputs(loss, targets):
    logits = np.random.default_rng(0).standard_normal((B, T, 3))
    mask = np.ones((B, T), dtype=bool)
    _, want = loss(logits.copy(), targets.copy(), mask.copy())
    _, got = loss(logits, targets, mask)
    logits[...] = 9.0
    targets[...] = 0
    mask[...] = False
    np.testing.assert_array_equal(got, want)
