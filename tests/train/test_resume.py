"""fit(..., resume=path) continues a run bit-identically: for every schedule
and every callback rnnpy ships, a run interrupted after k epochs and resumed
from its ModelCheckpoint file ends with the same parameters, optimizer,
schedule and callback states, generators and history as a run that never
stopped (float64, dropout in the model, shuffled batches)."""
import math

import numpy as np
import pytest

import rnnpy
from rnnpy import optim
from rnnpy.training import Callback, EarlyStopping, ModelCheckpoint, fit

F64 = "float64"
EPOCHS = 6


def data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5, 3))
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (x[:, 0, 1] > 0)
    return x, y


def model():
    return rnnpy.Sequential(
        rnnpy.GRU(3, 6, num_layers=2, dropout=0.3, dtype=F64, seed=1),
        rnnpy.Dropout(0.2, dtype=F64, seed=2),
        rnnpy.LastStep(dtype=F64),
        rnnpy.Dense(6, 3, dtype=F64, seed=3))


SCHEDULES = {
    "none": lambda opt: None,
    "step": lambda opt: optim.StepLR(opt, step_size=2, gamma=0.5),
    "exponential": lambda opt: optim.ExponentialLR(opt, gamma=0.7),
    "cosine": lambda opt: optim.CosineAnnealingLR(opt, T_max=3, eta_min=1e-4),
    "plateau": lambda opt: optim.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.05),
}


def run(tmp, tag, schedule, epochs, resume=None, stop_patience=50, seed=5):
    m = model()
    opt = optim.Adam(m, lr=2e-2)
    sched = SCHEDULES[schedule](opt)
    stop = EarlyStopping(monitor="val_loss", patience=stop_patience, min_delta=1e-3)
    best = ModelCheckpoint(str(tmp / f"{tag}-best.npz"), save_best_only=True)
    every = ModelCheckpoint(str(tmp / f"{tag}-every.npz"))
    cbs = [stop, best, every]
    h = fit(m, data(40, 0), loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=8,
            val=data(16, 1), seed=seed, scheduler=sched, callbacks=cbs, progress=False,
            resume=resume)
    return m, opt, sched, cbs, h


def assert_same_run(a, b):
    (ma, oa, sa, ca, ha), (mb, ob, sb, cb, hb) = a, b
    np.testing.assert_array_equal(ma.flat_params, mb.flat_params)   # bit-identical
    assert ma.rng_state() == mb.rng_state()
    assert ha.epoch == hb.epoch and ha.history == hb.history
    assert oa.steps == ob.steps and oa.lr == ob.lr
    for k in oa.state:
        np.testing.assert_array_equal(oa.state[k], ob.state[k])
    if sa is not None:
        assert sa.state_dict() == sb.state_dict()
    for x, y in zip(ca, cb):
        sx, sy = x.state_dict(), y.state_dict()
        assert sx.keys() == sy.keys()
        for k in sx:
            if isinstance(sx[k], np.ndarray):
                np.testing.assert_array_equal(sx[k], sy[k])
            else:
                assert sx[k] == sy[k]


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("k", [1, 3])
def test_resumed_run_equals_the_straight_run(tmp_path, schedule, k):
    straight = run(tmp_path, "s", schedule, EPOCHS)
    if schedule != "none":      # the schedule really changed the learning rate
        assert straight[2].get_last_lr() != straight[2].base_lr
    run(tmp_path, "r", schedule, k)                                    # interrupted after k
    resumed = run(tmp_path, "r", schedule, EPOCHS, resume=str(tmp_path / "r-every.npz"))
    assert resumed[4].epoch == list(range(EPOCHS))
    assert_same_run(straight, resumed)
    # the best-only checkpoints of the two runs are the same file contents
    a, ea = rnnpy.load_with_extra(tmp_path / "s-best.npz")
    b, eb = rnnpy.load_with_extra(tmp_path / "r-best.npz")
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert ea["epoch"] == eb["epoch"] and ea["logs"] == eb["logs"]


