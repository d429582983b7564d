"""The paths and the content of training checkpoints: fit(resume=),
ModelCheckpoint(path) and the char-rnn demo's checkpoint give one clear
exception naming their argument, before any training is done."""
import os

import numpy as np
import pytest

import rnnpy
from rnnpy import optim
from rnnpy.demos import char_rnn


def _model():
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, seed=0), rnnpy.LastStep(), rnnpy.Dense(4, 2, seed=1))


def _fit(model, **kw):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5, 3)).astype(np.float32), np.array([0, 1] * 4)
    return rnnpy.fit(model, (x, y), loss="cross_entropy", optimizer=optim.SGD(model, lr=0.1),
                     epochs=2, batch_size=4, progress=False, seed=0, **kw)


@pytest.mark.parametrize("value", [123, 1.5, ["ck.npz"], b"\0"])
def test_resume_that_is_not_a_path_names_resume(value):
    m = _model()
    before = m.flat_params.copy()
    with pytest.raises((TypeError, ValueError), match=r"^resume: expected a file path"):
        _fit(m, resume=value)
    np.testing.assert_array_equal(m.flat_params, before)


def test_resume_from_a_missing_file_or_folder_names_resume(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^resume: no model file at .*ck.npz'$"):
        _fit(_model(), resume=str(tmp_path / "ck.npz"))
    with pytest.raises(FileNotFoundError, match=r"^resume: no model file at .*\(the folder .*nope' "
                                                r"does not exist\)"):
        _fit(_model(), resume=str(tmp_path / "nope" / "ck.npz"))
    with pytest.raises(IsADirectoryError, match=r"^resume: expected a model file, got the folder"):
        _fit(_model(), resume=str(tmp_path))


def test_resume_from_a_damaged_checkpoint_is_a_model_file_error(tmp_path):
    ck = str(tmp_path / "ck.npz")
    _fit(_model(), callbacks=[rnnpy.ModelCheckpoint(ck)])
    raw = bytearray(open(ck, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(ck, "wb").write(bytes(raw))
    with pytest.raises(rnnpy.ModelFileError, match=f"^path: {ck!r}"):
        _fit(_model(), resume=ck)


def test_model_checkpoint_checks_its_path_when_built(tmp_path):
    with pytest.raises(TypeError, match=r"^path: expected a file path"):
        rnnpy.ModelCheckpoint(None)
    with pytest.raises(FileNotFoundError, match=r"^path: the folder .*nope' does not exist"):
        rnnpy.ModelCheckpoint(str(tmp_path / "nope" / "ck.npz"))
    with pytest.raises(IsADirectoryError, match=r"^path: expected a file path, got the folder"):
        rnnpy.ModelCheckpoint(str(tmp_path))
    assert rnnpy.ModelCheckpoint(tmp_path / "ck.npz").path == str(tmp_path / "ck.npz")


SMALL = dict(hidden=8, layers=1, embedding=4, batch_size=4, seq_len=8, sample_length=5,
             prime="the ", progress=False)


@pytest.fixture
def text(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("hello world, the quick brown fox. " * 20)
    return str(p)


def test_char_rnn_checkpoint_in_a_missing_folder_is_refused_before_training(text, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^checkpoint: the folder .*nope' does not exist"):
        char_rnn.run(text, minutes=0.01, checkpoint=str(tmp_path / "nope" / "c.rnnpy"), **SMALL)


@pytest.mark.parametrize("key,value", [("batch_size", "4"), ("seq_len", None), ("vocab", 5),
                                       ("epoch", "x"), ("cell", 3), ("seconds", -1.0)])
def test_char_rnn_malformed_checkpoint_names_it(text, tmp_path, key, value):
    ck = str(tmp_path / "c.rnnpy")
    char_rnn.run(text, minutes=0.003, checkpoint=ck, **SMALL)
    model, extra = rnnpy.load_with_extra(ck)
    extra[key] = value
    rnnpy.save(model, ck, extra=extra)
    with pytest.raises(ValueError, match=f"^checkpoint: {ck!r} holds a malformed char-rnn "
                                         f"checkpoint .*{key}"):
        char_rnn.run(text, minutes=0.003, checkpoint=ck, resume=True, **SMALL)
