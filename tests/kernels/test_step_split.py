"""With two threads, a step whose product is large enough runs as one job of
row blocks (each task its rows' products and elementwise pass) instead of
products split by columns and a separate pass over the rows. Sequences do
not interact within a step, so the split must give the one-thread bits:
outputs, final states, dx, dh0, dc0 and every parameter gradient, and the
inference forward, for every cell and option, with ragged lengths, in both
directions and layouts, in float64, float32 and bfloat16 products, with two
and three threads.

The shapes make the step product at least 2^19 multiply-adds with weights
under 1.5 MiB (where the kernels split: RNN_STEP_SPLIT_MIN_MADDS in
csrc/cell_common.h and RNN_L2_WEIGHT_BYTES in csrc/rnn_common.h), with an odd batch so that the blocks differ in size;
some run the backward's weight gradients in several blocks of steps
(rnn_bwd_block_steps in csrc/cells_ext.h), each block's products threaded.
A batch of one, which cannot split by rows, splits its step products by
columns where the packed W_hh is large, with the one-thread bits too."""
import numpy as np
import pytest

from rnnpy import _core

# kind, constructor options, (T, B, I, H): B * G * Hs >= 2^19, B odd
CASES = [
    ("lstm", {}, (5, 33, 24, 64)),
    ("lstm", {"peephole": True}, (5, 33, 24, 64)),
    ("lstm", {"proj_size": 48}, (5, 33, 24, 96)),
    ("lstm", {"layer_norm": True}, (5, 33, 24, 64)),
    ("lstm", {"peephole": True, "proj_size": 40, "layer_norm": True}, (4, 43, 16, 80)),
    # several blocks of the backward's weight gradients (rnn_bwd_block_steps)
    ("lstm", {}, (12, 33, 24, 64)),
    ("lstm", {"peephole": True, "proj_size": 40, "layer_norm": True}, (13, 43, 16, 80)),
    ("gru", {}, (12, 45, 24, 64)),
    ("gru", {"layer_norm": True}, (12, 45, 24, 64)),
    ("rnn", {"nonlinearity": "tanh"}, (12, 33, 24, 128)),
    ("gru", {}, (5, 45, 24, 64)),
    ("gru", {"layer_norm": True}, (5, 45, 24, 64)),
    ("rnn", {"nonlinearity": "tanh"}, (5, 33, 24, 128)),
    ("rnn", {"nonlinearity": "relu"}, (5, 33, 24, 128)),
]


def _make(kind, I, H, dtype, opts):
    cls = {"lstm": _core.LSTMCell, "gru": _core.GRUCell, "rnn": _core.RNNCell}[kind]
    return cls(I, H, dtype=dtype, **opts)


def _cell_and_data(kind, opts, dtype, shape, seed):
    """A cell with random weights in dtype ("bfloat16": float32 with bfloat16
    products), and x (T, B, I), dout (T, B, Hs) in the cell's dtype."""
    T, B, I, H = shape
    real = "float32" if dtype == "bfloat16" else dtype
    rng = np.random.default_rng(seed)
    cell = _make(kind, I, H, real, opts)
    if dtype == "bfloat16":
        cell.compute_dtype = "bfloat16"
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.4 / np.sqrt(H / 8)
    Hs = opts.get("proj_size") or H
    x = rng.standard_normal((T, B, I)).astype(real)
    dout = rng.standard_normal((T, B, Hs)).astype(real)
    return cell, x, dout, rng


def _run(cell, kind, x, dout, kw, threads):
    cell.threads = threads
    cell.zero_grad()
    out = cell.forward(x, **kw)
    back = cell.backward(dout)
    inf = cell.forward(x, keep_cache=False, **kw)
    return [*out, *back, cell.grads.copy(), *inf]


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize("masks", [False, True], ids=["plain", "masks"])
@pytest.mark.parametrize("kind,opts,shape", CASES,
                         ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in o.items()) or 'plain'}"
                              for k, o, _ in CASES])
