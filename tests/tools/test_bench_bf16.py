"""Smoke tests of ``python -m rnnpy bench --compute-dtype bfloat16`` on tiny
shapes: its table and JSON have every number (the measured bf16 peak, rnnpy
bf16 and float32, torch bf16 and the ratios), and a CPU without AMX-BF16 or
AVX512-BF16 gets the refusal. Speed itself is never asserted here."""
import json

import pytest

from rnnpy.nn import precision
from rnnpy.tools import bench

TINY = ["--shapes", "3,2,4,5;2,1,3,4", "--repeat", "3", "--warmup", "1", "--min-time", "0"]
needs_bf16 = pytest.mark.skipif(precision.bf16_hardware() is None,
                                reason="needs AMX-BF16 or AVX512-BF16")


@needs_bf16
def test_bf16_bench_json(capsys):
    torch = pytest.importorskip("torch")
    rc = bench.main(["--compute-dtype", "bfloat16", "--json", "--threads", "1",
                     "--cells", "lstm,gru", *TINY])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "cells" not in result   # the float32 tables are not run
    peak = result["bf16"]["peak"]
    assert peak["isa"] == precision.bf16_hardware() and peak["gflops"] > 0
    assert result["info"]["torch"] == torch.__version__
    rows = result["bf16"]["rows"]
    assert len(rows) == 2 * 2 * 2   # cells x shapes x modes
    for r in rows:
        for lib in ("rnnpy_bf16", "rnnpy_f32", "torch_bf16"):
            assert r[lib]["min"] <= r[lib]["median"] <= r[lib]["max"] and r[lib]["gflops"] > 0
        assert r["rnnpy_bf16"]["peak_frac"] == pytest.approx(r["rnnpy_bf16"]["gflops"] / peak["gflops"])
        assert r["ratio"] == pytest.approx(r["torch_bf16"]["median"] / r["rnnpy_bf16"]["median"])
        assert r["f32_over_bf16"] == pytest.approx(r["rnnpy_f32"]["median"] / r["rnnpy_bf16"]["median"])


@needs_bf16
def test_bf16_bench_table_prints_the_peak(capsys):
    assert bench.main(["--compute-dtype", "bfloat16", "--no-torch", "--threads", "1",
                       "--cells", "rnn", *TINY]) == 0
    out = capsys.readouterr().out
    assert "bf16 peak" in out and "f32/bf16" in out
    assert out.count("\nrnn ") == 4   # 2 shapes x (forward, train)


def test_bf16_bench_without_the_hardware(monkeypatch, capsys):
    monkeypatch.setattr(precision, "bf16_isas", lambda: ("generic",))
    assert bench.main(["--compute-dtype", "bfloat16", "--no-torch", *TINY]) == 2
    assert "needs AMX-BF16 or AVX512-BF16; this CPU has neither" in capsys.readouterr().err


def test_bf16_bench_rejects_other_precisions():
    with pytest.raises(SystemExit):
        bench.main(["--compute-dtype", "float16"])
