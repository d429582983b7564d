"""Threads: the kernels release the GIL, two models trained in two threads
at once give exactly what training them one after the other gives, and one
model shared between threads never silently mixes two calls.

The policy (rnnpy._core's docstring): a C cell runs one call at a time; a
second thread entering a busy cell gets RuntimeError("... in use by another
thread ..."), never a corrupted cache. tests/kernels/test_core_types.py checks that
for single cells; this file checks whole layers and training.
"""
import threading

import numpy as np
import pytest
from helpers import run_threads

import rnnpy
from rnnpy import optim


def _task(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 12, 5))
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (x[:, -1, 1] > 0)
    return x, y


def _model(seed):
    return rnnpy.Sequential(
        rnnpy.LSTM(5, 24, num_layers=2, dropout=0.2, dtype="float64", seed=seed),
        rnnpy.Dropout(0.1, dtype="float64", seed=seed + 1),
        rnnpy.GRU(24, 16, bidirectional=True, dtype="float64", seed=seed + 2),
        rnnpy.LastStep(dtype="float64"),
        rnnpy.Dense(32, 3, dtype="float64", seed=seed + 3))


def _train(model, seed):
    x, y = _task(seed)
    return rnnpy.fit(model, (x, y), loss="cross_entropy", optimizer=optim.Adam(model, lr=5e-3),
                     epochs=3, batch_size=16, seed=seed, clip_norm=1.0, progress=False)


def test_two_models_in_two_threads_match_sequential_training():
    seeds = (3, 40)
    want = []
    for s in seeds:
        m = _model(s)
        want.append((_train(m, s)["loss"], m.flat_params.copy()))

    got = [None, None]
    barrier = threading.Barrier(2)

    def work(k):
        m = _model(seeds[k])
        barrier.wait()
        got[k] = (_train(m, seeds[k])["loss"], m.flat_params.copy())

    run_threads(work, [(0,), (1,)])
    for k in range(2):
        assert got[k][0] == want[k][0]                    # bit-identical losses
        np.testing.assert_array_equal(got[k][1], want[k][1])


def test_shared_layer_forward_is_never_corrupted():
    """Two threads hammer one layer: each forward either returns exactly the
    sequential result for its own input or raises the in-use RuntimeError."""
    layer = rnnpy.LSTM(8, 32, num_layers=3, dtype="float64", seed=5)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((8, 50, 8)), rng.standard_normal((3, 20, 8))]
    want = [layer.forward(x)[0] for x in xs]
    counts = {"ok": 0, "busy": 0}
    bad = []
    lock = threading.Lock()

    def work(k):
        for _ in range(40):
            try:
                out = layer.forward(xs[k])[0]
            except RuntimeError as exc:
                with lock:
                    counts["busy"] += 1
                if "in use by another thread" not in str(exc):
                    bad.append(exc)
                continue
            with lock:
                counts["ok"] += 1
            if not np.array_equal(out, want[k]):
                bad.append(f"thread {k}: wrong output")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad, bad[:3]
    assert counts["ok"] >= 2
    np.testing.assert_array_equal(layer.forward(xs[0])[0], want[0])   # still usable


class _Gate:
    """Wraps a cell so that one chosen thread pauses inside forward."""

    def __init__(self, cell, pause_thread):
        self._cell, self._pause_thread = cell, pause_thread
        self.entered, self.release = threading.Event(), threading.Event()

    def forward(self, *args, **kwargs):
        if threading.current_thread() is self._pause_thread:
            self.entered.set()
            self.release.wait(10)
        return self._cell.forward(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cell, name)


def test_shared_layer_interleaved_forward_then_backward_is_one_forward_or_an_error():
    layer = rnnpy.GRU(4, 6, num_layers=2, dtype="float64", seed=7)
    rng = np.random.default_rng(8)
    xa, xb = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 5, 4))
    dout = rng.standard_normal((3, 5, 6))

    def grads_of(x):
        ref = rnnpy.GRU(4, 6, num_layers=2, dtype="float64", seed=7)
        ref.forward(x)
        dx, _ = ref.backward(dout)
        return dx, ref.flat_grads.copy()

    allowed = [grads_of(xa), grads_of(xb)]
    errors = []

    def thread_a():
        try:
            layer.forward(xa)
        except RuntimeError as exc:
            errors.append(exc)

    ta = threading.Thread(target=thread_a)
    gate = _Gate(layer._cells[1], ta)
    layer._cells[1] = gate
    ta.start()
    assert gate.entered.wait(10)          # A has run layer 0 and waits before layer 1
    try:
        layer.forward(xb)                 # B runs the whole stack meanwhile
    except RuntimeError as exc:
        errors.append(exc)
    gate.release.set()
    ta.join()
    layer._cells[1] = gate._cell
    # the documented policy: the second caller is refused while the first runs
    assert len(errors) == 1 and "in use by another thread" in str(errors[0])
    layer.zero_grad()
    dx, _ = layer.backward(dout)
    assert any(np.allclose(dx, a_dx) and np.allclose(layer.flat_grads, a_g)
               for a_dx, a_g in allowed), "backward mixes two forwards"
