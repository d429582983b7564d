"""Module.masks_held(): the public way to hold dropout, zoneout and recurrent-dropout
masks fixed across forwards (what gradcheck uses)."""
import numpy as np
import pytest

import rnnpy


def _model():
    return rnnpy.Sequential(
        rnnpy.LSTM(3, 4, num_layers=2, dropout=0.5, zoneout=0.3, recurrent_dropout=0.3,
                   dtype="float64", seed=1),
        rnnpy.Dropout(0.5, dtype="float64", seed=2), rnnpy.Dense(4, 2, dtype="float64", seed=3))


X = np.random.default_rng(0).standard_normal((2, 5, 3))


def _out(m, x=X):
    """The model's output (a Sequential holding a recurrent layer returns (out, state))."""
    return m.forward(x)[0]


def test_masks_are_drawn_anew_outside_the_block():
    m = _model()
    assert not np.allclose(_out(m), _out(m))


def test_masks_held_repeats_the_last_forward_in_every_module():
    m = _model()
    first = _out(m)
    with m.masks_held() as same:
        assert same is m
        assert all(sub._masks_held for sub in m.modules)
        np.testing.assert_array_equal(_out(m), first)
        np.testing.assert_array_equal(_out(m), first)
        # another batch size cannot reuse the masks: new ones, still deterministic after
        other = _out(m, X[:1])
        np.testing.assert_array_equal(_out(m, X[:1]), other)
    assert not any(sub._masks_held for sub in m.modules) and not m._masks_held
    assert not np.allclose(_out(m), _out(m))


def test_nested_blocks_restore_what_was_held():
    m = _model()
    _out(m)
    with m.modules[0].masks_held():
        with m.masks_held():
            pass
        assert m.modules[0]._masks_held and not m.modules[1]._masks_held
    assert not m.modules[0]._masks_held


def test_an_exception_in_the_block_releases_the_masks():
    m = _model()
    with pytest.raises(RuntimeError, match="boom"):
        with m.masks_held():
            raise RuntimeError("boom")
    assert not any(sub._masks_held for sub in [m, *m.modules])


def test_gradcheck_holds_masks_only_while_it_runs():
    layer = rnnpy.LSTM(2, 3, dropout=0.5, num_layers=2, zoneout=0.2, dtype="float64", seed=4)
    x = np.random.default_rng(1).standard_normal((2, 4, 2))
    assert rnnpy.gradcheck(layer, x, max_checks=10).ok
    assert not layer._masks_held
    assert not np.allclose(layer.forward(x)[0], layer.forward(x)[0])
