"""Smoke tests of ``python -m rnnpy bench`` on tiny shapes: it runs, prints a
table, and its JSON parses with every number present (ratios when PyTorch is
installed). Speed itself is never asserted here; the benchmark reports it.

Below them, the fast paths the benchmark measures are checked against their
plain twins: the float32 activations against libm over a dense sweep, and
multi-threaded products and cells against one thread."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnpy.tools import bench
from rnnpy.tools.cli import main as cli_main

TINY = ["--shapes", "3,2,4,5;2,1,3,4", "--repeat", "3", "--warmup", "1", "--min-time", "0"]


def _has_torch():
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def test_flops_formula():
    # training = 6*G*T*B*H*(I+H), forward a third
    assert bench.flops("lstm", 10, 2, 3, 4, "train") == 6 * 4 * 10 * 2 * 4 * (3 + 4)
    assert bench.flops("gru", 10, 2, 3, 4, "forward") == 2 * 3 * 10 * 2 * 4 * (3 + 4)
    assert bench.flops("rnn", 1, 1, 1, 1, "train") == 12


def test_bench_prints_table(capsys):
    rc = cli_main(["bench", "--cells", "lstm", "--threads", "1", "--no-gemm", "--no-options",
                   *TINY])
    assert rc == 0
    out = capsys.readouterr().out
    assert "torch/rnnpy" in out and "GF/s" in out
    assert out.count("lstm ") == 4  # 2 shapes x (forward, train)


def test_bench_json_all_cells(capsys):
    rc = bench.main(["--json", "--threads", "1,2", "--no-gemm", "--no-options", *TINY])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = result["cells"]
    assert len(rows) == 3 * 2 * 2 * 2  # cells x shapes x threads x modes
    assert {r["cell"] for r in rows} == {"rnn", "lstm", "gru"}
    for r in rows:
        assert r["rnnpy"]["median"] > 0 and r["rnnpy"]["gflops"] > 0
        assert r["rnnpy"]["min"] <= r["rnnpy"]["median"] <= r["rnnpy"]["max"]
        if _has_torch():
            assert r["ratio"] > 0 and r["torch"]["median"] > 0
        else:
            assert "ratio" not in r


def test_bench_options(capsys):
    """Every option of every cell is timed against the plain cell; the
    projected LSTM also against torch's."""
    rc = bench.main(["--json", "--threads", "1", "--no-gemm", *TINY])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["options"]
    want = {(c, label) for c, opts in bench.OPTIONS.items() for label, _ in opts}
    assert {(r["cell"], r["option"]) for r in rows} == want
    assert len(rows) == len(want) * 2 * 2   # shapes x modes
    for r in rows:
        assert r["cost"] > 0 and r["plain"]["median"] > 0 and r["rnnpy"]["median"] > 0
        assert ("ratio" in r) == (_has_torch() and r["option"].startswith("proj"))


