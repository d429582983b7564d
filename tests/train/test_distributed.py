"""Data-parallel training over MPI (rnnpy.distributed, fit(distributed=True)).

The ranks run as ``mpiexec -n N python tests/train/mpi_worker.py ...`` in a
subprocess with a timeout (a hang fails the test instead of the run); their
results are compared with the same workload run here in one process. Skipped
when mpi4py or mpiexec is missing, unless RNNPY_REQUIRE_MPI=1 (CI), which
makes that a failure.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import helpers
import numpy as np
import pytest

import rnnpy
from rnnpy import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = helpers.ROOT
sys.path.insert(0, HERE)
import mpi_worker  # noqa: E402

TOL = 1e-9          # N ranks against one process, float64
TIMEOUT = 180       # a hang guard only: these jobs take seconds


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


MISSING = [what for what, ok in (("mpi4py", importlib.util.find_spec("mpi4py") is not None),
                                 ("mpiexec", _mpiexec() is not None)) if not ok]


@pytest.fixture
def mpi():
    """The mpiexec to use; skips (or fails under RNNPY_REQUIRE_MPI=1) without MPI."""
    if MISSING:
        why = (f"{' and '.join(MISSING)} not installed; the distributed tests need "
               'pip install "rnnpy[mpi]"')
        if os.environ.get("RNNPY_REQUIRE_MPI") == "1":
            pytest.fail(f"RNNPY_REQUIRE_MPI=1: {why}")
        pytest.skip(why)
    return _mpiexec()


def _env():
    env = dict(helpers.env_with_this_rnnpy(), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env.pop("RNNPY_NUM_THREADS", None)
    return env


def _job(mpiexec, n, args, timeout=TIMEOUT, check=True):
    cmd = [mpiexec, "-n", str(n), sys.executable, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(),
                              cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not end within {timeout} s (a hang): "
                    f"{(exc.stderr or b'')[-2000:]!r}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def _train_job(mpiexec, n, tmp_path, kind, epochs, name="out", **opts):
    out = str(tmp_path / f"{name}.npz")
    _job(mpiexec, n, [os.path.join(HERE, "mpi_worker.py"), "train", kind, str(epochs), out]
         + [f"{k}={v}" for k, v in opts.items()])
    arrays = np.load(out)
    with open(out + ".json") as f:
        meta = json.load(f)
    assert meta["ranks"] == n
    assert meta["ranks_identical"], "the ranks' parameters differ after training"
    return arrays, meta


def _assert_same_run(single, arrays, meta):
    np.testing.assert_allclose(arrays["params"], single["params"], rtol=0, atol=TOL)
    np.testing.assert_allclose(arrays["predict"], single["predict"], rtol=0, atol=TOL)
    assert sorted(meta["history"]) == sorted(single["history"])
    for k, v in single["history"].items():
        np.testing.assert_allclose(meta["history"][k], v, rtol=0, atol=TOL, err_msg=k)
    for k, v in single["evaluate"].items():
        assert abs(meta["evaluate"][k] - v) <= TOL, (k, meta["evaluate"][k], v)


# -- without MPI ----------------------------------------------------------------------
def test_shard_range_splits_rows_into_contiguous_blocks():
    for n in range(0, 30):
        for p in range(1, 9):
            blocks = [distributed.shard_range(n, p, r) for r in range(p)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shard_weights_sum_to_the_global_batch():
    lengths = np.array([3, 6, 1, 2, 5])
    grad = np.ones((5, 6, 4))
    rows, shares = [], []
    for r in range(3):
        shard = distributed.Shard(5, lengths, 3, r)
        _, _, lr = shard.take(None, None, lengths)
        mask = rnnpy.training.lengths_mask(lr, len(lr), 6)
        n, g = shard.weigh(grad[shard.start:shard.stop], mask, 6)
        rows.append(n)
        shares.append(g[0, 0, 0])
    # positions per rank: 3+6, 1+2, 5 of 17
    assert shares == pytest.approx([9 / 17, 3 / 17, 5 / 17])
    assert sum(rows) == pytest.approx(5)
    # a rank with no row runs one with weight 0
    shard = distributed.Shard(2, None, 3, 2)
    assert (shard.start, shard.stop, shard.empty) == (1, 2, True)
    n, g = shard.weigh(np.ones((1, 4)), None, 1)
    assert n == 0 and not g.any()


def test_shard_shares_of_a_weighted_loss_follow_the_weights():
    """A class-weighted loss divides by its unmasked positions' weights: the
    ranks' shares of the gradient go by those, the loss value is rescaled so
    that value x rows sums to the global loss, and rows stay by positions."""
    lengths = np.array([2, 1, 3])
    weights = np.array([[1.0, 4.0, 9.0], [2.0, 9.0, 9.0], [0.5, 0.5, 1.0]])   # steps past a length count 0
    grad = np.ones((3, 3, 4))
    total = 5.0 + 2.0 + 2.0
    loss_shares, rows, values = [], [], []
    for r in range(2):   # rows 0-1 on rank 0, row 2 on rank 1
        shard = distributed.Shard(3, lengths, 2, r, weights)
        _, _, lr = shard.take(None, None, lengths)
        mask = rnnpy.training.lengths_mask(lr, len(lr), 3)
        n, g = shard.weigh(grad[shard.start:shard.stop], mask, 3)
        loss_shares.append(g[0, 0, 0])
        rows.append(n)
        values.append(n * shard.loss_factor)
    assert loss_shares == pytest.approx([7 / total, 2 / total])
    assert rows == pytest.approx([3 * 3 / 6, 3 * 3 / 6])     # positions 2+1 and 3 of 6
    assert values == pytest.approx([3 * 7 / total, 3 * 2 / total])


def test_distribution_without_mpi4py_says_how_to_install(tmp_path):
    script = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "import numpy as np, rnnpy\n"
        "m = rnnpy.Sequential(rnnpy.LSTM(3, 4, seed=0), rnnpy.LastStep(), rnnpy.Dense(4, 2, seed=1))\n"
        "x = np.zeros((4, 5, 3), np.float32); y = np.zeros(4, np.int64)\n"
        "rnnpy.fit(m, (x, y), loss='softmax_cross_entropy', optimizer=rnnpy.optim.SGD(m, lr=0.1),\n"
        "          epochs=1, progress=False)\n"
        "try:\n"
        "    rnnpy.fit(m, (x, y), loss='softmax_cross_entropy',\n"
        "              optimizer=rnnpy.optim.SGD(m, lr=0.1), distributed=True)\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT, env=_env(), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'ImportError: distributed training needs mpi4py' in proc.stdout
    assert 'pip install "rnnpy[mpi]"' in proc.stdout


# -- N ranks against one process ----------------------------------------------------------
@pytest.mark.parametrize("kind,n", [("masked", 2), ("masked", 3), ("masked", 4), ("ragged", 2),
                                    ("stateful", 2), ("last", 2)])
def test_ranks_compute_what_one_process_computes(mpi, tmp_path, kind, n):
    """Parameters, history, evaluate and predict within 1e-9 in float64, with
    uneven splits, masks over lengths, a batch with fewer rows than ranks,
    and truncated BPTT sharded by rows."""
    single = mpi_worker.train(kind, 3, False)
    arrays, meta = _train_job(mpi, n, tmp_path, kind, 3)
    assert np.abs(single["params"] - mpi_worker.build(kind).flat_params).max() > 1e-3  # it trained
    _assert_same_run(single, arrays, meta)


@pytest.mark.parametrize("kind,n", [("masked", 3), ("ragged", 2), ("last", 2)])
def test_class_weighted_loss_on_ranks_is_the_one_process_loss(mpi, tmp_path, kind, n):
    """class_weight: the loss divides by the summed weights of its positions,
    so each rank's share of the step is by those weights, not by its count of
    positions (the metrics' share stays by positions)."""
    single = mpi_worker.train(kind, 3, False, class_weight=True)
    arrays, meta = _train_job(mpi, n, tmp_path, kind, 3, class_weight=1)
    _assert_same_run(single, arrays, meta)


def test_allreduce_sums_in_a_fixed_order_on_every_rank(mpi):
    for n in (2, 3, 4):
        proc = _job(mpi, n, [os.path.join(HERE, "mpi_worker.py"), "allreduce"])
        assert json.loads(proc.stdout) == {"ok": True, "ranks": n}


# -- checkpoints ---------------------------------------------------------------------------
def test_checkpoint_of_n_ranks_resumes_on_m(mpi, tmp_path):
    """2 epochs on 2 ranks, then resumed to 4 on 3 ranks and on one process:
    both match 4 uninterrupted epochs of one process."""
    ck = str(tmp_path / "ck.rnnpy")
    single = mpi_worker.train("masked", 4, False, optimizer="sgd")
    _train_job(mpi, 2, tmp_path, "masked", 2, "first", checkpoint=ck, optimizer="sgd")
    # resuming takes the callbacks of the interrupted run
    arrays, meta = _train_job(mpi, 3, tmp_path, "masked", 4, "resumed", resume=ck,
                              checkpoint=ck + ".3", optimizer="sgd")
    _assert_same_run(single, arrays, meta)
    here = mpi_worker.train("masked", 4, False, resume=ck, checkpoint=ck + ".1",
                            optimizer="sgd")
    np.testing.assert_allclose(here["params"], single["params"], rtol=0, atol=TOL)


def test_only_rank_0_writes_checkpoints(mpi, tmp_path):
    base = str(tmp_path / "ck")
    _train_job(mpi, 2, tmp_path, "last", 1, checkpoint_per_rank=base)
    assert os.path.exists(base + ".0") and not os.path.exists(base + ".1")


def test_only_rank_0_shows_progress(mpi, tmp_path):
    out = str(tmp_path / "out.npz")
    proc = _job(mpi, 2, [os.path.join(HERE, "mpi_worker.py"), "train", "last", "2", out,
                         "progress=1"])
    assert len(re.findall(r"^epoch 2/2  [0-9.]+s  loss", proc.stderr, re.M)) == 1, proc.stderr


def test_dropout_run_resumes_exactly_on_as_many_ranks(mpi, tmp_path):
    """Each rank draws its own dropout masks from (seed, epoch, rank), so a run
    resumed at an epoch on as many ranks repeats the one that went on."""
    ck = str(tmp_path / "ck.rnnpy")
    whole, _ = _train_job(mpi, 2, tmp_path, "stateful", 3, "whole", dropout=0.3)
    _train_job(mpi, 2, tmp_path, "stateful", 1, "first", dropout=0.3, checkpoint=ck)
    resumed, _ = _train_job(mpi, 2, tmp_path, "stateful", 3, "resumed", dropout=0.3, resume=ck,
                            checkpoint=ck + ".2")
    np.testing.assert_array_equal(resumed["params"], whole["params"])
    without = mpi_worker.train("stateful", 3, False)
    assert np.abs(whole["params"] - without["params"]).max() > 1e-6   # dropout was on


def test_each_rank_draws_its_own_dropout_masks(mpi):
    proc = _job(mpi, 3, [os.path.join(HERE, "mpi_worker.py"), "generators"])
    assert json.loads(proc.stdout) == {"distinct_ranks": True, "repeatable": True,
                                       "new_each_epoch": True}


# -- the command line ----------------------------------------------------------------------
DEMOS = {
    "char-rnn": ["--epochs", "1", "--max-chars", "6000", "--hidden", "16", "--layers", "1",
                 "--batch-size", "5", "--seq-len", "16", "--sample", "10"],
    "seq-classification": ["--epochs", "1"],
    "echo": ["--epochs", "1", "--series-length", "400"],
}


@pytest.mark.parametrize("demo", sorted(DEMOS))
def test_cli_prints_one_json_line_from_rank_0(mpi, demo):
    args = ["-m", "rnnpy", demo, "--json", *DEMOS[demo]]
    proc = _job(mpi, 2, args + ["--distributed"])
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert result["ranks"] == 2 and result["demo"] == demo
    alone = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                           timeout=TIMEOUT, env=_env(), cwd=ROOT)
    assert alone.returncode == 0, alone.stderr
    expect = json.loads(alone.stdout)
    # float32 models: the same training to float32 rounding
    if demo == "seq-classification":   # the until-solved loop: the same steps and checks
        assert result["sequences_seen"] == expect["sequences_seen"]
        assert result["solved"] == expect["solved"]
        assert result["test_accuracy"] == pytest.approx(expect["test_accuracy"], abs=1e-9)
    else:
        loss = "val_loss" if demo == "char-rnn" else "test_loss"
        assert result[loss] == pytest.approx(expect[loss], rel=1e-4)
    assert result["history"]["loss"] == pytest.approx(expect["history"]["loss"], rel=1e-4)


