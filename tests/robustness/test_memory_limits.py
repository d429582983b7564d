"""Allocations that cannot be satisfied raise MemoryError, never crash: run in
a child process whose address space is capped, so the C glue's malloc and
NumPy's allocations really fail."""
import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")

CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import rnnpy
    from rnnpy import _core
    limit = 1536 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outcomes = []
    # forward: x is 2 MB, but the cache needs 5*128000*4096*4 bytes = 10 GB
    big = _core.GRUCell(4, 4096, dtype="float32")
    try:
        big.forward(np.zeros((2000, 64, 4), np.float32))
        outcomes.append("no error")
    except MemoryError:
        outcomes.append("MemoryError")
    # the object still works after the failed call
    out, h = big.forward(np.zeros((2, 3, 4), np.float32))
    outcomes.append("usable" if out.shape == (2, 3, 4096) else "broken")
    # a layer whose parameters cannot be allocated
    try:
        rnnpy.LSTM(20000, 20000)     # 4*20000*40002 float32 = 12.8 GB
        outcomes.append("no error")
    except MemoryError:
        outcomes.append("MemoryError")
    print(" ".join(outcomes))
""")


def test_failed_allocations_raise_memory_error_and_leave_objects_usable():
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    words = p.stdout.split()
    assert words == ["MemoryError", "usable", "MemoryError"], p.stdout
