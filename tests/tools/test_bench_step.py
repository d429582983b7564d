"""``python -m rnnpy bench --step``: the whole char-rnn training step, rnnpy's
fit against PyTorch's loop. Smoke tests on a tiny shape (the table and the
JSON have every number), and the check that the PyTorch twin the bench times
computes what rnnpy's fit computes (same weights, same data, same update).
Speed itself is never asserted here."""
import json

import numpy as np
import pytest

from rnnpy import _core
from rnnpy.tools import bench, bench_step

TINY = ["--step", "--step-shape", "7,3,5,2,4", "--step-batches", "2", "--repeat", "3",
        "--warmup", "0", "--min-time", "0"]


def _has_torch():
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def test_step_json(capsys):
    assert bench.main(["--json", "--threads", "1,2", *TINY]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"info", "step"}   # --step times the step only
    rows = result["step"]
    assert [r["threads"] for r in rows] == [1, 2]
    for r in rows:
        assert (r["V"], r["E"], r["H"], r["B"], r["T"]) == (7, 3, 5, 2, 4)
        rp = r["rnnpy"]
        assert rp["runs"] >= 3 and 0 < rp["min"] <= rp["median"] <= rp["max"]
        assert rp["chars_per_s"] == pytest.approx(2 * 4 / rp["median"])
        assert rp["cores"] > 0 and rp["pool_threaded"] >= 0 and rp["pool_alone"] >= 0
        assert r["rnnpy_speedup"] > 0
        assert ("ratio" in r) == ("torch" in r) == _has_torch()
        if "torch" in r:
            assert r["ratio"] == pytest.approx(r["torch"]["median"] / rp["median"])
    assert rows[0]["rnnpy_speedup"] == 1.0


def test_step_table(capsys):
    assert bench.main(["--threads", "1", "--no-torch", *TINY]) == 0
    out = capsys.readouterr().out
    assert "char-rnn training step" in out and "chars/s" in out
    assert "torch/rnnpy" in out and "GF/s" not in out   # no cell table


@pytest.mark.parametrize("bad", ["7,3,5,2", "7,3,0,2,4", "a,b,c,d,e"])
def test_step_shape_refused(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--step", "--step-shape", bad])
    assert exc.value.code == 2
    assert "--step-shape" in capsys.readouterr().err


@pytest.mark.skipif(not _has_torch(), reason="PyTorch is not installed")
def test_torch_twin_computes_the_same_step():
    """Two batches through rnnpy's fit and through the bench's PyTorch loop,
    from the same weights: the parameters after them agree."""
    shape = (11, 4, 6, 3, 5)
    batches = bench_step._batches(shape, 2, seed=3)
    model, run = bench_step.rnnpy_step(shape, 1, batches)
    net, twin = bench_step.torch_step(model, 1, batches)
    run()
    twin()
    params = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    emb, lstm, dense = model.modules
    np.testing.assert_allclose(emb.params["weight"], params["emb.weight"], rtol=1e-4, atol=1e-5)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        np.testing.assert_allclose(lstm.params[name], params[f"lstm.{name}"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense.params["weight"], params["dense.weight"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dense.params["bias"], params["dense.bias"], rtol=1e-4, atol=1e-5)
    # and they moved: two Adam steps of 2e-3
    assert not np.allclose(dense.params["bias"], bench_step.rnnpy_step(shape, 1, batches)[0]
                           .modules[2].params["bias"])


def test_pool_counts_count_threaded_jobs():
    a = np.ones((256, 256), np.float32)
    before = _core.pool_counts()
    assert isinstance(before, tuple) and len(before) == 2
    _core.gemm(a, a, threads=2)      # 16M multiply-adds: split in two tasks
    after = _core.pool_counts()
    assert sum(after) == sum(before) + 1
    _core.gemm(a, a, threads=1)      # no pool
    assert _core.pool_counts() == after
