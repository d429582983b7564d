"""Leaks: forward/backward, the error paths, save/load and training steps run
thousands of times with flat memory and reference counts.

Each loop is measured after a warm-up: traced memory (tracemalloc sees
Python objects, NumPy's array data and the C core's PyMem_RawMalloc
buffers), the process's resident set size, the number of live objects the
garbage collector tracks, and the reference counts of the arguments, the
dtypes and the types involved. A leak of one small buffer or one reference
per call grows these by the iteration count; the limits leave room only for
noise. test_the_measure_sees_small_leaks checks that the limits catch such
leaks.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import rnnpy
from rnnpy import _core, optim

TOTAL_ITERATIONS = []      # (name, iterations), reported at the end of the run


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn, iterations, watch=(), warmup=50):
    """Runs fn() `iterations` times; returns (traced bytes, rss bytes, objects,
    {i: refcount growth of watch[i]}) grown between after warm-up and the end."""
    for _ in range(warmup):
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(warmup):
            fn()
        gc.collect()
        refs0 = [sys.getrefcount(o) for o in watch]
        objs0 = len(gc.get_objects())
        mem0 = tracemalloc.get_traced_memory()[0]
        rss0 = _rss_bytes()
        for _ in range(iterations):
            fn()
        gc.collect()
        mem1 = tracemalloc.get_traced_memory()[0]
        rss1 = _rss_bytes()
        objs1 = len(gc.get_objects())
        refs1 = [sys.getrefcount(o) for o in watch]
    finally:
        tracemalloc.stop()
    return mem1 - mem0, rss1 - rss0, objs1 - objs0, {i: b - a for i, (a, b) in enumerate(zip(refs0, refs1))}


def assert_flat(name, fn, iterations, watch=(), traced_limit=48 * 1024, rss_limit=8 << 20):
    traced, rss, objs, refs = measure(fn, iterations, watch)
    TOTAL_ITERATIONS.append((name, iterations))
    detail = (f"{name}: after {iterations} iterations traced memory grew {traced} B, "
              f"RSS {rss} B, tracked objects {objs}, refcounts {refs}")
    assert traced < traced_limit, detail
    assert rss < rss_limit, detail
    assert objs < iterations // 20, detail
    assert all(abs(d) < max(3, iterations // 100) for d in refs.values()), detail


# ------------------------------------------------------------------ the measure

def test_the_measure_sees_small_leaks():
    """A 100-byte buffer, or one reference, kept per call is caught."""
    kept = []
    with pytest.raises(AssertionError, match="traced memory grew"):
        assert_flat("bytes", lambda: kept.append(bytes(100)), 2000)
    kept.clear()
    victim = np.zeros(3)
    with pytest.raises(AssertionError, match="refcounts"):
        assert_flat("refs", lambda: kept.append(victim), 2000, watch=[victim],
                    traced_limit=1 << 30)
    kept.clear()
    TOTAL_ITERATIONS.clear()


# ------------------------------------------------------------------- the C types

CELLS = {
    "rnn": lambda I, H, **kw: _core.RNNCell(I, H, nonlinearity="relu", **kw),
    "lstm": lambda I, H, **kw: _core.LSTMCell(I, H, peephole=True, **kw),
    "gru": lambda I, H, **kw: _core.GRUCell(I, H, **kw),
}
I, H, T, B = 3, 5, 6, 4


def _cell(kind, dtype="float64"):
    cell = CELLS[kind](I, H, dtype=dtype)
    cell.params[...] = np.random.default_rng(0).uniform(-0.5, 0.5, cell.num_params)
    return cell


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_forward_backward(kind, dtype):
    cell = _cell(kind, dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I))            # float64 into a float32 cell: a cast each call
    h0 = rng.standard_normal((B, H)).astype(dtype)
    lengths = np.array([6, 0, 3, 5])
    dout = rng.standard_normal((B, T, H)).astype(dtype)
    lstm = kind == "lstm"

    def step():
        if lstm:
            cell.forward(x, h0, h0, lengths, batch_first=True, reverse=True)
            cell.backward(dout, h0, h0)
        else:
            cell.forward(x, h0, lengths, batch_first=True, reverse=True)
            cell.backward(dout, h0)
        cell.zero_grad()

    assert_flat(f"{kind} {dtype} forward/backward", step, 3000,
                watch=[x, h0, lengths, dout, cell.params, cell.grads, type(cell)])


def _raises(fn, exc):
    def call():
        try:
            fn()
        except exc:
            return
        raise AssertionError(f"{fn} did not raise {exc}")
    return call


def _bad_cell_calls(kind):
    cell = _cell(kind)
    x = np.ones((T, B, I))
    nan = x.copy()
    nan[2, 1, 0] = np.nan
    lstm = kind == "lstm"

    def fwd(*args, **kw):
        args = list(args) + [None] * (3 - len(args))
        return (lambda: cell.forward(args[0], args[1], args[1], args[2], **kw)) if lstm else \
            (lambda: cell.forward(args[0], args[1], args[2], **kw))

    calls = [
        ("x int dtype", fwd(np.ones((T, B, I), np.int32)), TypeError),
        ("x complex list", fwd([[[1j] * I] * B] * T), TypeError),
        ("x object", fwd(object()), TypeError),
        ("x rank", fwd(np.ones((T, I))), ValueError),
        ("x empty", fwd(np.ones((0, B, I))), ValueError),
        ("x nan", fwd(nan), ValueError),
        ("x Fortran nan", fwd(np.asfortranarray(nan)), ValueError),
        ("h0 shape", fwd(x, np.ones((B, H + 1))), ValueError),
        ("h0 dtype", fwd(x, np.ones((B, H), np.float16)), TypeError),
        ("lengths range", fwd(x, None, [0, 1, 2, T + 1]), ValueError),
        ("lengths huge unsigned", fwd(x, None, np.array([0, 1, 2, 2 ** 64 - 1], np.uint64)),
         ValueError),
        ("lengths float", fwd(x, None, np.ones(B)), TypeError),
        ("lengths shape", fwd(x, None, np.ones(B + 1, int)), ValueError),
        ("lengths str", fwd(x, None, "abcd"), TypeError),
        ("bad keyword", lambda: cell.forward(x, bogus=1), TypeError),
        ("dout shape", lambda: cell.backward(np.ones((T, B, H + 1))), ValueError),
        ("dout nan", lambda: cell.backward(np.full((T, B, H), np.nan)), ValueError),
        ("ctor size", lambda: CELLS[kind](0, H), ValueError),
        ("ctor too large", lambda: CELLS[kind](2 ** 40, 2 ** 30), ValueError),
        ("ctor dtype", lambda: CELLS[kind](I, H, dtype="float16"), TypeError),
        ("ctor params", lambda: CELLS[kind](I, H, dtype="float64", params=np.zeros(3)), ValueError),
        ("ctor overlap", lambda: CELLS[kind](I, H, dtype="float64", params=cell.params,
                                             grads=cell.params), ValueError),
        ("gemm shapes", lambda: _core.gemm(np.ones((2, 3)), np.ones((4, 2))), ValueError),
        ("gemm c dtype", lambda: _core.gemm(np.ones((2, 3)), np.ones((3, 2)), c=np.ones((2, 2), np.float32)),
         TypeError),
    ]
    return cell, x, calls


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_error_paths(kind):
    """Every refused call, 2000 times each, in one loop; the cell keeps its cache."""
    cell, x, calls = _bad_cell_calls(kind)
    out = cell.forward(x)[0] if kind != "lstm" else cell.forward(x)[0]
    fns = [_raises(fn, exc) for _, fn, exc in calls]

    def step():
        for f in fns:
            f()

    assert_flat(f"{kind} error paths x{len(fns)}", step, 2000,
                watch=[x, cell.params, cell.grads, type(cell)])
    TOTAL_ITERATIONS[-1] = (TOTAL_ITERATIONS[-1][0], 2000 * len(fns))
    assert cell.has_cache and cell.backward(np.ones_like(out))[0].shape == x.shape


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_extended_cell_forward_backward(kind):
    """The extended kernels: layer norm (and the LSTM projection), per-step
    zoneout masks and a recurrent-dropout mask, whose copies the cell keeps."""
    rng = np.random.default_rng(5)
    lstm = kind == "lstm"
    if lstm:
        cell = _core.LSTMCell(I, H, proj_size=H - 2, layer_norm=True, dtype="float64")
    elif kind == "gru":
        cell = _core.GRUCell(I, H, layer_norm=True, dtype="float64")
    else:
        cell = CELLS[kind](I, H, dtype="float64")
    Hs = H - 2 if lstm else H
    x = rng.standard_normal((B, T, I))
    masks = {"rec_mask": rng.uniform(0, 2, (B, Hs)),
             "zoneout_h": (rng.random((B, T, Hs)) < 0.3).astype(float)}
    if lstm:
        masks["zoneout_c"] = np.full(H, 0.4)
    dout = rng.standard_normal((B, T, Hs))
    lengths = np.array([6, 0, 3, 5])

    def step():
        cell.forward(x, lengths=lengths, batch_first=True, **masks)
        cell.backward(dout)
        cell.zero_grad()

    assert_flat(f"{kind} extended forward/backward", step, 2000,
                watch=[x, dout, lengths, cell.params, *masks.values()])
    bad = [lambda: cell.forward(x, batch_first=True, rec_mask=np.ones((B, Hs + 1))),
           lambda: cell.forward(x, batch_first=True, zoneout_h=np.full(Hs, 1.5)),
           lambda: cell.forward(x, batch_first=True, zoneout_h=np.ones((B, T + 1, Hs)))]
    fns = [_raises(f, ValueError) for f in bad]
    assert_flat(f"{kind} extended error paths x{len(fns)}", lambda: [f() for f in fns], 2000,
                watch=[x, cell.params])
    TOTAL_ITERATIONS[-1] = (TOTAL_ITERATIONS[-1][0], 2000 * len(fns))


def test_gemm():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((7, 9)), rng.standard_normal((5, 9))
    c = np.zeros((7, 5))
    assert_flat("gemm", lambda: (_core.gemm(a, b, trans_b=True), _core.gemm(a, b, trans_b=True, c=c, beta=1.0)),
                5000, watch=[a, b, c])


def test_cell_object_lifetime():
    """Creating and dropping cells (own buffers, given buffers, with a cache)."""
    params, grads = np.zeros(4 * 5 * (3 + 5 + 2)), np.zeros(4 * 5 * (3 + 5 + 2))
    x = np.ones((2, 2, 3))

    def step():
        c = _core.LSTMCell(3, 5, dtype="float64", params=params, grads=grads)
        c.forward(x)
        d = _core.GRUCell(3, 5)
        d.forward(x)
        _ = (c.weight_ih, c.bias_hh, d.layout(), c.params)

    assert_flat("cell lifetime", step, 3000, watch=[params, grads, x])


# --------------------------------------------------------------------- the layers

def test_layer_forward_backward_with_dropout():
    layer = rnnpy.LSTM(I, H, num_layers=2, bidirectional=True, dropout=0.3, dtype="float64", seed=0)
    x = np.random.default_rng(3).standard_normal((B, T, I))
    lengths = [6, 1, 3, 0]
    dout = np.ones((B, T, 2 * H))

    def step():
        layer.zero_grad()
        layer.forward(x, None, lengths)
        layer.backward(dout)

    assert_flat("LSTM layer forward/backward", step, 1500, watch=[x, dout, layer.flat_params])


def test_layer_error_paths():
    layer = rnnpy.GRU(I, H, num_layers=2, dtype="float64", seed=0)
    x = np.ones((B, T, I))
    bad = [
        (lambda: layer.forward(np.ones((B, T, I), np.int8)), TypeError),
        (lambda: layer.forward(x, np.ones((3, B, H))), ValueError),
        (lambda: layer.forward(x, None, [1, 2, 3, 99]), ValueError),
        (lambda: layer.forward(np.full((B, T, I), np.inf)), ValueError),
        (lambda: layer.backward(np.ones((B, T, H + 1))), ValueError),
    ]
    layer.forward(x)
    fns = [_raises(f, e) for f, e in bad]
    assert_flat("GRU layer error paths", lambda: [f() for f in fns], 2000, watch=[x, layer.flat_params])
    TOTAL_ITERATIONS[-1] = (TOTAL_ITERATIONS[-1][0], 2000 * len(fns))


def test_training_steps():
    model = rnnpy.Sequential(rnnpy.Embedding(7, 4, dtype="float64", seed=0),
                             rnnpy.LSTM(4, 6, dtype="float64", seed=1), rnnpy.Dropout(0.2, dtype="float64"),
                             rnnpy.LastStep(dtype="float64"), rnnpy.Dense(6, 3, dtype="float64", seed=2))
    opt = optim.Adam(model, lr=1e-3)
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 7, (8, 5)), rng.integers(0, 3, 8)

    def step():
        model.zero_grad()
        out, _ = model.forward(x)
        _, grad = rnnpy.losses.softmax_cross_entropy(out, y)
        model.backward(grad)
        optim.clip_grad_norm(model, 1.0)
        opt.step()

    assert_flat("training step", step, 1500, watch=[x, y, model.flat_params, model.flat_grads])


def test_save_and_load(tmp_path, monkeypatch):
    # durability is tests/test_io.py's business; here fsync only costs time
    monkeypatch.setattr(rnnpy.io.atomic.os, "fsync", lambda fd: None)
    model = rnnpy.Sequential(rnnpy.GRU(3, 4, dropout=0.0, num_layers=2, seed=0), rnnpy.Dense(4, 2, seed=1))
    path = str(tmp_path / "m.npz")
    bad = str(tmp_path / "bad.npz")
    with open(bad, "wb") as f:
        f.write(b"PK\x03\x04 not really a zip")

    def step():
        model.save(path, extra={"epoch": 1, "m": model.flat_params})
        rnnpy.load_with_extra(path)
        try:
            rnnpy.load(bad)
        except rnnpy.io.ModelFileError:
            pass

    assert_flat("save/load", step, 250, watch=[model.flat_params], rss_limit=16 << 20)
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "m.npz"]


def test_zz_report_iterations(capsys):
    """Prints how many leak-loop iterations ran (for the record)."""
    total = sum(n for _, n in TOTAL_ITERATIONS)
    with capsys.disabled():
        print(f"\nleak loops: {len(TOTAL_ITERATIONS)} loops, {total} iterations")
    assert total > 0
