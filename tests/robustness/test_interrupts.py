"""A KeyboardInterrupt (or any exception) at any point of a call leaves the
model usable from every thread: its lock and its C cells' busy flags are
released, a forward that did not finish leaves nothing for backward, and a
backward that did not finish leaves the gradients as they were.

CPython delivers a signal's exception only where the interpreter checks for
it: entering a Python function, and right after a call returns. A profile
function sees exactly those points ("call", "return", "c_return"), so raising
KeyboardInterrupt from it at the k-th one, for every k, delivers an interrupt
at every point a Ctrl-C could land. Real signals (setitimer) and
_thread.interrupt_main() are swept too.
"""
import _thread
import inspect
import os
import signal
import sys
import threading

import numpy as np
import pytest

import rnnpy
from rnnpy import _core, optim

_POINTS = ("call", "return", "c_return")


class _Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, frame, event, arg):
        if event in _POINTS:
            self.n += 1


class _InterruptAt:
    """Profile function raising KeyboardInterrupt at the k-th delivery point
    (CPython removes a profile function that raises)."""

    def __init__(self, k):
        self.k, self.n, self.fired = k, 0, False

    def __call__(self, frame, event, arg):
        if event in _POINTS:
            self.n += 1
            if self.n == self.k:
                self.fired = True
                raise KeyboardInterrupt


def _points(op):
    counter = _Counter()
    sys.setprofile(counter)
    try:
        op()
    finally:
        sys.setprofile(None)
    return counter.n


def _interrupted(op, k):
    """Runs op with an interrupt at point k; True when it was interrupted."""
    inject = _InterruptAt(k)
    sys.setprofile(inject)
    try:
        op()
    except BaseException:   # the interrupt, or what a library's cleanup made of it
        if not inject.fired:
            raise
        return True
    finally:
        sys.setprofile(None)
    return inject.fired


def _model():
    return rnnpy.Sequential(rnnpy.LSTM(3, 5, num_layers=2, dtype="float64", seed=0),
                            rnnpy.LastStep(dtype="float64"),
                            rnnpy.Dense(5, 2, dtype="float64", seed=2))


_RNG = np.random.default_rng(0)
X = _RNG.standard_normal((4, 6, 3))
DY = _RNG.standard_normal((4, 2))
Y = np.array([0, 1, 1, 0])


def _reference():
    m = _model()
    m.forward(X)
    m.backward(DY)
    return m.state_dict(), m.flat_grads.copy()


P0, FULL = _reference()


def _in_other_thread(fn):
    out, errors = [], []

    def work():
        try:
            out.append(fn())
        except BaseException as exc:   # reported by the caller
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors, errors
    return out[0]


def _check_usable(m):
    """The lock is free (another thread is not refused), no cell is busy, and
    another thread computes exactly the reference gradient."""
    def step():
        m.load_state_dict(P0)
        m.zero_grad()
        m.forward(X)
        m.backward(DY)
        return m.flat_grads.copy()

    np.testing.assert_array_equal(_in_other_thread(step), FULL)


def _sweep(m, prepare, op, check=None, max_points=None):
    prepare()
    op()          # first-call work (caches filled once) is not part of the sweep
    prepare()
    n = _points(op)
    ks = range(1, n + 1)
    if max_points and n > max_points:
        ks = sorted(set(np.linspace(1, n, max_points).astype(int)))
    hits = 0
    for k in ks:
        prepare()
        hit = _interrupted(op, k)
        hits += hit
        if check is not None:
            check(hit, k)
        _check_usable(m)
    assert hits >= 0.9 * len(ks)   # the points of one run may differ a little from the next
    return hits


def test_interrupted_forward_releases_the_lock_and_leaves_nothing_to_differentiate():
    m = _model()

    def check(hit, k):
        m.zero_grad()
        try:
            m.backward(DY)
        except RuntimeError as exc:
            assert "forward first" in str(exc), (k, exc)
        else:   # the interrupt came after forward had finished
            np.testing.assert_array_equal(m.flat_grads, FULL, err_msg=f"point {k}")

    _sweep(m, lambda: None, lambda: m.forward(X), check)


def test_interrupted_backward_releases_the_lock_and_leaves_the_gradients_untouched():
    m = _model()

    def prepare():
        m.zero_grad()
        m.forward(X)

    def check(hit, k):
        g = m.flat_grads
        assert np.array_equal(g, FULL) or not g.any(), f"point {k}: half-added gradients"

    _sweep(m, prepare, lambda: m.backward(DY), check)


def test_interrupted_layer_calls_release_the_lock():
    """The same for a layer on its own (its lock is not a container's)."""
    layer = rnnpy.GRU(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=1)
    dout = np.ones((4, 6, 8))
    for op in (lambda: layer.forward(X), lambda: (layer.forward(X), layer.backward(dout))):
        for k in range(1, _points(op) + 1):
            _interrupted(op, k)
            _in_other_thread(lambda: (layer.forward(X), layer.backward(dout)))


