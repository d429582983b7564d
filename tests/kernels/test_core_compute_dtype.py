"""The _core cells' compute_dtype: 'bfloat16' products on float32 cells only
(a clear refusal otherwise), the same bits on one thread or two, forward
and backward, and close to the float32 products."""
import numpy as np
import pytest

from rnnpy import _core


def _cells(dtype="float32"):
    yield _core.LSTMCell(5, 24, peephole=True, proj_size=7, layer_norm=True, dtype=dtype)
    yield _core.GRUCell(5, 24, layer_norm=True, dtype=dtype)
    yield _core.RNNCell(5, 24, dtype=dtype)


@pytest.mark.parametrize("cell", list(_cells("float64")), ids=["lstm", "gru", "rnn"])
def test_float64_cells_refuse_bfloat16(cell):
    assert cell.compute_dtype == "float64"
    with pytest.raises(ValueError, match=r"compute_dtype: 'bfloat16' needs a float32 cell"):
        cell.compute_dtype = "bfloat16"
    with pytest.raises(ValueError, match=r"compute_dtype: expected 'float64' or 'bfloat16'"):
        cell.compute_dtype = "float32"
    with pytest.raises(AttributeError, match="compute_dtype"):
        del cell.compute_dtype
    assert cell.compute_dtype == "float64"


@pytest.mark.parametrize("cell", list(_cells()), ids=["lstm", "gru", "rnn"])
def test_bfloat16_threads_same_bits_and_close_to_float32(cell):
    rng = np.random.default_rng(0)
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.3
    T, B = 6, 19
    x = rng.standard_normal((T, B, 5)).astype(np.float32)
    Hs = cell.proj_size or cell.hidden_size
    dout = rng.standard_normal((T, B, Hs)).astype(np.float32)
    res = {}
    for compute in ("float32", "bfloat16"):
        cell.compute_dtype = compute
        assert cell.compute_dtype == compute
        for threads in (1, 2):
            cell.threads = threads
            out = cell.forward(x, lengths=np.arange(B) % (T + 1))
            cell.zero_grad()
            dx = cell.backward(dout)[0]
            res[compute, threads] = (out[0], dx, cell.grads.copy())
    for a, b in zip(res["bfloat16", 1], res["bfloat16", 2]):
        np.testing.assert_array_equal(a, b)
    out32, outbf = res["float32", 1][0], res["bfloat16", 1][0]
    assert not np.array_equal(out32, outbf)            # the products really were rounded
    np.testing.assert_allclose(outbf, out32, atol=0.05)  # and only rounded
