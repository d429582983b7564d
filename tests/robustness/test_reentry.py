"""Python code that runs inside a call (an argument's __array__) and calls
back into the same cell is refused, and the outer call neither crashes nor
runs on a cache or sizes changed under it."""
import numpy as np
import pytest

from rnnpy import _core


def test_reentering_backward_from_an_argument_is_refused():
    c = _core.LSTMCell(3, 4, dtype="float64")
    c.forward(np.ones((20, 8, 3)))
    seen = []

    class Reenter:
        def __array__(self, dtype=None, copy=None):
            try:
                c.forward(np.ones((1, 1, 3)))      # would replace the cache backward is using
            except RuntimeError as exc:
                seen.append(str(exc))
            return np.ones((20, 8, 4))

    dx, dh0, dc0 = c.backward(Reenter())
    assert seen and "in use by another thread" in seen[0]
    assert dx.shape == (20, 8, 3) and np.isfinite(dx).all()


def test_reinitialising_from_an_argument_is_refused():
    c = _core.GRUCell(3, 4, dtype="float64")
    seen = []

    class Reinit:
        def __array__(self, dtype=None, copy=None):
            try:
                c.__init__(5000, 4, dtype="float64")   # would change I under the running call
            except RuntimeError as exc:
                seen.append(str(exc))
            return np.zeros((8, 4))

    out, h = c.forward(np.ones((20, 8, 3)), Reinit())
    assert seen and out.shape == (20, 8, 4) and c.input_size == 3


def test_gemm_refuses_an_output_that_overlaps_an_input():
    a = np.random.default_rng(0).random((60, 60))
    with pytest.raises(ValueError, match="^c: must not share memory with a or b"):
        _core.gemm(a, a, c=a)
    with pytest.raises(ValueError, match="^c: must not share memory"):
        _core.gemm(a, np.eye(60), c=a)
