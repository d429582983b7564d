"""copy.deepcopy and copy.copy of any module give an independent model: the
same configuration, parameters, gradients, random generator states and
training modes, on a buffer and lock of its own (deepcopy failed on the lock,
and copy.copy of a Sequential shared its buffer and lock with the original)."""
import copy

import numpy as np
import pytest

import rnnpy
from rnnpy import optim

F64 = "float64"
MODULES = {
    "rnn": lambda: rnnpy.RNN(3, 4, nonlinearity="relu", dtype=F64, seed=0),
    "lstm": lambda: rnnpy.LSTM(3, 4, num_layers=2, dropout=0.3, recurrent_dropout=0.2,
                               bidirectional=True, dtype=F64, seed=0),
    "gru": lambda: rnnpy.GRU(3, 4, zoneout=0.1, dtype=F64, seed=0),
    "dense": lambda: rnnpy.Dense(3, 2, dtype=F64, seed=0),
    "embedding": lambda: rnnpy.Embedding(7, 3, padding_idx=0, dtype=F64, seed=0),
    "last_step": lambda: rnnpy.LastStep(dtype=F64),
    "dropout": lambda: rnnpy.Dropout(0.4, dtype=F64, seed=0),
    "nested": lambda: rnnpy.Sequential(
        rnnpy.Embedding(7, 3, dtype=F64, seed=1),
        rnnpy.Sequential(rnnpy.GRU(3, 4, dtype=F64, seed=2), rnnpy.Dropout(0.5, dtype=F64, seed=3)),
        rnnpy.LSTM(4, 4, dtype=F64, seed=4), rnnpy.LastStep(dtype=F64),
        rnnpy.Dense(4, 2, dtype=F64, seed=5)),
}


def _input(m):
    first = m
    while isinstance(first, rnnpy.Sequential):
        first = first.modules[0]
    rng = np.random.default_rng(9)
    if isinstance(first, rnnpy.Embedding):
        return rng.integers(0, 7, (2, 5))
    if isinstance(first, rnnpy.Dense):
        return rng.standard_normal((2, 5, 3))
    return rng.standard_normal((2, 5, first.input_size if hasattr(first, "input_size") else 3))


def _out(y):
    return y[0] if isinstance(y, tuple) else y


def _walk(m):
    yield m
    for c in getattr(m, "modules", ()):
        yield from _walk(c)


@pytest.mark.parametrize("how", [copy.deepcopy, copy.copy], ids=["deepcopy", "copy"])
@pytest.mark.parametrize("kind", sorted(MODULES))
def test_copy_is_equal_and_independent(kind, how):
    m = MODULES[kind]()
    m.flat_params[...] = np.random.default_rng(1).standard_normal(m.num_params)
    m.flat_grads[...] = np.random.default_rng(2).standard_normal(m.num_params)
    m.forward(_input(m))          # advances the dropout generators
    inner = list(_walk(m))
    inner[-1].eval()              # a mixed tree of modes
    c = how(m)
    assert type(c) is type(m) and c is not m
    assert c.get_config() == m.get_config()
    np.testing.assert_array_equal(c.flat_params, m.flat_params)
    np.testing.assert_array_equal(c.flat_grads, m.flat_grads)
    assert c.rng_state() == m.rng_state()
    assert [x.training for x in _walk(c)] == [x.training for x in inner]
    for a, b in zip(_walk(c), inner):
        assert a is not b
        assert a._call_lock is not b._call_lock
        assert not np.shares_memory(a.flat_params, b.flat_params)
        assert not np.shares_memory(a.flat_grads, b.flat_grads)
    # same computation, random masks included
    x = _input(m)
    np.testing.assert_array_equal(_out(c.forward(x)), _out(m.forward(x)))
    # trains on its own: the original is untouched
    before_p, before_g = m.flat_params.copy(), m.flat_grads.copy()
    if c.num_params:
        y = _out(c.forward(x))
        c.backward(np.ones_like(y))
        optim.SGD(c, lr=0.1).step()
        assert not np.array_equal(c.flat_params, before_p)
    np.testing.assert_array_equal(m.flat_params, before_p)
    np.testing.assert_array_equal(m.flat_grads, before_g)
    # a copied child belongs to the copy, not to the original's model
    if isinstance(m, rnnpy.Sequential):
        with pytest.raises(ValueError, match="already belongs"):
            rnnpy.Sequential(c.modules[-1])


def test_deepcopy_keeps_the_tree_of_a_container_and_child_together():
    m = MODULES["nested"]()
    cm, cchild = copy.deepcopy([m, m.modules[4]])
    assert cchild is cm.modules[4]


def test_copy_of_a_model_trains_independently_with_fit():
    m = MODULES["nested"]()
    best = copy.deepcopy(m)
    x = np.random.default_rng(0).integers(0, 7, (8, 5))
    y = np.array([0, 1] * 4)
    rnnpy.fit(m, (x, y), loss="cross_entropy", optimizer=optim.Adam(m, lr=0.1), epochs=2,
              batch_size=4, progress=False)
    fresh = MODULES["nested"]()
    np.testing.assert_array_equal(best.flat_params, fresh.flat_params)
    assert not np.array_equal(m.flat_params, fresh.flat_params)
