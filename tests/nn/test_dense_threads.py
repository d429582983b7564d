"""Dense runs its products on rnnpy's own GEMM and thread pool (the recurrent
kernels' pool) instead of NumPy's BLAS, whose threads would compete with the
pool's for the cores. Its thread count follows the model it belongs to unless
set; results are the same bits for every count, and match a float64
reference. Forward keeps its copy of x in memory kept between calls."""
import copy
import tracemalloc

import numpy as np
import pytest

import rnnpy
from rnnpy import _core


def _data(dtype, shape=(6, 40, 96), out=33, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape[:-1] + (out,)).astype(dtype)
    return x, dy


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-13)])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_matches_float64_reference(dtype, tol, bias):
    x, dy = _data(dtype)
    d = rnnpy.Dense(96, 33, bias=bias, dtype=dtype, seed=3, threads=2)
    W = d.params["weight"].astype(np.float64)
    y = d.forward(x)
    d.zero_grad()
    dx = d.backward(dy)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y_ref = x64 @ W.T + (d.params["bias"] if bias else 0)
    assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
    assert y.shape == (6, 40, 33) and dx.shape == x.shape
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, dy64 @ W, rtol=tol, atol=tol)
    np.testing.assert_allclose(d.grads["weight"], dy64.reshape(-1, 33).T @ x64.reshape(-1, 96),
                               rtol=tol, atol=tol * 10)
    if bias:
        np.testing.assert_allclose(d.grads["bias"], dy64.reshape(-1, 33).sum(0), rtol=tol,
                                   atol=tol * 10)


def test_dense_same_bits_for_every_thread_count():
    x, dy = _data("float32", (8, 64, 200), 65)
    results = []
    for threads in (1, 2, 3):
        d = rnnpy.Dense(200, 65, seed=1, threads=threads)
        d.grads["weight"][...] = 0.25   # backward adds into what is there
        y = d.forward(x)
        dx = d.backward(dy)
        results.append((y, dx, d.flat_grads.copy()))
    for y, dx, g in results[1:]:
        assert np.array_equal(y, results[0][0])
        assert np.array_equal(dx, results[0][1])
        assert np.array_equal(g, results[0][2])


def test_dense_products_run_on_the_pool():
    """threads=2 on a large product: the job goes to rnnpy's pool (counted
    there), not to NumPy."""
    x, _ = _data("float32", (16, 100, 256), 65)
    d = rnnpy.Dense(256, 65, seed=0, threads=2)
    before = sum(_core.pool_counts())
    d.forward(x)
    assert sum(_core.pool_counts()) > before


def test_dense_threads_follow_the_model(monkeypatch):
    monkeypatch.delenv("RNNPY_NUM_THREADS", raising=False)
    lstm = rnnpy.LSTM(4, 8, seed=0, threads=2)
    dense = rnnpy.Dense(8, 3, seed=0)
    assert dense.threads == 1                   # alone: the default
    model = rnnpy.Sequential(rnnpy.Embedding(5, 4, seed=0), lstm, dense)
    assert dense.threads == 2                   # the model's recurrent layer's
    lstm.threads = 3
    assert dense.threads == 3                   # followed, not copied
    dense.threads = 1
    assert dense.threads == 1 and lstm.threads == 3   # its own when set
    dense.threads = None
    assert dense.threads == 3
    outer = rnnpy.Sequential(model)             # nested: the outermost model's tree
    assert dense.threads == 3 and outer.modules[0] is model
    monkeypatch.setenv("RNNPY_NUM_THREADS", "2")
    assert rnnpy.Dense(2, 2).threads == 2


def test_dense_threads_kept_by_copies_and_not_saved():
    d = rnnpy.Dense(3, 2, seed=0, threads=2)
    assert copy.deepcopy(d).threads == 2
    assert "threads" not in d.get_config()
    follow = rnnpy.Dense(3, 2, seed=0)
    assert "_threads" not in copy.deepcopy(follow).__dict__


@pytest.mark.parametrize("value,exc", [(0, ValueError), (1.5, TypeError), (True, TypeError),
                                       ("2", TypeError)])
def test_dense_bad_threads_named(value, exc):
    with pytest.raises(exc, match="threads"):
        rnnpy.Dense(3, 2, threads=value)
    d = rnnpy.Dense(3, 2)
    with pytest.raises(exc, match="threads"):
        d.threads = value


def test_dense_empty_batch():
    d = rnnpy.Dense(4, 3, seed=0, threads=2)
    y = d.forward(np.zeros((0, 5, 4), np.float32))
    assert y.shape == (0, 5, 3)
    d.zero_grad()
    dx = d.backward(np.zeros((0, 5, 3), np.float32))
    assert dx.shape == (0, 5, 4) and not d.flat_grads.any()


def test_dense_keeps_x_in_kept_memory():
    """After the first forward, a forward of the same shape allocates its
    output only: the copy of x goes into the memory the last one used."""
    x, _ = _data("float32", (64, 64, 256), 8)
    d = rnnpy.Dense(256, 8, seed=0)
    d.forward(x)
    c = np.empty((64 * 64, 8), np.float32)
    tracemalloc.start()
    try:
        # what the product alone takes (its GEMM workspace)
        tracemalloc.reset_peak()
        _core.gemm(x.reshape(-1, 256), d.params["weight"], trans_b=True, c=c)
        _, product = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        y = d.forward(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < product + y.nbytes + x.nbytes / 4, (peak, product, x.nbytes, y.nbytes)
    x[...] = 0   # backward uses what forward saw
    d.zero_grad()
    d.backward(np.ones_like(y))
    assert d.grads["weight"].any()
