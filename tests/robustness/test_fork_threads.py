"""Threads that survive fork and thread-creation failure.

Each case runs in a fresh interpreter (its own process group, killed whole on
timeout) because what it checks is whether the process hangs or exits: a
forked child running threaded kernels after the parent did (through a real
multiprocessing Pool, and while another parent thread is inside a kernel),
and a threaded call when no thread can be created (address space limited so
that no thread stack can be mapped). Each compares against threads=1.
"""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import helpers
import pytest

ROOT = Path(helpers.ROOT)
TIMEOUT = 240

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork and rlimits as on Linux")

# Shapes large enough that both the products and the row loops split over threads.
COMMON = """
import os, sys
import numpy as np
import rnnpy
from rnnpy import _core

def make(threads, seed=0):
    return rnnpy.LSTM(64, 128, seed=seed, threads=threads)

X = np.random.default_rng(1).standard_normal((64, 12, 64)).astype(np.float32)
A = np.random.default_rng(2).standard_normal((256, 256)).astype(np.float32)

def step(layer):
    layer.zero_grad()
    out, (h, c) = layer.forward(X)
    dx, _ = layer.backward(np.ones_like(out))
    return np.concatenate([out.ravel(), h.ravel(), c.ravel(), dx.ravel(), layer.flat_grads.ravel()])
"""


def _run(body: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Runs COMMON + body in a new interpreter; a hang fails the test (the whole
    process group, pool children included, is killed)."""
    code = COMMON + textwrap.dedent(body)
    # the package this test imports (the sanitizer script's build, or the checkout)
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH") or str(ROOT),
               RNNPY_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"hung for {timeout} s (killed)\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert res.stdout.strip().splitlines()[-1] == "OK", res.stdout[-3000:]


def test_pool_after_threaded_call_in_parent():
    """multiprocessing's fork Pool after the parent ran threads=2 kernels: the
    children run threads=2 kernels (layers and the GEMM) to the same bits."""
    _ok(_run("""
        import multiprocessing as mp
        ref = step(make(1))
        ref_gemm = _core.gemm(A, A, threads=1)
        assert np.array_equal(step(make(2)), ref)          # the parent uses threads
        assert np.array_equal(_core.gemm(A, A, threads=2), ref_gemm)

        def child(seed):
            got = step(make(2))
            g = _core.gemm(A, A, threads=2)
            return bool(np.array_equal(got, ref)) and bool(np.array_equal(g, ref_gemm))

        with mp.get_context("fork").Pool(2) as pool:
            results = pool.map(child, range(4))
        assert results == [True] * 4, results
        assert np.array_equal(step(make(2)), ref)          # and the parent still does
        print("OK")
    """))


def test_fork_while_another_thread_is_inside_a_kernel():
    """A child forked while another parent thread runs threaded kernels (and the
    forking thread had run them before) runs its own threaded kernels, also on
    the layer that the other thread was inside."""
    _ok(_run("""
        import threading, time
        ref = step(make(1))
        assert np.array_equal(step(make(2)), ref)
        busy = make(2, seed=5)
        big = np.random.default_rng(3).standard_normal((64, 200, 64)).astype(np.float32)
        stop = threading.Event()
        inside = threading.Event()

        def spin():
            while not stop.is_set():
                inside.set()
                busy.forward(big)

        t = threading.Thread(target=spin, daemon=True)
        t.start()
        inside.wait()
        codes = []
        for i in range(4):
            time.sleep(0.05)
            pid = os.fork()
            if pid == 0:
                ok = np.array_equal(step(make(2)), ref)
                # the layer the other thread was inside is free in the child
                ok = ok and np.array_equal(busy.forward(X)[0], make(1, seed=5).forward(X)[0])
                ok = ok and np.array_equal(_core.gemm(A, A, threads=2), _core.gemm(A, A, threads=1))
                os._exit(0 if ok else 3)
            codes.append(os.waitpid(pid, 0)[1])
        stop.set()
        t.join()
        assert codes == [0] * 4, codes
        print("OK")
    """))


@pytest.mark.skipif(os.environ.get("RNNPY_SANITIZED") == "1",
                    reason="AddressSanitizer's shadow memory does not fit under an address-space limit")
def test_thread_creation_failure_falls_back():
    """With no address space left for a thread stack, a threads=2 call returns
    the threads=1 values (or raises MemoryError) and the process goes on."""
    res = _run("""
        import resource
        X = X[:16, :8, :32].copy()                 # small arrays, still split over threads
        def make(threads):
            return rnnpy.LSTM(32, 64, seed=0, threads=threads)
        ref = step(make(1))
        ref_gemm = _core.gemm(A, A, threads=1)
        layer = make(2)
        threads_before = len(os.listdir("/proc/self/task"))    # NumPy's BLAS may have some
        def vm_bytes():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmSize:"):
                        return int(line.split()[1]) * 1024
        # room for the call's arrays and two GEMM workspaces (1.5 MiB each), not
        # for a thread's stack (8 MiB)
        limit = vm_bytes() + 11 * 2**19
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        outcome = []
        for _ in range(3):
            try:
                got = step(layer)
                outcome.append(bool(np.array_equal(got, ref)))
            except MemoryError:
                outcome.append("MemoryError")
            try:
                outcome.append(bool(np.array_equal(_core.gemm(A, A, threads=2), ref_gemm)))
            except MemoryError:
                outcome.append("MemoryError")
        threads_now = len(os.listdir("/proc/self/task")) - threads_before
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("threads made", threads_now)
        print("outcome", outcome)
        assert all(o is True or o == "MemoryError" for o in outcome), outcome
        assert True in outcome, outcome
        print("OK")
    """)
    _ok(res)
    # the limit really kept threads from being made (else this tested nothing)
    assert "threads made 0" in res.stdout, res.stdout