def _locked_calls(m, tmp_path):
    opt = optim.Adam(m, lr=1e-3)
    path = os.fspath(tmp_path / "m.npz")
    return {
        "zero_grad": (m.zero_grad, None),
        "state_dict": (m.state_dict, None),
        "load_state_dict": (lambda: m.load_state_dict(P0), None),
        "rng_state": (lambda: m.set_rng_state(m.rng_state()), None),
        "train_eval": (lambda: (m.eval(), m.train()), None),
        "save": (lambda: rnnpy.save(m, path), 150),
        "optimizer_step": (opt.step, None),
        "optimizer_zero_grad": (opt.zero_grad, None),
        "optimizer_state_dict": (lambda: opt.load_state_dict(opt.state_dict()), None),
        "clip_grad_norm": (lambda: optim.clip_grad_norm(m, 0.1), None),
        "clip_grad_value": (lambda: optim.clip_grad_value(m, 0.1), None),
        "predict": (lambda: rnnpy.predict(m, X, batch_size=2), None),
        "evaluate": (lambda: rnnpy.evaluate(m, (X, Y), loss="cross_entropy"), 150),
        "gradcheck": (lambda: rnnpy.gradcheck(m, X, max_checks=2), 150),
        "fit": (lambda: rnnpy.fit(m, (X, Y), loss="cross_entropy", optimizer=opt, epochs=1,
                                  batch_size=2, progress=False), 150),
    }


@pytest.mark.parametrize("name", ["zero_grad", "state_dict", "load_state_dict", "rng_state",
                                  "train_eval", "save", "optimizer_step", "optimizer_zero_grad",
                                  "optimizer_state_dict", "clip_grad_norm", "clip_grad_value",
                                  "predict", "evaluate", "gradcheck", "fit"])
def test_every_locked_call_releases_the_lock_when_interrupted(name, tmp_path):
    m = _model()
    op, max_points = _locked_calls(m, tmp_path)[name]

    def prepare():
        m.load_state_dict(P0)
        m.forward(X)
        m.backward(DY)

    _sweep(m, prepare, op, max_points=max_points)


def test_interrupted_gradcheck_puts_the_perturbed_parameter_back():
    m = _model()
    op = lambda: rnnpy.gradcheck(m, X, max_checks=3)  # noqa: E731
    n = _points(op)
    for k in np.linspace(1, n, 120).astype(int):
        m.load_state_dict(P0)
        _interrupted(op, int(k))
        state = m.state_dict()
        for name, want in P0.items():
            np.testing.assert_array_equal(state[name], want, err_msg=f"point {k}: {name}")


# -- real signals ---------------------------------------------------------------------
@pytest.fixture
def alarm():
    """setitimer(delay) raises KeyboardInterrupt in the main thread after delay s."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    if not hasattr(signal, "setitimer"):
        pytest.skip("no setitimer on this platform")

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        yield lambda delay: signal.setitimer(signal.ITIMER_REAL, delay)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_until_interrupted(arm, delay, op, repeats=3):
    try:
        arm(delay)
        for _ in range(repeats):
            op()
        arm(0)
    except KeyboardInterrupt:
        pass
    finally:
        arm(0)


def test_timer_interrupts_swept_over_forward_and_backward(alarm):
    m = rnnpy.Sequential(rnnpy.LSTM(8, 24, num_layers=2, dtype="float64", seed=3),
                         rnnpy.LastStep(dtype="float64"), rnnpy.Dense(24, 3, dtype="float64"))
    x = np.random.default_rng(4).standard_normal((8, 30, 8))
    dy = np.ones((8, 3))

    def train_step():
        m.zero_grad()
        m.forward(x)
        m.backward(dy)

    for k in range(300):
        _run_until_interrupted(alarm, 1e-5 + 2e-5 * k, train_step)
        _in_other_thread(train_step)   # refused if the interrupt left the lock held


def test_interrupt_main_during_cell_calls_leaves_the_cell_free():
    """The C cells hold their busy flag for the whole call; an interrupt
    raised when the kernel returns still clears it."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    cell = _core.LSTMCell(8, 32, dtype="float64")
    x = np.random.default_rng(5).standard_normal((16, 40, 8))
    for k in range(60):
        timer = threading.Timer(1e-4 * k, _thread.interrupt_main)
        try:
            timer.start()
            for _ in range(3):
                out, _, _ = cell.forward(x)
                cell.backward(np.ones_like(out))
            timer.join()
        except KeyboardInterrupt:
            pass
        finally:
            timer.cancel()
            timer.join()
        _in_other_thread(lambda: cell.backward(np.ones_like(cell.forward(x)[0])))



def test_interrupted_load_state_dict_loads_all_or_nothing():
    """An interrupt at each pass of the copy loop (a loop's back-edge is where
    CPython delivers signals) leaves the old parameters or all the new ones."""
    m = _model()
    new = {k: v + 1.0 for k, v in P0.items()}
    fn = inspect.unwrap(type(m).load_state_dict)
    code = fn.__code__
    lines, start = inspect.getsourcelines(fn)
    copy_line = next(start + i for i, text in enumerate(lines) if "dst[...] = checked" in text)
    interrupted = 0
    for k in range(1, len(P0) + 2):
        m.load_state_dict(P0)
        count = [0]

        def local(frame, event, arg):
            if event == "line" and frame.f_lineno == copy_line:
                count[0] += 1
                if count[0] == k:
                    raise KeyboardInterrupt
            return local

        sys.settrace(lambda frame, event, arg: local if frame.f_code is code else None)
        try:
            m.load_state_dict(new)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.settrace(None)
        got = m.state_dict()
        assert all(np.array_equal(got[n], P0[n]) for n in got) or \
            all(np.array_equal(got[n], new[n]) for n in got), f"pass {k}: a partial load"
    assert interrupted == len(P0)
