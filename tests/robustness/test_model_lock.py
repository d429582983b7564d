"""One model, several threads: every call that reads or writes parameters,
gradients, random state or an optimizer's state runs whole, before or after
the call in progress, never inside it (rnnpy.module.ModelLock).

Each test races two threads many times and checks that what one thread saw
is a state that existed between two calls of the other: gradients full or
zero, a saved file equal to the parameters after some optimizer step, an
output equal to one of the loaded parameter sets. They fail on a model whose
calls other than forward and backward take no lock.
"""
import hashlib
import os
import threading

import numpy as np
import pytest
from helpers import poll_while

import rnnpy
from rnnpy import optim

RUNS = 30


def _big_model(seed=0):
    # large enough that a kernel or an update runs long with the GIL released
    return rnnpy.Sequential(rnnpy.LSTM(16, 96, num_layers=2, dtype="float64", seed=seed),
                            rnnpy.LastStep(dtype="float64"),
                            rnnpy.Dense(96, 4, dtype="float64", seed=seed + 1))


def _race(first, second, start_second_after=None):
    """Runs first() in a thread and second() in this one once the thread has
    started first (start_second_after: an Event first sets when it is inside)."""
    errors = []
    started = start_second_after or threading.Event()

    def work():
        try:
            if start_second_after is None:
                started.set()
            first()
        except BaseException as exc:   # reported below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    started.wait(10)
    try:
        second()
    finally:
        t.join()
    assert not errors, errors


def _with_full_gradient(model_seed, data_seed):
    """A big model after one forward and backward on random data: (model, x,
    dy, a copy of the gradient one backward gives)."""
    model = _big_model(seed=model_seed)
    rng = np.random.default_rng(data_seed)
    x = rng.standard_normal((32, 60, 16))
    dy = rng.standard_normal((32, 4))
    model.forward(x)
    model.backward(dy)
    return model, x, dy, model.flat_grads.copy()


def test_zero_grad_racing_backward_leaves_full_or_zero_gradients():
    model, x, dy, full = _with_full_gradient(model_seed=0, data_seed=1)
    assert np.abs(full).max() > 0
    seen = {"full": 0, "zero": 0}
    for run in range(RUNS):
        model.zero_grad()
        model.forward(x)
        inside = threading.Event()
        model.modules[0]._cells[1] = _wrap_first(model.modules[0]._cells[1], inside)
        try:
            _race(lambda: model.backward(dy), model.zero_grad, inside)
        finally:
            model.modules[0]._cells[1] = model.modules[0]._cells[1]._cell
        g = model.flat_grads
        if np.array_equal(g, full):
            seen["full"] += 1
        elif not g.any():
            seen["zero"] += 1
        else:
            raise AssertionError(f"run {run}: gradients neither full nor zero "
                                 f"({np.count_nonzero(g)} of {g.size} set)")
    assert seen["full"] + seen["zero"] == RUNS


class _wrap_first:
    """A cell whose backward first signals that the layer's backward is running."""

    def __init__(self, cell, event):
        self._cell, self._event = cell, event

    def backward(self, *args):
        self._event.set()
        return self._cell.backward(*args)

    def __getattr__(self, name):
        return getattr(self._cell, name)


def _digest(a):
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def _sgd_states(model, grads, steps, lr=1e-4, momentum=0.9):
    """{digest of the parameters after k SGD steps with fixed gradients: k}, k = 0..steps."""
    model.flat_grads[...] = grads
    opt = optim.SGD(model, lr=lr, momentum=momentum)
    states = {_digest(model.flat_params): 0}
    for k in range(steps):
        opt.step()
        states[_digest(model.flat_params)] = k + 1
    return states


def _index_of(states, params):
    for k, s in enumerate(states):
        if np.array_equal(s, params):
            return k
    return None


