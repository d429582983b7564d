"""Timing of callables in alternation, shared by the benchmarks."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List


# PyTorch's OpenMP threads (GNU OpenMP) spin for some milliseconds after each
# call before they sleep: measured here at 5-10 ms, during which a thread
# started on the other core shares it with them. Timed right after a PyTorch
# call, rnnpy's two-thread LSTM step (50, 64, 256, 256) took 74 ms instead of
# the 52 ms it takes 10 ms later, a cost of the comparison, not of either
# library. With threads > 1, the bench waits this long before each timed call,
# then makes the same call once untimed: after a 25 ms pause a short call
# (a batch of one) ran 15% slower, its data gone from the caches.
SETTLE_S = 0.025
# After that pause the threads of both libraries sleep, and on a VM a sleeping
# thread's core may have halted: waking it took 0.1-3 ms here, longer than a
# short call (a batch of one, 0.3-2 ms), which then ran on one thread or
# waited. So the untimed calls after the pause go on until WARM_S has passed
# (one at least), and the timed call finds both libraries' threads awake, as
# they are in a loop of such calls.
WARM_S = 0.005

# NumPy's OpenBLAS keeps its worker threads spinning much longer after a call:
# about 130 ms of CPU (the process's CPU time, after a 1024^3 product and after
# a 1 x 512 x 2048 one alike). Right after a two-thread 1024^3 numpy.matmul,
# rnnpy's two-thread product of the same size, its pool's backing-off disabled,
# ran at 90 GFLOP/s, slower than one thread (as shipped, the pool backs off to
# one thread: 95-103 GFLOP/s); alone it runs at 180-190. Two-thread GEMM
# comparisons therefore time each library in blocks of calls, waiting this
# long before each block (time_blocks).
BLAS_SETTLE_S = 0.3


def _warm(fn: Callable[[], Any]) -> None:
    """Untimed calls of fn after a pause, for WARM_S (one at least): they warm
    the caches, clocks and threads the pause let go cold."""
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < WARM_S:
        fn()


def settle_for(threads: int, use_torch: bool) -> float:
    """Seconds to wait before each timed call: SETTLE_S when PyTorch runs
    beside rnnpy on more than one thread, else 0."""
    return SETTLE_S if use_torch and threads > 1 else 0.0


def time_alternating(fns: Dict[str, Callable[[], Any]], repeat: int, warmup: int,
                     min_time: float, settle: float = 0.0) -> Dict[str, Any]:
    """Runs several callables in alternation (a, b, a, b, ...), so that a
    change in the machine's load while measuring hits them alike; with
    ``settle`` > 0, each timed call comes after a pause of that many seconds
    and untimed calls of the same callable for WARM_S (one at least). Returns the wall and the
    process CPU seconds of every run, {"wall": {key: [...]}, "cpu": ...}, and
    the pool's jobs during each callable's runs, {"pool": {key: [on several
    threads, on the caller alone]}}."""
    from .. import _core

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    # (also run over an older rnnpy's build, to compare before and after)
    counts = getattr(_core, "pool_counts", lambda: (0, 0))
    wall: Dict[str, List[float]] = {k: [] for k in fns}
    cpu: Dict[str, List[float]] = {k: [] for k in fns}
    pool: Dict[str, List[int]] = {k: [0, 0] for k in fns}
    start, slept = time.perf_counter(), 0.0
    while True:
        for k, fn in fns.items():
            if settle > 0:
                t0 = time.perf_counter()
                time.sleep(settle)
                _warm(fn)
                slept += time.perf_counter() - t0
            p0 = counts()
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            p1 = counts()
            pool[k] = [pool[k][0] + p1[0] - p0[0], pool[k][1] + p1[1] - p0[1]]
        n = len(wall[next(iter(fns))])
        spent = time.perf_counter() - start - slept
        if n >= max(3, repeat) or (n >= 3 and spent > min_time * len(fns)):
            break
    return {"wall": wall, "cpu": cpu, "pool": pool}


def time_blocks(fns: Dict[str, Callable[[], Any]], rounds: int, per_block: int,
                settle: float) -> Dict[str, Any]:
    """Runs several callables in blocks of ``per_block`` timed calls, the
    blocks in alternation (a a a, b b b, a a a, ...) for ``rounds`` rounds,
    each block after a pause of ``settle`` seconds and untimed calls for
    WARM_S (one at least): for libraries whose threads keep the cores busy
    long after they return.
    Returns what time_alternating does, without the CPU times: the wall
    seconds of every timed call, {"wall": {key: [...]}}, and the pool's jobs
    during each callable's timed calls, {"pool": {key: [on several threads,
    on the caller alone]}}."""
    if rounds < 1 or per_block < 1:
        raise ValueError(f"rounds and per_block: expected at least 1 each, got {rounds} "
                         f"and {per_block}")
    from .. import _core

    counts = getattr(_core, "pool_counts", lambda: (0, 0))
    wall: Dict[str, List[float]] = {k: [] for k in fns}
    pool: Dict[str, List[int]] = {k: [0, 0] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            time.sleep(settle)
            _warm(fn)
            p0 = counts()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                wall[k].append(time.perf_counter() - t0)
            p1 = counts()
            pool[k] = [pool[k][0] + p1[0] - p0[0], pool[k][1] + p1[1] - p0[1]]
    return {"wall": wall, "pool": pool}


def time_paired(fns: Dict[str, Callable[[], Any]], repeat: int, warmup: int,
                min_time: float, settle: float = 0.0) -> Dict[str, Dict[str, float]]:
    """Median, min, max and runs of each callable's wall time, timed in
    alternation by time_alternating."""
    timed = time_alternating(fns, repeat, warmup, min_time, settle)
    return {k: summarize(v) for k, v in timed["wall"].items()}


def summarize(times: List[float]) -> Dict[str, float]:
    """{"median", "min", "max", "runs"} of a non-empty list of times."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times)}
