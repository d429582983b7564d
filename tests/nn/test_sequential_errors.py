"""A bad input inside a Sequential names the child's position and class, in
forward and in backward, and keeps the exception's type."""
import numpy as np
import pytest

import rnnpy


def test_forward_error_names_position_and_class():
    model = rnnpy.Sequential(rnnpy.LSTM(8, 16), rnnpy.LastStep(), rnnpy.Dense(32, 3))
    with pytest.raises(ValueError, match=r"^Sequential\[2\] Dense: x: expected shape \(\.\.\., "
                                         r"in_features\) = \(\.\.\., 32\), got \(64, 16\)$"):
        model.forward(np.zeros((64, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"^Sequential\[0\] LSTM: x: expected"):
        model.forward(np.zeros((64, 5, 7), np.float32))


def test_backward_error_names_position_and_class():
    model = rnnpy.Sequential(rnnpy.LSTM(8, 16), rnnpy.LastStep(), rnnpy.Dense(16, 3))
    model.forward(np.zeros((4, 5, 8), np.float32))
    with pytest.raises(ValueError, match=r"^Sequential\[2\] Dense: dy: expected shape"):
        model.backward(np.zeros((4, 4), np.float32))


def test_nested_sequential_names_each_level_and_keeps_type():
    inner = rnnpy.Sequential(rnnpy.Embedding(5, 4), rnnpy.LSTM(4, 6))
    model = rnnpy.Sequential(inner, rnnpy.Dense(6, 2))
    with pytest.raises(ValueError, match=r"^Sequential\[0\] Sequential: Sequential\[0\] Embedding: "):
        model.forward(np.array([[1, 9]]))