def test_save_racing_optimizer_steps_writes_a_state_between_two_steps(tmp_path):
    steps = 1500
    grads = np.random.default_rng(2).standard_normal(_big_model().num_params)
    states = _sgd_states(_big_model(), grads, steps)
    assert len(states) == steps + 1
    model = _big_model()
    model.flat_grads[...] = grads
    opt = optim.SGD(model, lr=1e-4, momentum=0.9)
    path = os.fspath(tmp_path / "m.npz")
    found = []

    def train():
        for _ in range(steps):
            opt.step()

    def monitor():
        while not done.is_set():
            rnnpy.save(model, path)
            loaded = rnnpy.load(path)
            k = states.get(_digest(loaded.flat_params))
            assert k is not None, "the saved file mixes several optimizer steps"
            found.append(k)

    done = threading.Event()
    t = threading.Thread(target=lambda: (train(), done.set()))
    t.start()
    try:
        monitor()
    finally:
        done.set()
        t.join()
    assert found
    assert states.get(_digest(model.flat_params)) == steps


@pytest.mark.parametrize("reader", ["state_dict", "optimizer_state_dict"])
def test_state_reads_racing_optimizer_steps_see_one_step(reader):
    steps = 80
    rng = np.random.default_rng(3)
    grads = rng.standard_normal(_big_model().num_params)
    ref = _big_model()
    ref.flat_grads[...] = grads
    ref_opt = optim.Adam(ref, lr=1e-3)
    moments = [dict(ref_opt.state_dict(), params=ref.flat_params.copy())]
    for _ in range(steps):
        ref_opt.step()
        moments.append(dict(ref_opt.state_dict(), params=ref.flat_params.copy()))

    model = _big_model()
    model.flat_grads[...] = grads
    opt = optim.Adam(model, lr=1e-3)
    done = threading.Event()
    reads = 0

    def train():
        for _ in range(steps):
            opt.step()
        done.set()

    t = threading.Thread(target=train)
    t.start()
    try:
        while not done.is_set():
            if reader == "state_dict":
                sd = model.state_dict()
                flat = np.concatenate([sd[k].ravel() for k, _ in model.param_spec()])
                assert _index_of([m["params"] for m in moments], flat) is not None, \
                    "state_dict() mixes several optimizer steps"
            else:
                sd = opt.state_dict()
                want = moments[sd["step"]]
                for k in ("exp_avg", "exp_avg_sq"):
                    assert np.array_equal(sd[k], want[k]), \
                        f"optimizer state_dict(): {k} is not that of step {sd['step']}"
            reads += 1
    finally:
        done.set()
        t.join()
    assert reads > 0


def forward_racing(model, x, want, writer, stop, what):
    """Runs forward RUNS times while writer() runs in a thread until stop is
    set; every output must be one of `want` (a whole state, never a mix)."""
    t = threading.Thread(target=writer)
    t.start()
    try:
        for run in range(RUNS):
            out = model.forward(x)[0]
            assert any(np.array_equal(out, w) for w in want), \
                f"run {run}: forward ran on parameters {what}"
    finally:
        stop.set()
        t.join()


def test_load_state_dict_racing_forward_gives_one_state_or_the_other():
    model = _big_model(seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 80, 16))
    sa = model.state_dict()
    sb = {k: v + 0.05 for k, v in sa.items()}
    want = []
    for s in (sa, sb):
        model.load_state_dict(s)
        want.append(model.forward(x)[0])
    stop = threading.Event()

    def loader():
        k = 0
        while not stop.is_set():
            model.load_state_dict((sa, sb)[k % 2])
            k += 1

    forward_racing(model, x, want, loader, stop, "being loaded")


def test_clip_racing_backward_sees_the_whole_gradient():
    """clip_grad_norm in another thread scales the gradients either before
    backward added into them or after: never half of them."""
    model, x, dy, full = _with_full_gradient(model_seed=6, data_seed=7)
    norm = float(np.linalg.norm(full))
    for run in range(RUNS):
        model.zero_grad()
        model.flat_grads[...] = full          # start from G; backward makes it 2G
        model.forward(x)
        inside = threading.Event()
        cells = model.modules[0]._cells
        cells[1] = _wrap_first(cells[1], inside)
        try:
            _race(lambda: model.backward(dy), lambda: optim.clip_grad_norm(model, norm / 4),
                  inside)
        finally:
            cells[1] = cells[1]._cell
        g = model.flat_grads
        # clip before backward: G*c + G; after: 2G*c' -- both parallel to G
        coef = np.dot(g, full) / np.dot(full, full)
        np.testing.assert_allclose(g, coef * full, rtol=1e-9, atol=1e-12,
                                   err_msg=f"run {run}: clipping ran inside backward")