# -- the demos' own training loops ----------------------------------------------------------
def _demo_job(mpi, n, tmp_path, mode, *args):
    out = str(tmp_path / "out.npz")
    _job(mpi, n, [os.path.join(HERE, "mpi_worker.py"), mode, out, *args])
    with open(out + ".json") as f:
        meta = json.load(f)
    assert meta["ranks"] == n
    assert meta["ranks_identical"], "the ranks' parameters or results differ"
    return np.load(out)["params"], meta


@pytest.mark.parametrize("n,batch,padding", [(2, 5, "post"), (3, 5, "post"), (4, 3, "pre")])
def test_solve_takes_the_steps_and_decisions_of_one_process(mpi, tmp_path, n, batch, padding):
    """seq-classification's until-solved loop: the same parameters (float64,
    within 1e-9), the same failed and passed checks, and the same stopping
    step on every rank, with lengths, uneven splits and a rank with no row."""
    single = mpi_worker.solve(False, batch, padding)
    params, meta = _demo_job(mpi, n, tmp_path, "solve", str(batch), padding)
    assert single["solved"] and meta["solved"]
    assert meta["sequences_seen"] == single["sequences_seen"]
    assert [c["sequences_seen"] for c in meta["checks"]] == \
        [c["sequences_seen"] for c in single["checks"]]
    for got, want in zip(meta["checks"], single["checks"]):
        assert abs(got["test_accuracy"] - want["test_accuracy"]) <= TOL
    np.testing.assert_allclose(params, single["params"], rtol=0, atol=TOL)
    for k, v in single["history"].items():
        np.testing.assert_allclose(meta["history"][k], v, rtol=0, atol=TOL, err_msg=k)


