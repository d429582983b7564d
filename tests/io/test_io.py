"""Saving and loading: exact round trips without pickle, atomic writes, and
clear errors for missing, truncated, corrupted or hostile files."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import rnnpy
from rnnpy import io

F64 = "float64"


def models():
    yield rnnpy.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True, dtype=F64, seed=1)
    yield rnnpy.RNN(3, 4, nonlinearity="relu", time_major=True, seed=2)
    yield rnnpy.GRU(3, 5, num_layers=3, dropout=0.2, seed=3)
    yield rnnpy.Sequential(rnnpy.Embedding(7, 3, seed=4), rnnpy.LSTM(3, 4, seed=5), rnnpy.Dropout(0.1),
                           rnnpy.LastStep(), rnnpy.Dense(4, 2, bias=False, seed=6))


@pytest.mark.parametrize("model", list(models()), ids=lambda m: type(m).__name__)
def test_round_trip_is_exact(model, tmp_path):
    path = tmp_path / "m.npz"
    model.flat_params[...] = np.random.default_rng(0).standard_normal(model.num_params)
    model.save(str(path))
    loaded = rnnpy.load(str(path))
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    assert list(loaded.params) == list(model.params)
    for k in model.params:
        assert loaded.params[k].dtype == model.params[k].dtype
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    model.eval(), loaded.eval()
    x = (np.random.default_rng(1).integers(0, 7, (2, 5)) if isinstance(model, rnnpy.Sequential)
         else np.random.default_rng(1).standard_normal((2, 5, 3)))
    np.testing.assert_array_equal(model.forward(x)[0], loaded.forward(x)[0])
    with zipfile.ZipFile(path) as z:   # nothing but plain arrays in the archive
        assert all(n.endswith(".npy") for n in z.namelist())


def test_extra_data_round_trips_with_arrays(tmp_path):
    m = rnnpy.Dense(2, 2, seed=0)
    extra = {"optimizer": {"step": 7, "lr": 0.5, "m": np.arange(6.0), "nested": [np.ones(2), "s"]},
             "epoch": 3, "vocab": ["a", "b"]}
    m.save(tmp_path / "m.npz", extra=extra)
    _, got = io.load_with_extra(tmp_path / "m.npz")
    assert got["epoch"] == 3 and got["vocab"] == ["a", "b"] and got["optimizer"]["step"] == 7
    np.testing.assert_array_equal(got["optimizer"]["m"], np.arange(6.0))
    np.testing.assert_array_equal(got["optimizer"]["nested"][0], np.ones(2))
    with pytest.raises(TypeError, match=r"^extra\['bad'\]: cannot save a object"):
        m.save(tmp_path / "n.npz", extra={"bad": object()})
    assert not (tmp_path / "n.npz").exists()


def test_failed_save_leaves_the_previous_file_and_no_temporaries(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    m = rnnpy.LSTM(2, 3, seed=0)
    m.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    m.flat_params[...] = 0
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    """Kill a process while it rewrites a 30 MB model in a loop: the file under
    the model's name is always a whole, loadable model."""
    import time

    path = tmp_path / "m.npz"
    rnnpy.LSTM(2, 3, seed=0).save(path)
    code = (
        "import rnnpy\n"
        "m = rnnpy.LSTM(256, 512, num_layers=2, dtype='float64', seed=1)\n"
        "print('ready', flush=True)\n"
        f"while True: m.save({str(path)!r})\n"
    )
    caught_mid_write = 0
    for delay in (0.4, 0.7, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        loaded = rnnpy.load(path)   # whichever save completed last, it is whole
        assert type(loaded) is rnnpy.LSTM and loaded.hidden_size in (3, 512)
        temps = [f for f in os.listdir(tmp_path) if f != "m.npz"]
        assert all(f.startswith(".rnnpy-") and f.endswith(".tmp") for f in temps)
        caught_mid_write += bool(temps)
        for f in temps:
            os.unlink(tmp_path / f)
    assert caught_mid_write >= 1   # at least one kill landed inside a write


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _header(**overrides):
    m = rnnpy.Dense(2, 2, seed=0)
    h = {"format": io.FORMAT, "version": io.VERSION, "model": io.module_config(m),
         "params": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in m.params.items()},
         "extra": None}
    h.update(overrides)
    return m, np.frombuffer(json.dumps(h).encode(), np.uint8)


