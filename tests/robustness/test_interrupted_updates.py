"""An optimizer step and gradient clipping are all or nothing: an interrupt
(_thread.interrupt_main, as Ctrl-C) or any other exception at any point leaves
the parameters, the optimizer's state and its step count as before the call or
all as after it, never a mix (moments advanced, parameters not)."""
import _thread
import sys
import threading

import numpy as np
import pytest

import rnnpy
from rnnpy import optim

OPTIMIZERS = {
    "SGD": lambda m: optim.SGD(m, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "SGD_nesterov": lambda m: optim.SGD(m, lr=0.1, momentum=0.9, nesterov=True),
    "RMSprop": lambda m: optim.RMSprop(m, lr=1e-2, momentum=0.5, centered=True, weight_decay=1e-3),
    "Adam": lambda m: optim.Adam(m, lr=1e-2, weight_decay=1e-3),
    "Adam_amsgrad": lambda m: optim.Adam(m, lr=1e-2, amsgrad=True),
    "AdamW": lambda m: optim.AdamW(m, lr=1e-2),
}


def _model():
    # big enough that one step spans many interpreter checks
    m = rnnpy.Dense(600, 500, dtype="float64", seed=0)
    m.flat_grads = np.random.default_rng(1).standard_normal(m.num_params)
    return m


def _snapshot(m, opt=None):
    snap = {"p": m.flat_params.copy(), "g": m.flat_grads.copy()}
    if opt is not None:
        snap.update({"steps": opt.steps, **{k: v.copy() for k, v in opt.state.items()}})
    return snap


def _same(a, b):
    return a.keys() == b.keys() and all(
        a[k] == b[k] if k == "steps" else np.array_equal(a[k], b[k]) for k in a)


def _interrupt_main_sweep(prepare, op, delays):
    """Runs op with interrupt_main fired after each delay; returns how many
    calls the interrupt stopped (the others it hit before or after)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    outcomes = []
    for delay in delays:
        state = prepare()
        timer = threading.Timer(delay, _thread.interrupt_main)
        stopped = False
        try:
            timer.start()
            op(state)
            timer.join()   # an interrupt after op lands here, outside op
        except KeyboardInterrupt:
            stopped = True
        finally:
            timer.cancel()
            timer.join()
        outcomes.append((stopped, state))
    return outcomes


def _delays():
    return [2e-5 * k for k in range(60)]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_interrupted_step_is_all_or_nothing(name):
    def fresh():
        m = _model()
        opt = OPTIMIZERS[name](m)
        opt.step()   # a second step has every state vector in use
        return m, opt

    m, opt = fresh()
    before = _snapshot(m, opt)
    opt.step()
    after = _snapshot(m, opt)

    def prepare():
        m, opt = fresh()
        return m, opt

    outcomes = _interrupt_main_sweep(prepare, lambda s: s[1].step(), _delays())
    for i, (stopped, (m, opt)) in enumerate(outcomes):
        got = _snapshot(m, opt)
        assert _same(got, before) or _same(got, after), \
            f"delay {i}: interrupted step left steps={got['steps']} and a mix of old and new"
    assert sum(s for s, _ in outcomes) >= 1


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_interrupted_clipping_is_all_or_nothing(clip):
    fn = (lambda m: optim.clip_grad_norm(m, 0.5)) if clip == "norm" else \
        (lambda m: optim.clip_grad_value(m, 0.01))
    m = _model()
    before = _snapshot(m)
    fn(m)
    after = _snapshot(m)
    outcomes = _interrupt_main_sweep(_model, fn, _delays())
    for i, (stopped, m) in enumerate(outcomes):
        got = _snapshot(m)
        assert _same(got, before) or _same(got, after), f"delay {i}: half-clipped gradients"


class _Named:
    """A module without a flat buffer: params and grads as separate arrays, so
    an update walks several pairs."""

    def __init__(self):
        rng = np.random.default_rng(3)
        self.params = {f"w{i}": rng.standard_normal((50, 40)) for i in range(6)}
        self.grads = {k: rng.standard_normal(v.shape) for k, v in self.params.items()}

    def flat(self):
        return np.concatenate([v.ravel() for v in self.params.values()])

    def flat_g(self):
        return np.concatenate([v.ravel() for v in self.grads.values()])


class _RaiseAt:
    """Profile function raising KeyboardInterrupt at the k-th call or return."""

    def __init__(self, k):
        self.k, self.n, self.fired = k, 0, False

    def __call__(self, frame, event, arg):
        if event in ("call", "return", "c_return"):
            self.n += 1
            if self.n == self.k:
                self.fired = True
                raise KeyboardInterrupt


def _profile_sweep(make, op, snap):
    """Raises at every call/return point of op (any exception, not only a signal)."""
    obj = make()
    before = snap(obj)
    op(obj)
    after = snap(obj)
    k, fired = 0, True
    while fired:
        k += 1
        obj = make()
        inject = _RaiseAt(k)
        sys.setprofile(inject)
        try:
            op(obj)
        except KeyboardInterrupt:
            pass
        finally:
            sys.setprofile(None)
        fired = inject.fired
        got = snap(obj)
        assert _same(got, before) or _same(got, after), f"point {k}: a partial update"
    assert k > 5


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_exception_at_any_point_of_a_step_on_named_arrays(name):
    def make():
        mod = _Named()
        opt = OPTIMIZERS[name](mod)
        opt.step()
        return opt

    def snap(opt):
        return {"p": opt.module.flat(), "steps": opt.steps,
                **{k: v.copy() for k, v in opt.state.items()}}

    _profile_sweep(make, lambda opt: opt.step(), snap)


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_exception_at_any_point_of_clipping_named_arrays(clip):
    fn = (lambda m: optim.clip_grad_norm(m, 0.5)) if clip == "norm" else \
        (lambda m: optim.clip_grad_value(m, 0.01))
    _profile_sweep(_Named, fn, lambda m: {"g": m.flat_g()})


def test_interrupt_during_a_step_is_delivered_after_it():
    """Held back, not lost: the KeyboardInterrupt still reaches the caller,
    and the SIGINT handler is the one installed before."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    import signal

    m = _model()
    opt = optim.Adam(m)
    handler = signal.getsignal(signal.SIGINT)
    def interrupted_step():
        _thread.interrupt_main()
        for _ in range(1000):   # the interpreter checks for signals on loops' back edges
            pass
        opt._step()

    with pytest.raises(KeyboardInterrupt):
        optim.uninterrupted(interrupted_step)
    assert opt.steps == 1
    assert signal.getsignal(signal.SIGINT) is handler


def test_steps_in_threads_take_no_signal_handler():
    m = _model()
    opt = optim.Adam(m)
    errors = []

    def work():
        try:
            opt.step()
        except BaseException as exc:   # reported below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors and opt.steps == 1
