"""Builds and runs the C-level tests of csrc/ (no Python inside the kernels),
once optimised and once under AddressSanitizer and UBSan.

tests/c/test_gemm.c checks the blocked GEMM against its plain loop on every
instruction set the CPU has, and the rule that splits one row's product
against a weight larger than a core's L2 keeps into blocks of columns;
tests/c/test_ext_lstm.c and tests/c/test_ext_gru_rnn.c check each cell kernel
(cells_ext.h), at a zero config and with every option: float64 backward
against central differences for both layouts, both directions and ragged
lengths, float32 against float64, threads, and the status codes for bad
dims, NULLs and leading dimensions (the plain reference the project keeps is
NumPy's: rnnpy/_reference.py, and _reference_ext.py for the options, which
tests/kernels and tests/nn compare the kernels against);
tests/c/test_ext_inference.c checks every cell's inference forward (no cache, the
input projected block by block: built with small blocks) against its training
forward, bit for bit, in scratch of exactly the size asked for, and
test_ext_inference_large does so again with every W_ih taken as too large for
L2 (the training forward then projects all rows at once, the inference
forward in its blocks for large W_ih);
test_ext_lstm_blocks and test_ext_gru_rnn_blocks are those tests built with
backward blocks of a step or two (RNN_BWD_ROWS), whose weight gradients run
block by block, which the small shapes of the tests would otherwise run as
one block, and with the training forward's input projection of all rows at
once (RNN_PROJ_BLOCK_MAX_ELEMS, what large W_ih take) instead of in blocks;
tests/c/test_pool.c checks the thread pool;
tests/c/test_bf16.c checks the bfloat16 conversion and the
mixed-precision product on every path the CPU has against float64 within
the bound derived in csrc/bf16.h. Each program prints "N passed, M failed" and exits non-zero on
failure.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import helpers
import pytest

ROOT = Path(helpers.ROOT)
CSRC = ROOT / "csrc"
# the library's cells (cells_ext.h)
CELLS = ["gemm.c", "gemm_bf16.c", "pool.c", "rnn_common.c", "rnn_ext_common.c", "rnn_ext.c",
         "lstm_ext.c", "gru_ext.c"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer"]

PROGRAMS = {
    "test_gemm": ["gemm.c", "pool.c", "rnn_common.c"],
    "test_pool": ["pool.c"],
    "test_bf16": ["gemm_bf16.c", "pool.c", "rnn_common.c"],
    "test_ext_gru_rnn": CELLS,
    "test_ext_lstm": CELLS,
    "test_ext_lstm_blocks": CELLS,
    "test_ext_gru_rnn_blocks": CELLS,
    "test_ext_inference": CELLS,
    "test_ext_inference_large": CELLS,
}
# the test's source where it is not the program's name
SOURCE = {"test_ext_lstm_blocks": "test_ext_lstm", "test_ext_gru_rnn_blocks": "test_ext_gru_rnn",
          "test_ext_inference_large": "test_ext_inference"}
# blocks of the inference forward's input projection a few steps long at small shapes
DEFINES = {"test_ext_inference": ["-DRNN_PROJ_ELEMS=64"],
           # as if every W_ih were too large for L2: the training forward projects
           # all rows at once, inference in the blocks for large W_ih (here small)
           "test_ext_inference_large": ["-DRNN_PROJ_BLOCK_MAX_ELEMS=0",
                                        "-DRNN_PROJ_ELEMS_LARGE=64"],
           # a wake-up forgiven up to 1 ms: test_pool checks that it is, whatever the VM's noise
           "test_pool": ["-DRNN_POOL_WAKE_US=1000"],
           # backward blocks of one or two steps at the tests' batches of 2-5
           "test_ext_lstm_blocks": ["-DRNN_BWD_ROWS=4", "-DRNN_PROJ_BLOCK_MAX_ELEMS=0"],
           "test_ext_gru_rnn_blocks": ["-DRNN_BWD_ROWS=4", "-DRNN_PROJ_BLOCK_MAX_ELEMS=0"]}


def _compiler():
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler on this machine")
    return cc


@pytest.mark.parametrize("sanitize", [False, True], ids=["O2", "asan-ubsan"])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_c_program(program, sanitize, tmp_path):
    cc = _compiler()
    exe = tmp_path / program
    flags = SANITIZE if sanitize else ["-O2"]
    sources = [s if os.path.isabs(s) else str(CSRC / s) for s in PROGRAMS[program]]
    sources.append(str(ROOT / "tests" / "c" / f"{SOURCE.get(program, program)}.c"))
    build = subprocess.run(
        [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *flags, *DEFINES.get(program, []),
         f"-I{CSRC}", *sources, "-lm",
         "-pthread", "-o", str(exe)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in run.stderr and "runtime error" not in run.stderr, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) == 0, last
