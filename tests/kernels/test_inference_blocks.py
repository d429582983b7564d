"""The inference forward's input projection, block by block, against the
training forward's one product: every row of a product must get the same
bits whatever the other rows (how many, where the register tiles split
them), else a block of steps and the whole sequence disagree. Shapes here
are large enough that a sequence takes several blocks (RNN_PROJ_ELEMS, or
RNN_PROJ_ELEMS_LARGE where W_ih does not fit in L2: csrc/cells_ext.h), the
last one of one step."""
import numpy as np
import pytest

from rnnpy import _core

ISAS = _core.bf16_isas()  # this CPU's bfloat16 kernels (a kernel it lacks cannot run here)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("prepack", [False, True])
@pytest.mark.parametrize("K", [3, 7, 40, 300, 600])
def test_bf16_rows_do_not_depend_on_the_tile(isa, prepack, K):
    # K past one slice (RNN_BF16_KC = 256): later slices add onto C, whole AMX
    # tiles in the tile registers, partial ones (fewer rows or columns) too
    rng = np.random.default_rng(K)
    a = rng.standard_normal((66, K)).astype(np.float32)
    b = rng.standard_normal((K, 100)).astype(np.float32)
    full = _core.gemm_bf16(a, b, isa=isa, prepack=prepack)
    for m0, m1 in [(0, 1), (0, 2), (8, 9), (16, 17), (18, 19), (7, 9), (0, 9), (9, 19), (3, 19),
                   (0, 16), (16, 19), (0, 32), (64, 66), (2, 66)]:
        part = _core.gemm_bf16(a[m0:m1], b, isa=isa, prepack=prepack)
        np.testing.assert_array_equal(part, full[m0:m1], err_msg=f"rows {m0}:{m1}")
    # columns: a partial strip of columns against whole ones
    for n0, n1 in [(0, 16), (0, 40), (32, 64), (64, 100)]:
        part = _core.gemm_bf16(a, np.ascontiguousarray(b[:, n0:n1]), isa=isa)
        np.testing.assert_array_equal(part, full[:, n0:n1], err_msg=f"columns {n0}:{n1}")


def _cell(kind, I, H, rng):
    cell = _core.LSTMCell(I, H) if kind == "lstm" else _core.GRUCell(I, H)
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.3 / np.sqrt(H / 8)
    return cell


# (T, B): fewer than 16 rows in all (bfloat16 products then run on AVX512-BF16,
# 8-row tiles), blocks of 8 steps at B = 1 and 2 steps at B = 3; then inputs
# wider than one K slice, at 16 rows or more (AMX tiles): W_ih within the L2
# rule (G * I <= 2^18: blocks of RNN_PROJ_ELEMS, 81 steps at B = 1, 4 at
# B = 17), and beyond it (blocks of RNN_PROJ_ELEMS_LARGE = 2^20, 1024 steps at
# B = 1, 29 at B = 17); each sequence ends with a block of one step
@pytest.mark.parametrize("kind,T,B,I,H", [("lstm", 9, 1, 7, 2048), ("gru", 9, 1, 6, 2731),
                                          ("lstm", 3, 3, 6, 2048), ("lstm", 82, 1, 300, 200),
                                          ("gru", 5, 17, 300, 280), ("lstm", 1025, 1, 600, 256),
                                          ("gru", 30, 17, 300, 700)])
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_large_h_blocks_match_training_forward(kind, T, B, I, H, compute):
    rng = np.random.default_rng(T * B)
    cell = _cell(kind, I, H, rng)
    cell.compute_dtype = compute
    for batch_first, reverse in [(False, False), (True, False), (False, True)]:
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
        kw = {"batch_first": batch_first, "reverse": reverse}
        for threads in (1, 2):
            cell.threads = threads
            want = cell.forward(x, **kw)
            got = cell.forward(x, keep_cache=False, **kw)
            for w, g in zip(want, got):
                np.testing.assert_array_equal(g, w, err_msg=f"{kw} threads={threads}")
