"""A checkpoint records what determines the run (fit's arguments and the
training data's size); resuming with other values is refused, naming the
argument and both values. epochs (the total), verbose and progress may change."""
import numpy as np
import pytest

import rnnpy
from rnnpy import optim

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 5, 3)).astype(np.float32)
Y = RNG.integers(0, 2, 24)


def _model():
    return rnnpy.Sequential(rnnpy.GRU(3, 4, seed=0), rnnpy.LastStep(), rnnpy.Dense(4, 2, seed=1))


BASE = dict(loss="cross_entropy", batch_size=8, clip_norm=None, clip_value=None, shuffle=True,
            stateful=False, metrics=["accuracy"], seed=3, progress=False)


def _first_run(tmp_path, **kw):
    ck = str(tmp_path / "ck.npz")
    m = _model()
    args = {**BASE, **kw}
    rnnpy.fit(m, (X, Y), optimizer=optim.Adam(m), epochs=2,
              callbacks=[rnnpy.ModelCheckpoint(ck)], **args)
    return ck, args


def _resume(ck, args, data=(X, Y), **changes):
    m = _model()
    p0 = m.flat_params.copy()
    kw = {**args, **changes}
    try:
        return rnnpy.fit(m, data, optimizer=optim.Adam(m), epochs=3, resume=ck,
                         callbacks=[rnnpy.ModelCheckpoint(ck)], **kw)
    except Exception:
        np.testing.assert_array_equal(m.flat_params, p0)   # nothing restored
        raise


CHANGES = [
    ("batch_size", 4), ("loss", "mse_like"), ("clip_norm", 1.0), ("clip_value", 0.5),
    ("shuffle", False), ("stateful", True), ("metrics", []), ("metrics", ["accuracy", "top_5_accuracy"]),
    ("class_weight", {0: 1.0, 1: 2.0}),
]


@pytest.mark.parametrize("arg,value", CHANGES, ids=[f"{a}={v!r}" for a, v in CHANGES])
def test_resume_with_another_argument_is_refused_naming_it(tmp_path, arg, value):
    ck, args = _first_run(tmp_path)
    if value == "mse_like":
        def value(out, y, **kw):   # another loss function
            return rnnpy.losses.softmax_cross_entropy(out, y, **kw)
    with pytest.raises(ValueError, match=rf"^{arg}: the checkpoint's run used .*, got "):
        _resume(ck, args, **{arg: value})


def test_resume_on_data_of_another_size_is_refused(tmp_path):
    ck, args = _first_run(tmp_path)
    with pytest.raises(ValueError, match=r"^train_rows: the checkpoint's run used 24, got 16"):
        _resume(ck, args, data=(X[:16], Y[:16]))


def test_resume_with_a_validation_set_added_is_refused(tmp_path):
    ck, args = _first_run(tmp_path)
    with pytest.raises(ValueError, match=r"^(val_rows|validation): "):
        _resume(ck, args, val=(X[:8], Y[:8]))


def test_resume_with_the_same_arguments_matches_the_straight_run(tmp_path):
    ck, args = _first_run(tmp_path, clip_norm=0.5)
    resumed = _resume(ck, args, progress=True, verbose=0)   # display may change
    m = _model()
    straight = rnnpy.fit(m, (X, Y), optimizer=optim.Adam(m), epochs=3, **args)
    assert resumed.history == straight.history
