"""A cell keeps its cache and scratch between calls: reused while the shape
holds (no fresh pages to fault in each call), replaced when it changes (no
growth), and backward always differentiates the latest successful forward."""
import resource
import tracemalloc

import numpy as np
import pytest

from rnnpy import _core

T, B, I, H = 100, 64, 64, 256


def _minor_faults(fn) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _lstm():
    cell = _core.LSTMCell(I, H, dtype="float32")
    cell.params[...] = np.random.default_rng(0).uniform(-0.1, 0.1, cell.num_params)
    return cell


def test_repeated_calls_of_one_shape_touch_no_fresh_cache_or_scratch():
    """The cache alone is T*B*7H float32 = 11,200 pages and backward's scratch
    T*B*4H = 6,400; what a call may still fault in is its new outputs (out:
    1,600 pages; dx: 400)."""
    cell = _lstm()
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    dout = np.ones((T, B, H), np.float32)
    for _ in range(2):   # the first calls size the kept blocks
        cell.forward(x)
        cell.backward(dout)
    fwd = min(_minor_faults(lambda: cell.forward(x)) for _ in range(3))
    bwd = min(_minor_faults(lambda: cell.backward(dout)) for _ in range(3))
    assert fwd < 4000, f"forward faulted in {fwd} pages"
    assert bwd < 4000, f"backward faulted in {bwd} pages"


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_kept_memory_follows_the_last_shape(kind):
    """Reused at one shape (no growth over calls), released when the shape
    shrinks, and all of it on clear_cache."""
    cls = {"rnn": _core.RNNCell, "lstm": _core.LSTMCell, "gru": _core.GRUCell}[kind]
    cell = cls(8, 32, dtype="float64")
    rng = np.random.default_rng(2)
    big, small = rng.standard_normal((400, 16, 8)), rng.standard_normal((5, 16, 8))
    tracemalloc.start()
    try:
        def step(x):
            out = cell.forward(x)[0]
            cell.backward(np.ones_like(out))
            return tracemalloc.get_traced_memory()[0]

        step(big)
        at_big = [step(big) for _ in range(5)]
        at_small = step(small)
        cell.clear_cache()
        cleared = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    kept_big = 400 * 16 * (8 + 3 * 32) * 8   # at least x and three (R, H) arrays of the cache
    assert max(at_big) - min(at_big) < 64 * 1024, at_big
    assert at_big[-1] - at_small > kept_big * 0.9, (at_big[-1], at_small)
    # what the small shape keeps: its own blocks and the GEMM workspace of one thread
    assert 0 < at_small - cleared < 4 * 2 ** 20, (at_small, cleared)


def test_backward_uses_the_latest_forward_when_buffers_are_reused():
    """Two forwards of one shape share the kept blocks: backward must see the
    second's input and masks, exactly as a fresh cell would."""
    rng = np.random.default_rng(3)
    x1, x2 = (rng.standard_normal((7, 3, 4)) for _ in range(2))
    m1, m2 = (rng.uniform(0, 2, (3, 5)) for _ in range(2))
    dout = rng.standard_normal((7, 3, 5))
    reused = _core.GRUCell(4, 5, dtype="float64")
    reused.params[...] = rng.uniform(-0.5, 0.5, reused.num_params)
    fresh = _core.GRUCell(4, 5, dtype="float64", params=reused.params.copy())
    reused.forward(x1, rec_mask=m1)
    reused.forward(x2, rec_mask=m2)
    fresh.forward(x2, rec_mask=m2)
    got, want = reused.backward(dout), fresh.backward(dout)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(reused.grads, fresh.grads)


def test_a_refused_forward_keeps_the_previous_cache_for_backward():
    rng = np.random.default_rng(4)
    cell = _core.LSTMCell(4, 5, dtype="float64")
    cell.params[...] = rng.uniform(-0.5, 0.5, cell.num_params)
    twin = _core.LSTMCell(4, 5, dtype="float64", params=cell.params.copy())
    x = rng.standard_normal((6, 2, 4))
    cell.forward(x)
    twin.forward(x)
    bad = x.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        cell.forward(bad)
    dout = rng.standard_normal((6, 2, 5))
    for a, b in zip(cell.backward(dout), twin.backward(dout)):
        np.testing.assert_array_equal(a, b)


def test_max_threads_is_exported():
    assert _core.MAX_THREADS == 64
    cell = _core.RNNCell(2, 3)
    cell.threads = _core.MAX_THREADS
    with pytest.raises(ValueError, match=f"threads: expected at most {_core.MAX_THREADS}"):
        cell.threads = _core.MAX_THREADS + 1
