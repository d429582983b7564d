"""The inference forward's input projection, block by block, against the
training forward's one product: every row of a product must get the same
bits whatever the other rows (how many, where the register tiles split
them), else a block of steps and the whole sequence disagree. Shapes here
are large enough (B * gates * 2 > RNN_PROJ_ELEMS) that the blocks are a few
steps, the last one of one step."""
import numpy as np
import pytest

from rnnpy import _core

MISSING = {"amx": "this CPU has no AMX-BF16 tiles (or the OS refused tile data)",
           "avx512_bf16": "this CPU has no AVX512-BF16", "generic": ""}
ISAS = [pytest.param(n, marks=pytest.mark.skipif(n not in _core.bf16_isas(), reason=MISSING[n]),
                     id=n) for n in MISSING]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("prepack", [False, True])
@pytest.mark.parametrize("K", [3, 7, 40, 300])
def test_bf16_rows_do_not_depend_on_the_tile(isa, prepack, K):
    rng = np.random.default_rng(K)
    a = rng.standard_normal((19, K)).astype(np.float32)
    b = rng.standard_normal((K, 100)).astype(np.float32)
    full = _core.gemm_bf16(a, b, isa=isa, prepack=prepack)
    for m0, m1 in [(0, 1), (8, 9), (16, 17), (18, 19), (7, 9), (0, 9), (9, 19)]:
        part = _core.gemm_bf16(a[m0:m1], b, isa=isa, prepack=prepack)
        np.testing.assert_array_equal(part, full[m0:m1], err_msg=f"rows {m0}:{m1}")


def _cell(kind, I, H, rng):
    cell = _core.LSTMCell(I, H) if kind == "lstm" else _core.GRUCell(I, H)
    cell.params[:] = rng.standard_normal(cell.num_params) * 0.3 / np.sqrt(H / 8)
    return cell


# (T, B): fewer than 16 rows in all (bfloat16 products then run on AVX512-BF16,
# 8-row tiles), blocks of 8 steps at B = 1 and 2 steps at B = 3
@pytest.mark.parametrize("kind,T,B,I,H", [("lstm", 9, 1, 7, 2048), ("gru", 9, 1, 6, 2731),
                                          ("lstm", 3, 3, 6, 2048)])
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_large_h_blocks_match_training_forward(kind, T, B, I, H, compute):
    rng = np.random.default_rng(T * B)
    cell = _cell(kind, I, H, rng)
    cell.compute_dtype = compute
    for batch_first in (False, True):
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
        for threads in (1, 2):
            cell.threads = threads
            want = cell.forward(x, batch_first=batch_first)
            got = cell.forward(x, batch_first=batch_first, keep_cache=False)
            for w, g in zip(want, got):
                np.testing.assert_array_equal(g, w, err_msg=f"bf={batch_first} threads={threads}")