def test_resume_through_early_stopping(tmp_path):
    """A run that early-stops at epoch s: resumed from before s it stops at s
    too and restores the same best parameters; resumed from the checkpoint
    written at s it trains no further."""
    straight = run(tmp_path, "s", "step", 30, stop_patience=1)
    stopped_at = len(straight[4].epoch)
    assert 2 < stopped_at < 30
    run(tmp_path, "r", "step", 2, stop_patience=1)
    resumed = run(tmp_path, "r", "step", 30, resume=str(tmp_path / "r-every.npz"), stop_patience=1)
    assert_same_run(straight, resumed)
    again = run(tmp_path, "r", "step", 30, resume=str(tmp_path / "r-every.npz"), stop_patience=1)
    assert_same_run(straight, again)


def test_resume_keeps_the_drawn_shuffling_seed(tmp_path):
    """seed=None draws one seed for the run; the checkpoint keeps it."""
    run(tmp_path, "r", "cosine", 2, seed=None)
    resumed = run(tmp_path, "r", "cosine", 4, resume=str(tmp_path / "r-every.npz"), seed=None)
    _, extra = rnnpy.load_with_extra(tmp_path / "r-every.npz")
    drawn = extra["training"]["seed"]
    assert isinstance(drawn, int)
    straight = run(tmp_path, "s", "cosine", 4, seed=drawn)
    assert_same_run(straight, resumed)
    with pytest.raises(ValueError, match="^seed: the checkpoint's run shuffled with seed"):
        run(tmp_path, "r", "cosine", 4, resume=str(tmp_path / "r-every.npz"), seed=drawn + 1)


def test_resume_refuses_what_does_not_match_the_checkpoint(tmp_path):
    run(tmp_path, "r", "step", 1)
    ck = str(tmp_path / "r-every.npz")
    x, y = data(40, 0)
    m = model()
    opt = optim.Adam(m, lr=2e-2)
    cases = [
        (dict(optimizer=optim.SGD(m, lr=0.1), callbacks=[]), "optimizer: the checkpoint was written with Adam"),
        (dict(optimizer=opt, scheduler=None, callbacks=[]), "scheduler: the checkpoint was written with StepLR"),
        (dict(optimizer=opt, scheduler=optim.StepLR(opt, 2), callbacks=[EarlyStopping()]),
         r"callbacks: the checkpoint was written with \['EarlyStopping', 'ModelCheckpoint', 'ModelCheckpoint'\]"),
    ]
    before = m.flat_params.copy()
    for kw, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            fit(m, (x, y), loss="cross_entropy", epochs=3, progress=False, resume=ck, **kw)
    np.testing.assert_array_equal(m.flat_params, before)       # nothing was restored
    other = rnnpy.Sequential(rnnpy.LSTM(3, 6, dtype=F64), rnnpy.LastStep(dtype=F64),
                             rnnpy.Dense(6, 3, dtype=F64))
    with pytest.raises(ValueError, match="^resume: .* holds a model configured as"):
        fit(other, (x, y), loss="cross_entropy", optimizer=optim.Adam(other), progress=False,
            resume=ck)
    plain = str(tmp_path / "plain.npz")
    m.save(plain)
    with pytest.raises(ValueError, match="holds no training state"):
        fit(m, (x, y), loss="cross_entropy", optimizer=opt, progress=False, resume=plain)
    with pytest.raises(ValueError, match="^initial_epoch: resume takes the epoch"):
        fit(m, (x, y), loss="cross_entropy", optimizer=opt, progress=False, resume=ck,
            initial_epoch=1)


def test_callback_states_round_trip_and_are_checked():
    stop = EarlyStopping()
    stop.best, stop.best_epoch, stop.wait, stop._best_params = 0.25, 3, 1, np.arange(4.0)
    other = EarlyStopping()
    other.load_state_dict(stop.state_dict())
    assert (other.best, other.best_epoch, other.wait) == (0.25, 3, 1)
    np.testing.assert_array_equal(other._best_params, np.arange(4.0))
    with pytest.raises(ValueError, match=r"^state\['wait'\]: expected a int"):
        other.load_state_dict(dict(stop.state_dict(), wait="1"))
    ck = ModelCheckpoint("unused.npz")
    ck.load_state_dict({"best": -math.inf})
    assert ck.best == -math.inf
    with pytest.raises(ValueError, match="keeps no state"):
        Callback().load_state_dict({"x": 1})