def test_refuses_bad_files(tmp_path):
    p = tmp_path / "f.npz"
    with pytest.raises(FileNotFoundError, match="^path: no model file"):
        rnnpy.load(p)
    p.write_bytes(b"")
    with pytest.raises(io.ModelFileError, match="^path: .* not a readable rnnpy model file"):
        rnnpy.load(p)
    p.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(io.ModelFileError, match="^path"):
        rnnpy.load(p)
    _write_npz(p, a=np.zeros(3))
    with pytest.raises(io.ModelFileError, match="no rnnpy header"):
        rnnpy.load(p)
    m, hdr = _header(format="something-else")
    _write_npz(p, __rnnpy__=hdr)
    with pytest.raises(io.ModelFileError, match="format marker missing"):
        rnnpy.load(p)
    m, hdr = _header(version=99)
    _write_npz(p, __rnnpy__=hdr)
    with pytest.raises(io.ModelFileError, match="format version 99"):
        rnnpy.load(p)
    m, hdr = _header()
    _write_npz(p, __rnnpy__=hdr, **{"param/weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(io.ModelFileError, match="missing the array 'bias'"):
        rnnpy.load(p)
    _write_npz(p, __rnnpy__=hdr, **{"param/weight": np.zeros((3, 2), np.float32),
                                    "param/bias": np.zeros(2, np.float32)})
    with pytest.raises(io.ModelFileError, match=r"'weight' expected float32 \(2, 2\), got float32 \(3, 2\)"):
        rnnpy.load(p)
    _write_npz(p, __rnnpy__=hdr, **{"param/weight": np.zeros((2, 2), np.float64),
                                    "param/bias": np.zeros(2, np.float32)})
    with pytest.raises(io.ModelFileError, match="expected float32"):
        rnnpy.load(p)
    _write_npz(p, __rnnpy__=hdr, **{"param/weight": np.full((2, 2), np.nan, np.float32),
                                    "param/bias": np.zeros(2, np.float32)})
    with pytest.raises(io.ModelFileError, match="NaN or Inf"):
        rnnpy.load(p)
    _, hdr = _header(model={"class": "os.system", "config": {}})
    _write_npz(p, __rnnpy__=hdr)
    with pytest.raises(io.ModelFileError, match="unknown module class 'os.system'"):
        rnnpy.load(p)
    _, hdr = _header(model={"class": "Dense", "config": {"in_features": -1, "out_features": 2}})
    _write_npz(p, __rnnpy__=hdr)
    with pytest.raises(io.ModelFileError, match="cannot build Dense: in_features"):
        rnnpy.load(p)
    _write_npz(p, __rnnpy__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(io.ModelFileError, match="corrupted header"):
        rnnpy.load(p)


def test_refuses_pickled_arrays(tmp_path):
    p = tmp_path / "f.npz"
    _, hdr = _header()
    with open(p, "wb") as f:   # an object array can only be stored by pickling
        np.savez(f, __rnnpy__=hdr, **{"param/weight": np.array([{"x": 1}], dtype=object),
                                      "param/bias": np.zeros(2, np.float32)})
    with pytest.raises(io.ModelFileError, match="holds Python objects, which only pickle can read"):
        rnnpy.load(p)


def test_refuses_truncated_files(tmp_path):
    p = tmp_path / "m.npz"
    rnnpy.LSTM(8, 16, seed=0).save(p)
    data = p.read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 10):
        p.write_bytes(data[:cut])
        with pytest.raises(io.ModelFileError):
            rnnpy.load(p)
    # a flipped byte inside the compressed-free payload changes data, so the CRC fails
    broken = bytearray(data)
    broken[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(broken))
    with pytest.raises(io.ModelFileError):
        rnnpy.load(p)


def test_saved_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        rnnpy.Dense(2, 2).save(tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644
    assert rnnpy.ModelFileError is io.ModelFileError