def test_split_steps_give_the_one_thread_bits(kind, opts, shape, masks, dtype):
    T, B, I, H = shape
    if dtype == "bfloat16" and not _core.bf16_isas():
        pytest.skip("no bfloat16 products on this CPU")
    real = "float32" if dtype == "bfloat16" else dtype
    Hs = opts.get("proj_size") or H
    cell, x, dout, rng = _cell_and_data(kind, opts, dtype, shape, B * 100 + H)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[[0, -1]] = T  # the first and the last block: full length,
    lengths[[1, -2]] = 0, 1  # empty and one-step sequences
    kw = {"lengths": lengths}
    if masks:
        kw["rec_mask"] = (rng.random((B, Hs)) < 0.7).astype(real) / 0.7
        kw["zoneout_h"] = (rng.random((T, B, Hs)) < 0.2).astype(real)
        if kind == "lstm":
            kw["zoneout_c"] = (rng.random((T, B, H)) < 0.3).astype(real)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    db = np.ascontiguousarray(dout.transpose(1, 0, 2))
    kwb = {k: np.ascontiguousarray(v.transpose(1, 0, 2)) if k.startswith("zoneout") else v
           for k, v in kw.items()}
    for xs, ds, extra in ((x, dout, kw), (x, dout, {**kw, "reverse": True}),
                          (xb, db, {**kwb, "batch_first": True})):
        one = _run(cell, kind, xs, ds, extra, 1)
        for threads in (2, 3):  # two blocks, or three (more threads than cores)
            many = _run(cell, kind, xs, ds, extra, threads)
            assert len(one) == len(many)
            for i, (a, b) in enumerate(zip(one, many)):
                np.testing.assert_array_equal(a, b, err_msg=f"result {i} {sorted(extra)} "
                                                            f"threads={threads}")
        assert np.abs(one[0]).max() > 0 and np.abs(cell.grads).max() > 0
    # the split was taken: an inference forward at two threads issues a job of
    # several tasks every step (run on two threads, or on the caller block by
    # block when the pool backs off on busy cores), which the unsplit step at
    # these sizes does not (its product and its rows pass are too small)
    cell.threads = 2
    jobs = sum(_core.pool_counts())
    cell.forward(x, keep_cache=False, **kw)
    assert sum(_core.pool_counts()) - jobs >= T


# B = 1 cannot split by rows. Its step product reads all of the packed W_hh
# for few multiply-adds (under the 2^20, or 2^22 in bfloat16, that would
# thread it), so where the packed W_hh is over 1.5 MiB (RNN_L2_WEIGHT_BYTES in
# csrc/rnn_common.h) it splits by columns instead: forward h W_hh^T and
# backward dG W_hh. (At T 24 the forward packs W_hh, rnn_in_place in
# csrc/cell_common.h, and the backward's K = G >= 32 T of the LSTM and the
# GRU reads it in place, a row-vector product that splits likewise, as one
# step's forward does; the RNN's backward packs it. bfloat16 always packs,
# two bytes a weight, so larger H.)
PACKED_CASES = [
    ("lstm", {}, (24, 1, 16, 400), (24, 1, 16, 600)),
    ("lstm", {"peephole": True, "proj_size": 300}, (24, 1, 16, 400), None),
    ("lstm", {"peephole": True, "proj_size": 400}, None, (24, 1, 16, 600)),
    ("gru", {}, (24, 1, 16, 420), (24, 1, 16, 700)),
    ("gru", {"layer_norm": True}, (24, 1, 16, 420), None),
    ("rnn", {"nonlinearity": "tanh"}, (24, 1, 16, 700), (24, 1, 16, 1100)),
]


PACKED_PARAMS = [pytest.param(k, o, dt, sh,
                              id=f"{k}-{'-'.join(f'{a}={v}' for a, v in o.items()) or 'plain'}"
                                 f"-{dt}")
                 for k, o, sh32, sh16 in PACKED_CASES
                 for dt, sh in (("float64", sh32), ("float32", sh32), ("bfloat16", sh16))
                 if sh is not None]


@pytest.mark.parametrize("kind,opts,dtype,shape", PACKED_PARAMS)
def test_one_row_steps_split_by_columns_give_the_one_thread_bits(kind, opts, dtype, shape):
    if dtype == "bfloat16" and not _core.bf16_isas():
        pytest.skip("no bfloat16 products on this CPU")
    cell, x, dout, _ = _cell_and_data(kind, opts, dtype, shape, shape[3])
    # T steps (W_hh packed), and one step, whose products read W_hh in place
    for xs, ds in ((x, dout), (x[:1], dout[:1])):
        for extra in ({}, {"reverse": True}):
            one = _run(cell, kind, xs, ds, extra, 1)
            jobs = sum(_core.pool_counts())
            many = _run(cell, kind, xs, ds, extra, 2)
            # the columns were split: a job every step at two threads (none at
            # these multiply-adds without the rule), run on two threads, or, when
            # the pool backs off (a busy machine), block by block on the caller
            assert sum(_core.pool_counts()) - jobs >= len(xs)
            for i, (a, b) in enumerate(zip(one, many)):
                np.testing.assert_array_equal(a, b, err_msg=f"result {i} {sorted(extra)}")
            assert np.abs(one[0]).max() > 0 and np.abs(cell.grads).max() > 0