def _dropout_model(seed):
    return rnnpy.Sequential(rnnpy.GRU(6, 48, dtype="float64", seed=seed),
                            rnnpy.Dropout(0.3, dtype="float64", seed=seed + 1),
                            rnnpy.LastStep(dtype="float64"),
                            rnnpy.Dense(48, 3, dtype="float64", seed=seed + 2))


def test_fit_with_a_monitoring_thread_trains_exactly_as_alone(tmp_path):
    """save() and predict() from another thread during fit never change what
    fit computes (no eval mode or foreign forward inside a step) and each
    saved file holds the parameters after some optimizer step."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((96, 30, 6))
    y = rng.integers(0, 3, 96)

    class Recording(optim.Adam):
        def step(self):
            super().step()
            self.seen.append(self.module.flat_params.copy())

    def train(model, opt):
        return rnnpy.fit(model, (x, y), loss="cross_entropy", optimizer=opt, epochs=3,
                         batch_size=8, seed=1, progress=False)

    ref = _dropout_model(9)
    ref_opt = Recording(ref, lr=1e-2)
    ref_opt.seen = [ref.flat_params.copy()]
    want = train(ref, ref_opt)["loss"]

    model = _dropout_model(9)
    opt = optim.Adam(model, lr=1e-2)
    path = os.fspath(tmp_path / "m.npz")
    got = {}

    def work():
        got["loss"] = train(model, opt)["loss"]

    def save_and_load():
        rnnpy.predict(model, x[:4])
        rnnpy.save(model, path)
        k = _index_of(ref_opt.seen, rnnpy.load(path).flat_params)
        assert k is not None, "a save taken during fit holds no state between two steps"

    saves = poll_while(work, save_and_load)
    assert got["loss"] == want
    np.testing.assert_array_equal(model.flat_params, ref.flat_params)
    assert saves > 0


def test_children_share_the_containers_lock():
    """A layer inside a Sequential locks the whole model: zero_grad on the
    Sequential waits for the layer's own backward."""
    model = _big_model(seed=10)
    layer = model.modules[0]
    assert layer._call_lock is model._call_lock
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 60, 16))
    dout = rng.standard_normal((32, 60, 96))
    layer.forward(x)
    layer.backward(dout)
    full = model.flat_grads.copy()
    for run in range(RUNS):
        model.zero_grad()
        layer.forward(x)
        inside = threading.Event()
        layer._cells[1] = _wrap_first(layer._cells[1], inside)
        try:
            _race(lambda: layer.backward(dout), model.zero_grad, inside)
        finally:
            layer._cells[1] = layer._cells[1]._cell
        g = model.flat_grads
        assert np.array_equal(g, full) or not g.any(), f"run {run}: torn gradients"


def test_forward_in_two_threads_is_still_refused_while_one_runs():
    """The rule for forward/backward is unchanged: a second thread is refused
    with the in-use error while a forward runs, never blocked into it."""
    model = _big_model(seed=12)
    x = np.random.default_rng(13).standard_normal((8, 40, 16))
    inside, release = threading.Event(), threading.Event()
    cells = model.modules[0]._cells

    class Hold:
        def __init__(self, cell):
            self._cell = cell

        def forward(self, *a, **k):
            inside.set()
            release.wait(10)
            return self._cell.forward(*a, **k)

        def __getattr__(self, name):
            return getattr(self._cell, name)

    cells[0] = Hold(cells[0])
    errors = []
    t = threading.Thread(target=lambda: model.forward(x))
    t.start()
    try:
        assert inside.wait(10)
        cells[0] = cells[0]._cell
        for call in (lambda: model.forward(x), lambda: model.modules[2].forward(np.ones((2, 96)))):
            with pytest.raises(RuntimeError, match="in use by another thread"):
                call()
    finally:
        release.set()
        t.join()
    assert not errors
    model.forward(x)   # usable afterwards