def test_bench_no_torch(capsys):
    assert bench.main(["--json", "--no-torch", "--cells", "gru", "--no-gemm", *TINY]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cells"]
    assert rows and all("torch" not in r and "ratio" not in r for r in rows)


def test_bench_gemm_and_memory_in_subprocess():
    # the GEMM part and the memory part each start child processes
    cmd = [sys.executable, "-m", "rnnpy", "bench", "--json", "--cells", "rnn", "--modes", "forward",
           "--threads", "1", "--memory", *TINY]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["gemm"] and all(g["ratio"] > 0 for g in result["gemm"])
    assert {g["kind"] for g in result["gemm"]} == {"square", "step"}
    assert len(result["memory"]) == 2
    for m in result["memory"]:
        assert m["rnnpy"]["peak_kib"] >= m["rnnpy"]["before_kib"] > 0
        assert ("torch" in m) == _has_torch()


def test_time_blocks_runs_each_library_in_blocks_after_a_pause(monkeypatch):
    # two-thread GEMM rows: a block of calls per library, each block after the
    # pause and untimed calls (one with WARM_S = 0), blocks alternating round
    # by round
    from rnnpy.tools import timing
    calls, pauses = [], []
    monkeypatch.setattr(timing.time, "sleep", pauses.append)
    monkeypatch.setattr(timing, "WARM_S", 0.0)
    res = timing.time_blocks({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             rounds=2, per_block=3, settle=0.3)
    assert calls == list("aaaabbbbaaaabbbb")
    assert pauses == [0.3] * 4
    assert sorted(res["wall"]) == ["a", "b"] and all(len(v) == 6 for v in res["wall"].values())
    assert res["pool"] == {"a": [0, 0], "b": [0, 0]}  # neither ran a kernel
    assert timing.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    with pytest.raises(ValueError, match="per_block"):
        timing.time_blocks({"a": lambda: None}, rounds=1, per_block=0, settle=0)


def _slow_call(log, key, seconds):
    def call():
        log.append((key, time.perf_counter()))
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            pass
    return call


def test_untimed_calls_after_a_pause_last_warm_s(monkeypatch):
    # after each pause, untimed calls go on until WARM_S has passed (a worker
    # whose core halted in the pause is awake by the timed call), for both
    # timers: time_blocks (the GEMM rows) and time_alternating with settle
    from rnnpy.tools import timing
    monkeypatch.setattr(timing.time, "sleep", lambda s: None)
    monkeypatch.setattr(timing, "WARM_S", 0.004)
    for run in (lambda fns: timing.time_blocks(fns, rounds=2, per_block=2, settle=0.3),
                lambda fns: timing.time_alternating(fns, repeat=3, warmup=0, min_time=0,
                                                    settle=0.3)):
        log = []
        res = run({"a": _slow_call(log, "a", 0.001), "b": _slow_call(log, "b", 0.001)})
        timed = len(res["wall"]["a"])
        # runs of one key: its untimed calls, then its timed ones
        runs = []
        for key, t in log:
            if runs and runs[-1][0] == key:
                runs[-1][1].append(t)
            else:
                runs.append((key, [t]))
        per_run = timed // (len(runs) // 2)
        for key, ts in runs:
            untimed = ts[:len(ts) - per_run]
            assert len(untimed) >= 4, (key, len(ts))  # 1 ms calls for 4 ms
            assert ts[len(untimed)] - untimed[0] >= 0.004


def test_two_thread_gemm_rows_run_in_blocks_and_count_the_pool(monkeypatch):
    # _gemm_worker's two-thread branch, in this process, on two small shapes
    # (the second large enough that rnnpy's product takes the pool)
    from rnnpy.tools import timing
    monkeypatch.setattr(bench, "SQUARE_GEMM", [8])
    monkeypatch.setattr(bench, "STEP_GEMM", [(64, 256, 1024)])
    monkeypatch.setattr(bench, "BLAS_SETTLE_S", 0.0)
    blocks = []
    real = timing.time_blocks

    def spy(fns, rounds, per_block, settle):
        blocks.append((rounds, per_block, settle))
        return real(fns, rounds, per_block, settle)

    monkeypatch.setattr(bench, "time_blocks", spy)
    rows = bench._gemm_worker(2, 1, 0.0)
    assert blocks == [(bench.GEMM_ROUNDS, 7, 0.0)] * 2
    assert [(r["kind"], r["M"], r["N"], r["K"]) for r in rows] == [("square", 8, 8, 8),
                                                                  ("step", 64, 1024, 256)]
    for r in rows:
        assert r["threads"] == 2 and r["rnnpy"]["runs"] == r["numpy"]["runs"] == 21
        assert r["ratio"] > 0 and r["rnnpy"]["gflops"] > 0
    assert rows[0]["rnnpy"]["pool_threaded"] + rows[0]["rnnpy"]["pool_alone"] == 0
    assert rows[1]["rnnpy"]["pool_threaded"] + rows[1]["rnnpy"]["pool_alone"] == 21
    assert "%" in bench._format_gemm_row(rows[1]) and bench._format_gemm_row(rows[0]).endswith("-")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the peak is reset through /proc")
def test_memory_of_a_step_counts_what_the_step_allocates():
    """The LSTM's training cache alone is 7*T*B*H float32 values (5.6 MiB here):
    a measure that reads an old high-water mark (ru_maxrss after the imports)
    reported 0 for steps like this one."""
    T, B, I, H = 50, 32, 128, 128
    rows = bench.bench_memory(["lstm"], [(T, B, I, H)], 1, False, lambda line: None)
    m = rows[0]["rnnpy"]
    assert m["method"] == "VmHWM"
    cache_kib = 7 * T * B * H * 4 / 1024
    assert m["step_kib"] >= cache_kib, m
    assert m["step_kib"] < 20 * cache_kib, m     # and not the whole process


@pytest.mark.parametrize("bad", [["--cells", "lstmx"], ["--shapes", "1,2,3"], ["--modes", "back"]])
def test_bench_rejects_bad_options(bad):
    with pytest.raises(SystemExit):
        bench.main(bad)


# ---------------------------------------------------------------------------
# The fast paths the benchmark measures, against their plain twins: the
# float32 activations against libm, and multi-threaded kernels against one
# thread (bit-identical by construction).

def _ulp_err(fast, ref):
    f = fast.astype(np.float64)
    r = ref.astype(np.float64)
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return np.max(np.abs(f - r) / ulp), np.max(np.abs(f - r))


def _sweep():
    dense = np.linspace(-20, 20, 2_000_001, dtype=np.float32)
    tiny = np.geomspace(1e-30, 1.0, 200_001).astype(np.float32)
    wide = np.linspace(-100, 100, 200_001, dtype=np.float32)
    return np.concatenate([dense, tiny, -tiny, wide, np.float32([0.0, -0.0, 0.3, -0.3])])


@pytest.mark.parametrize("name, max_ulp, max_abs", [("sigmoid", 4, 2e-7), ("tanh", 6, 2e-7)])
def test_fast_activation_accuracy(name, max_ulp, max_abs):
    from rnnpy import _core

    x = _sweep()
    fast = _core.activation(x, name)
    ref = np.tanh(x.astype(np.float64)) if name == "tanh" else 1 / (1 + np.exp(-x.astype(np.float64)))
    ref32 = ref.astype(np.float32)
    ulp, absd = _ulp_err(fast, ref32)
    assert absd <= max_abs, (name, absd)
    # ulp error against the correctly rounded value, where it is meaningful (not flushed tails)
    keep = np.abs(ref32) > 1e-30
    ulp_k, _ = _ulp_err(fast[keep], ref32[keep])
    assert ulp_k <= max_ulp, (name, ulp_k)
    libm = _core.activation(x, name, impl="libm")
    assert np.max(np.abs(libm.astype(np.float64) - ref)) <= 2e-7  # the plain twin is exact-ish
    assert np.all(np.isfinite(fast))
    if name == "tanh":
        assert np.all(np.abs(fast) <= 1) and np.array_equal(fast, -_core.activation(-x, name))
    else:
        assert np.all((fast >= 0) & (fast <= 1))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "exp"])
