"""rnnpy.no_grad() as an object: one context manager may be made once and
entered from any thread (it turns the mode on for the thread that enters
it, as PyTorch's does, and never waits on another thread), may decorate a
function, and an interrupt at any point of entering or leaving it leaves
the mode as it was."""
import sys
import threading

import numpy as np
import pytest

import rnnpy
from rnnpy.nn import grad_enabled


def test_one_object_entered_from_another_thread_is_that_threads_mode():
    ng = rnnpy.no_grad()
    seen, errors = [], []
    inside, release = threading.Event(), threading.Event()

    def worker():
        try:
            with ng:
                seen.append(grad_enabled())
                inside.set()
                release.wait(20)
            seen.append(grad_enabled())
        except BaseException as exc:
            errors.append(exc)
            inside.set()

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(20)
    try:
        assert grad_enabled()          # the worker's mode is not this thread's
        with ng:                       # nor does this thread wait for the worker
            assert not grad_enabled()
        assert grad_enabled()
    finally:
        release.set()
        t.join()
    assert not errors, errors
    assert seen == [False, True]


def test_no_grad_decorates_a_function():
    model = rnnpy.Sequential(rnnpy.GRU(3, 4, seed=0), rnnpy.LastStep(), rnnpy.Dense(4, 2, seed=1))
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)

    @rnnpy.no_grad()
    def infer(v):
        """infer's own docstring"""
        assert not grad_enabled()
        return model(v)[0]

    want = model(x)[0]
    np.testing.assert_array_equal(infer(x), want)
    assert grad_enabled() and infer.__doc__ == "infer's own docstring"
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones_like(want))


# where CPython delivers a signal (see test_interrupts.py)
_POINTS = ("call", "return", "c_return")


def test_interrupt_at_every_point_of_entering_and_leaving():
    ng = rnnpy.no_grad()

    def op():
        with ng:
            with rnnpy.no_grad():
                assert not grad_enabled()
            assert not grad_enabled()

    def run(k):
        n = [0]

        def trace(frame, event, arg):
            if event in _POINTS:
                n[0] += 1
                if n[0] == k:
                    raise KeyboardInterrupt
            return trace

        sys.setprofile(trace)
        try:
            op()
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        return n[0]

    total = run(0)
    assert total > 0
    for k in range(1, total + 1):
        run(k)
        assert grad_enabled(), f"mode left on after an interrupt at point {k}"


def test_cell_backward_after_keep_cache_false_says_why():
    from rnnpy import _core
    cell = _core.GRUCell(2, 3)
    x = np.ones((4, 1, 2), np.float32)
    with pytest.raises(RuntimeError, match="call forward first"):
        cell.backward()
    cell.forward(x, keep_cache=False)
    with pytest.raises(RuntimeError, match=r"nothing to differentiate; .*keep_cache=False"):
        cell.backward()
    cell.forward(x)
    cell.clear_cache()
    with pytest.raises(RuntimeError, match="call forward first"):
        cell.backward()


def test_no_grad_in_an_exit_stack():
    import contextlib
    with contextlib.ExitStack() as stack:
        stack.enter_context(rnnpy.no_grad())
        assert not grad_enabled()
    assert grad_enabled()
