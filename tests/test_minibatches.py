"""The one minibatch iterator (rnnpy.data.minibatches) behind iterate_minibatches and fit."""
import numpy as np

import rnnpy
from rnnpy.data.minibatches import minibatches


def test_in_order_gives_views_and_keeps_none():
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    batches = list(minibatches([x, None, y], 2))
    assert [b[2].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert all(b[1] is None for b in batches)
    assert np.shares_memory(batches[0][0], x)


def test_order_and_stop():
    x = np.arange(7)
    order = np.array([6, 5, 4, 3, 2, 1, 0])
    assert [b[0].tolist() for b in minibatches([x], 3, order, stop=6)] == [[6, 5, 4], [3, 2, 1]]
    assert [b[0].tolist() for b in minibatches([list(x)], 4)] == [[0, 1, 2, 3], [4, 5, 6]]


def test_iterate_minibatches_keeps_its_seeded_order():
    x = np.arange(6)
    got = [b[0].tolist() for b in rnnpy.data.iterate_minibatches(x, batch_size=4, seed=3)]
    want = np.random.default_rng(3).permutation(6)
    assert got == [want[:4].tolist(), want[4:].tolist()]


def test_fit_walks_the_seed_and_epoch_order():
    from rnnpy.data.batches import _minibatches

    x, y = np.arange(6), np.arange(6) * 10
    got = [b[1].tolist() for b in _minibatches([x, y, None], 4, True, 5, 2)]
    want = np.random.default_rng([5, 2]).permutation(6) * 10
    assert got == [want[:4].tolist(), want[4:].tolist()]
    assert [b[0].tolist() for b in _minibatches([x, y, None], 4, False, 5, 2)] == [[0, 1, 2, 3], [4, 5]]