def test_char_rnn_on_a_time_budget_stops_every_rank_at_the_same_step(mpi, tmp_path):
    """--minutes: rank 0's clock decides; every rank ends with the same
    parameters after the same characters, and the checkpoint (rank 0's)
    resumes."""
    ckpt = str(tmp_path / "c.rnnpy")
    params, meta = _demo_job(mpi, 2, tmp_path, "char-minutes", ckpt)
    assert meta["chars_trained"] > 0 and np.isfinite(meta["val_loss"])
    model, extra = rnnpy.io.load_with_extra(ckpt)
    assert extra["chars_trained"] == meta["chars_trained"]
    np.testing.assert_array_equal(model.flat_params, params)


# -- faults --------------------------------------------------------------------------------
def _fault(mpi, mode):
    proc = _job(mpi, 2, [os.path.join(HERE, "mpi_worker.py"), mode], timeout=120, check=False)
    assert proc.returncode != 0, proc.stderr
    return proc.stderr + proc.stdout   # mpiexec reports on stdout


def test_a_rank_raising_inside_fit_ends_the_job(mpi):
    err = _fault(mpi, "raise")
    assert "rnnpy.distributed: rank 1 of 2 failed in fit; aborting the job" in err
    assert "failure inside fit on purpose" in err


def test_a_rank_raising_outside_fit_ends_the_job(mpi):
    err = _fault(mpi, "raise-outside")
    assert "rank 1 of 2 ended with an uncaught RuntimeError" in err
    assert "failure outside fit on purpose" in err


def test_a_killed_rank_ends_the_job(mpi):
    err = _fault(mpi, "kill")
    pids = dict(re.findall(r"rank (\d+) pid (\d+)", err))
    assert set(pids) == {"0", "1"}, err
    # mpiexec reports the dead process by its id, which the first line maps to rank 1
    assert re.search(rf"PID {pids['1']}\b", err), err