# A small batch (B <= RNN_UNIT_SPLIT_MAX_B in csrc/cell_common.h) splits an
# LSTM step by units instead: each task its units' gate columns (W_hh packed
# gate by gate) and their elementwise pass, h double-buffered; backward, its
# units' part of dG_{t+1} W_hh and then their gate gradients, dG
# double-buffered. Units go in
# blocks of 64, so H = 100 and 200 give unequal blocks and a gate's last block
# is partial (three tasks at H = 130 and 200); H = 64 is one block (no split). Options whose elementwise work
# spans the row (layer norm, projection) or writes a masked h (recurrent
# dropout) keep the other paths; peepholes, zoneout and ragged lengths split.
# Products under 2^19 multiply-adds, which neither the row split nor the
# GEMM's threads would split.
UNIT_CASES = [
    ({}, (6, 1, 16, 128)),
    ({}, (7, 2, 24, 100)),
    ({}, (6, 5, 24, 130)),
    ({"peephole": True}, (7, 6, 16, 130)),
    ({}, (5, 4, 8, 160)),
    ({}, (5, 3, 8, 200)),
    # the backward's weight gradients in two blocks of steps (rnn_bwd_block_steps)
    ({"peephole": True}, (140, 2, 8, 128)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("zoneout", [False, True], ids=["plain", "zoneout"])
@pytest.mark.parametrize("opts,shape", UNIT_CASES,
                         ids=[f"{'-'.join(f'{a}={v}' for a, v in o.items()) or 'plain'}-"
                              f"B{s[1]}-H{s[3]}" for o, s in UNIT_CASES])
def test_small_batch_steps_split_by_units_give_the_one_thread_bits(opts, shape, zoneout, dtype):
    T, B, I, H = shape
    cell, x, dout, rng = _cell_and_data("lstm", opts, dtype, shape, B * 100 + H)
    lengths = rng.integers(0, T + 1, size=B)
    lengths[0] = T
    if B > 2:
        lengths[[1, -1]] = 0, 1  # empty and one-step sequences
    kw = {"lengths": lengths}
    if zoneout:
        kw["zoneout_h"] = (rng.random((T, B, H)) < 0.2).astype(dtype)
        kw["zoneout_c"] = (rng.random((T, B, H)) < 0.3).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    db = np.ascontiguousarray(dout.transpose(1, 0, 2))
    kwb = {k: np.ascontiguousarray(v.transpose(1, 0, 2)) if k.startswith("zoneout") else v
           for k, v in kw.items()}
    for xs, ds, extra in ((x, dout, kw), (x, dout, {**kw, "reverse": True}),
                          (xb, db, {**kwb, "batch_first": True}),
                          (x[:T - 1], dout[:T - 1], {"h0": h0, "c0": c0})):
        one = _run(cell, "lstm", xs, ds, extra, 1)
        for threads in (2, 3):
            many = _run(cell, "lstm", xs, ds, extra, threads)
            for i, (a, b) in enumerate(zip(one, many)):
                np.testing.assert_array_equal(a, b, err_msg=f"result {i} {sorted(extra)} "
                                                            f"threads={threads}")
        assert np.abs(one[0]).max() > 0 and np.abs(one[1]).max() > 0
    # the split was taken: an inference forward at two threads runs a job of
    # two tasks every step, which the unsplit step of so few multiply-adds
    # (a product under the GEMM's threading bound, rows under the row split's)
    # does not
    cell.threads = 2
    jobs = sum(_core.pool_counts())
    cell.forward(x, keep_cache=False, **kw)
    assert sum(_core.pool_counts()) - jobs >= T
    # and the backward: a job a step and one for dL/dh0 (at B = 1 and T = 6 it
    # reads W_hh in place, rnn_in_place, and does not split)
    if B > 1:
        cell.forward(x, **kw)
        jobs = sum(_core.pool_counts())
        cell.backward(dout)
        assert sum(_core.pool_counts()) - jobs >= T + 1
