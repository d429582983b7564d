"""rnnpy._core.all_finite, the one-pass check behind every layer's NaN/Inf
check: the same answer as np.isfinite(a).all() wherever the bad value is
(every position of the vector loop and its tail), None where it does not
apply, and check_finite's message unchanged."""
import numpy as np
import pytest

from rnnpy import _core
from rnnpy._validate import check_finite


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 130, 1000])
def test_same_answer_as_numpy_wherever_the_bad_value_is(dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 1e3).astype(dtype)
    assert _core.all_finite(x) is True
    info = np.finfo(dtype)
    edges = np.array([info.max, -info.max, info.tiny, info.smallest_subnormal, 0.0, -0.0], dtype)
    assert _core.all_finite(edges) is True  # the largest, tiniest and signed zeros are finite
    for bad in (np.nan, np.inf, -np.inf):
        for pos in range(n):
            y = x.copy()
            y[pos] = bad
            assert _core.all_finite(y) is False, (bad, pos)
    if n:  # a quiet NaN with a payload, and a signalling one, are NaNs too
        for bits in ((0x7FC00001, 0x7FA00000) if dtype == np.float32
                     else (0x7FF8000000000001, 0x7FF4000000000000)):
            y = x.copy()
            y.view(np.int32 if dtype == np.float32 else np.int64)[n - 1] = bits
            assert _core.all_finite(y) is False


def test_none_where_it_does_not_apply():
    a = np.zeros((4, 6), np.float32)
    assert _core.all_finite(a[:, ::2]) is None           # not contiguous
    assert _core.all_finite(a.astype(">f4")) is None      # byte-swapped
    assert _core.all_finite(np.arange(3)) is None         # integers
    assert _core.all_finite([1.0, float("nan")]) is None  # not an ndarray
    assert _core.all_finite(np.zeros((2, 3, 4))) is True  # any shape, read flat


def test_check_finite_names_the_first_bad_index_either_way():
    for arr in (np.array([1.0, 2.0, np.inf, np.nan], np.float32),
                np.array([[1.0, 2.0], [3.0, np.nan]])[:, ::-1]):   # the C path, and NumPy's
        with pytest.raises(ValueError, match=r"x: expected finite values, found NaN or Inf at flat index 2"):
            check_finite(arr, "x")
    check_finite(np.ones(5, np.float32), "x")
    check_finite(np.arange(4), "x")