def test_reads_during_gradcheck_never_see_a_perturbed_parameter():
    model = rnnpy.Sequential(rnnpy.GRU(3, 8, num_layers=2, dtype="float64", seed=14),
                             rnnpy.LastStep(dtype="float64"), rnnpy.Dense(8, 2, dtype="float64"))
    x = np.random.default_rng(15).standard_normal((4, 20, 3))
    want = model.state_dict()

    def read():
        for name, value in model.state_dict().items():
            assert np.array_equal(value, want[name]), f"{name} read while gradcheck perturbed it"

    reads = poll_while(lambda: rnnpy.gradcheck(model, x, max_checks=15), read)
    assert reads > 0


def test_rng_state_read_during_forward_is_one_between_two_forwards():
    """Dropout draws several masks per forward; rng_state() from another
    thread gives the generators' state between two forwards, never midway."""
    def model():
        return rnnpy.Sequential(rnnpy.LSTM(8, 64, num_layers=3, dropout=0.3, dtype="float64",
                                           seed=16),
                                rnnpy.Dropout(0.2, dtype="float64", seed=17),
                                rnnpy.LastStep(dtype="float64"))

    x = np.random.default_rng(18).standard_normal((16, 40, 8))
    steps = 40
    ref = model()
    between = [repr(ref.rng_state())]
    for _ in range(steps):
        ref.forward(x)
        between.append(repr(ref.rng_state()))
    allowed = set(between)

    m = model()
    done = threading.Event()

    def run():
        try:
            for _ in range(steps):
                m.forward(x)
        finally:
            done.set()

    t = threading.Thread(target=run)
    t.start()
    try:
        while not done.is_set():
            assert repr(m.rng_state()) in allowed, "rng_state() read in the middle of a forward"
    finally:
        done.set()
        t.join()
    assert repr(m.rng_state()) == between[-1]


def test_locked_functions_take_the_model_by_name(tmp_path):
    model = _big_model(seed=19)
    x = np.random.default_rng(20).standard_normal((2, 5, 16))
    out = rnnpy.predict(model=model, x=x)
    assert out.shape == (2, 4)
    rnnpy.save(model=model, path=os.fspath(tmp_path / "m.npz"))
    np.testing.assert_array_equal(rnnpy.load(tmp_path / "m.npz").flat_params, model.flat_params)
    model.forward(x)
    model.backward(np.ones((2, 4)))
    assert optim.clip_grad_norm(module=model, max_norm=1e-3) > 1e-3
    optim.clip_grad_value(module=model, clip_value=1e-4)
    assert np.abs(model.flat_grads).max() <= 1e-4


@pytest.mark.parametrize("how", ["flat_params", "params_update", "params_item"])
def test_assignments_racing_forward_give_one_state_or_the_other(how):
    """Assigning to flat_params, params (update) or params[name] copies into
    the buffer under the model's lock: a forward in another thread runs on the
    parameters before or after the copy, never on half of them."""
    model = _big_model(seed=8)
    x = np.random.default_rng(9).standard_normal((16, 80, 16))
    fa = model.flat_params.copy()
    fb = fa + 0.05
    name = "0.weight_hh_l1"      # one large parameter for the per-name form
    states = []
    want = []
    for flat in (fa, fb):
        model.flat_params = flat
        states.append((flat.copy(), {k: v.copy() for k, v in model.params.items()}))
        want.append(model.forward(x)[0])
    if how == "params_item":     # only one name changes: the two states differ in it alone
        model.flat_params = fa
        wa = model.forward(x)[0]
        model.params[name] = states[1][1][name]
        want = [wa, model.forward(x)[0]]
    stop = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            flat, named = states[k % 2]
            if how == "flat_params":
                model.flat_params = flat
            elif how == "params_update":
                model.params.update(named)
            else:
                model.params[name] = named[name]
            k += 1

    model.flat_params = fa
    forward_racing(model, x, want, writer, stop, f"being assigned ({how})")