def test_avx512_activations_have_the_scalar_bits(name):
    # the hand-vectorised AVX-512 gate loops must compute what the scalar code does
    from rnnpy import _core

    if _core.gemm_isa() != "avx512":
        pytest.skip("this CPU has no AVX-512")
    edges = np.float32([0.0, -0.0, 0.3, -0.3, np.nextafter(np.float32(0.3), np.float32(0)), 43, -43,
                        44, 87, -87, 88, -88, 100, -100, 1e-30, -1e-30, 1e-40, np.inf, -np.inf, np.nan])
    x = np.concatenate([_sweep(), np.tile(edges, 16)])
    if name == "exp":  # its domain is [-87, 88] (the callers clamp)
        x = np.clip(x[~np.isnan(x)], -87, 88)
    x = x[: len(x) // 16 * 16]  # whole groups of 16 (a last partial one runs the scalar code)
    scalar, vector = _core.activation(x, name), _core.activation(x, name, impl="avx512")
    same = (scalar.view(np.int32) == vector.view(np.int32)) | (np.isnan(scalar) & np.isnan(vector))
    assert same.all(), (name, x[~same][:5], scalar[~same][:5], vector[~same][:5])
    assert np.isnan(vector[np.isnan(x)]).all()


def test_fast_exp_accuracy():
    from rnnpy import _core

    x = np.linspace(-87, 88, 3_000_001, dtype=np.float32)
    ulp, _ = _ulp_err(_core.activation(x, "exp"), np.exp(x.astype(np.float64)).astype(np.float32))
    assert ulp <= 2, ulp


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_give_identical_results(cell, dtype):
    import rnnpy

    rng = np.random.default_rng(3)
    T, B, I, H = 5, 64, 24, 200  # large enough that every product and pass is split
    x = rng.standard_normal((B, T, I))
    dout = rng.standard_normal((B, T, H))
    results = []
    for threads in (1, 2, 3):
        layer = getattr(rnnpy, cell)(I, H, dtype=dtype, seed=1, threads=threads)
        out, _ = layer.forward(x, lengths=[T - (b % 3) for b in range(B)])
        dx, _ = layer.backward(dout)
        results.append((out, dx, layer.flat_grads.copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_gemm_threads_identical():
    from rnnpy import _core

    rng = np.random.default_rng(4)
    for M, N, K, ta, tb in [(300, 500, 70, False, True), (700, 40, 90, True, False),
                            (1, 3000, 200, False, True)]:
        a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
        one = _core.gemm(a, b, trans_a=ta, trans_b=tb, threads=1)
        for t in (2, 4):
            assert np.array_equal(one, _core.gemm(a, b, trans_a=ta, trans_b=tb, threads=t))
        ref = _core.gemm(a, b, trans_a=ta, trans_b=tb, isa="reference")
        np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-4)


def test_threads_argument_checked():
    import rnnpy

    layer = rnnpy.LSTM(3, 4, threads=2)
    assert layer.threads == 2
    layer.threads = 1
    assert layer.threads == 1
    with pytest.raises(ValueError, match="threads"):
        rnnpy.GRU(3, 4, threads=0)
    with pytest.raises(TypeError, match="threads"):
        rnnpy.RNN(3, 4, threads=1.5)
