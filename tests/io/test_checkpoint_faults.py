"""Checkpoints under faults: training resumed from a checkpoint continues
exactly (dropout included, float64), a process killed mid-training leaves a
checkpoint that resumes exactly, and hostile files (allocation bombs, object
arrays, bad generator states, deep JSON) are refused with ModelFileError
before anything large is allocated.

tests/io/test_io.py covers the plain round trip, a failed save, a kill inside
save() and truncated or corrupted archives; this file does not repeat them.
"""
import io as _stdio
import json
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import helpers
import pytest

import rnnpy
from rnnpy import io, optim
from rnnpy.training import ModelCheckpoint, fit

ROOT = helpers.ROOT

# The training run shared by this process and the killed child: a model with
# dropout in three places (between LSTM layers, a Dropout module, and a GRU's
# inter-layer dropout), so every generator must be restored for an exact resume.
SETUP = """
import numpy as np
import rnnpy
from rnnpy import optim

def data():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((48, 6, 3))
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (x[:, 0, 1] > 0)
    return x, y

def model():
    return rnnpy.Sequential(
        rnnpy.LSTM(3, 6, num_layers=2, dropout=0.3, dtype="float64", seed=1),
        rnnpy.Dropout(0.25, dtype="float64", seed=2),
        rnnpy.GRU(6, 5, num_layers=2, dropout=0.2, dtype="float64", seed=3),
        rnnpy.LastStep(dtype="float64"),
        rnnpy.Dense(5, 3, dtype="float64", seed=4))

def run(m, opt, epochs, initial_epoch=0, callbacks=()):
    x, y = data()
    return rnnpy.fit(m, (x, y), loss="cross_entropy", optimizer=opt, epochs=epochs,
                     batch_size=8, seed=5, initial_epoch=initial_epoch, callbacks=callbacks,
                     progress=False, metrics=())
"""


def _setup():
    ns = {}
    exec(SETUP, ns)
    return ns


def test_resume_with_dropout_is_exact(tmp_path):
    s = _setup()
    straight = s["model"]()
    h_all = s["run"](straight, optim.Adam(straight, lr=1e-2), 4)

    first = s["model"]()
    ck = str(tmp_path / "ck.npz")
    s["run"](first, optim.Adam(first, lr=1e-2), 2, callbacks=[ModelCheckpoint(ck)])
    model, extra = rnnpy.load_with_extra(ck)
    assert extra["epoch"] == 2
    opt = optim.Adam(model, lr=1e-2)
    opt.load_state_dict(extra["optimizer"])
    h_rest = s["run"](model, opt, 2, initial_epoch=2)
    assert h_rest["loss"] == h_all["loss"][2:]          # bit-identical in float64
    np.testing.assert_array_equal(model.flat_params, straight.flat_params)

    # the same resume with the generators restarted from their seeds (what a
    # file without generator states gives) differs: dropout really matters here
    _, extra = rnnpy.load_with_extra(ck)
    seeded = s["model"]()
    seeded.load_state_dict(rnnpy.load(ck).state_dict())
    opt = optim.Adam(seeded, lr=1e-2)
    opt.load_state_dict(extra["optimizer"])
    h_seeded = s["run"](seeded, opt, 2, initial_epoch=2)
    assert h_seeded["loss"] != h_all["loss"][2:]


def test_rng_state_paths_and_round_trip():
    s = _setup()
    m = s["model"]()
    states = m.rng_state()
    assert sorted(states) == ["0", "1", "2"]      # LSTM, Dropout, GRU
    json.dumps(states)                            # JSON-able as saved
    m.train()
    x = np.random.default_rng(0).standard_normal((4, 6, 3))
    a = m.forward(x)[0]
    m.set_rng_state(states)
    np.testing.assert_array_equal(m.forward(x)[0], a)   # same masks again
    b = m.forward(x)[0]
    assert not np.array_equal(a, b)                     # and the stream moves on


def test_set_rng_state_refuses_bad_paths():
    s = _setup()
    m = s["model"]()
    with pytest.raises(TypeError, match="^states: expected a dict"):
        m.set_rng_state("not a dict")
    with pytest.raises(ValueError, match=r"^states: expected generator states for \['0', '1', '2'\], "
                                         r"got \['0'\]"):
        m.set_rng_state({"0": m.rng_state()["0"]})


@pytest.mark.parametrize("bad,pattern", [
    (None, r"^states\['2'\]: expected the state of one of"),
    ({"bit_generator": "os.system"}, r"^states\['2'\]: expected the state of one of"),
    ({"bit_generator": "PCG64", "state": "x"}, r"^states\['2'\]: not a valid PCG64 state"),
    ({"bit_generator": "MT19937", "state": {"key": [1, 2], "pos": 0}},
     r"^states\['2'\]: not a valid MT19937 state"),
])
def test_set_rng_state_refuses_bad_states_and_changes_nothing(bad, pattern):
    """The bad entry comes last, after two valid ones: none of them is applied."""
    s = _setup()
    m = s["model"]()
    before = m.rng_state()
    other = s["model"]()
    other.forward(np.ones((2, 3, 3)))           # moves its generators on
    states = other.rng_state()
    assert states != before
    states["2"] = bad
    with pytest.raises(ValueError, match=pattern):
        m.set_rng_state(states)
    assert m.rng_state() == before


def test_other_bit_generators_are_restored_as_themselves(tmp_path):
    m = rnnpy.Dropout(0.5, dtype="float64")
    m._rng = np.random.Generator(np.random.MT19937(3))
    m.save(tmp_path / "d.npz")
    loaded = rnnpy.load(tmp_path / "d.npz")
    assert isinstance(loaded._rng.bit_generator, np.random.MT19937)
    x = np.ones((3, 7))
    np.testing.assert_array_equal(loaded.forward(x), m.forward(x))


# ---------------------------------------------------------------- killed mid-training

CHILD = SETUP + """
import sys, time
from rnnpy.training import Callback, ModelCheckpoint
path = sys.argv[1]

class Announce(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        print(epoch + 1, flush=True)

m = model()
run(m, optim.Adam(m, lr=1e-2), 10**6, callbacks=[ModelCheckpoint(path), Announce()])
"""


def test_killed_during_training_resumes_exactly(tmp_path):
    """SIGKILL a training process at an arbitrary moment: its checkpoint is a
    whole file, and training resumed from it matches an uninterrupted run."""
    ck = tmp_path / "ck.npz"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ck)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        for _ in range(3):             # at least three checkpoints written
            assert proc.stdout.readline().strip()
        time.sleep(0.137)              # then kill it wherever it is
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode < 0
    model, extra = rnnpy.load_with_extra(str(ck))
    k = extra["epoch"]
    assert k >= 3
    opt = optim.Adam(model, lr=1e-2)
    opt.load_state_dict(extra["optimizer"])
    s = _setup()
    h_rest = s["run"](model, opt, 2, initial_epoch=k)

    straight = s["model"]()
    h_all = s["run"](straight, optim.Adam(straight, lr=1e-2), k + 2)
    assert extra["logs"]["loss"] == h_all["loss"][k - 1]
    assert h_rest["loss"] == h_all["loss"][k:]
    np.testing.assert_array_equal(model.flat_params, straight.flat_params)
    leftovers = [f for f in os.listdir(tmp_path) if f != "ck.npz"]
    assert all(f.startswith(".rnnpy-") and f.endswith(".tmp") for f in leftovers)


# ---------------------------------------------------------------- hostile files

def _npy_bytes(header, payload=b""):
    buf = _stdio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + payload


def _good_dense_file(path, **extra):
    m = rnnpy.Dense(2, 2, seed=0)
    m.save(path, extra=extra or None)
    return m


def _rewrite(path, replace):
    """Rewrites the archive at path with some members replaced (name -> bytes)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def _header_of(path):
    with zipfile.ZipFile(path) as z:
        raw = z.read(io.HEADER + ".npy")
    arr = np.load(_stdio.BytesIO(raw))
    return json.loads(arr.tobytes())


def _with_header(path, header):
    data = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = _stdio.BytesIO()
    np.save(buf, data)
    _rewrite(path, {io.HEADER + ".npy": buf.getvalue()})


@pytest.mark.parametrize("member,header", [
    # a parameter declaring 4 TiB: the loader must not try to allocate it
    ("param/weight.npy", {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40,)}),
    ("param/weight.npy", {"descr": "<f4", "fortran_order": False, "shape": (2 ** 20, 2 ** 20)}),
    # the right shape and dtype, but fewer bytes than it declares
    ("param/weight.npy", {"descr": "<f4", "fortran_order": False, "shape": (2, 2)}),
    # the header itself declaring an enormous byte string
    (io.HEADER + ".npy", {"descr": "|u1", "fortran_order": False, "shape": (2 ** 45,)}),
])
def test_refuses_allocation_bombs(tmp_path, member, header):
    p = tmp_path / "m.npz"
    _good_dense_file(p)
    _rewrite(p, {member: _npy_bytes(header, b"\0" * 8)})
    t0 = time.perf_counter()
    with pytest.raises(io.ModelFileError, match=r"^path: .*(expected|declares)"):
        rnnpy.load(p)
    assert time.perf_counter() - t0 < 2.0


def test_refuses_extra_array_bombs_and_object_arrays(tmp_path):
    p = tmp_path / "m.npz"
    _good_dense_file(p, opt={"m": np.zeros(3)})
    _rewrite(p, {"extra/0.npy": _npy_bytes(
        {"descr": "<f8", "fortran_order": False, "shape": (2 ** 50,)}, b"\0" * 24)})
    with pytest.raises(io.ModelFileError, match=r"'extra/0' declares float64 \(1125899906842624,\)"):
        rnnpy.load_with_extra(p)
    _good_dense_file(p, opt={"m": np.zeros(3)})
    _rewrite(p, {"extra/0.npy": _npy_bytes(
        {"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x04N.")})
    with pytest.raises(io.ModelFileError, match="holds Python objects"):
        rnnpy.load_with_extra(p)


def test_refuses_hostile_headers(tmp_path):
    p = tmp_path / "m.npz"
    _good_dense_file(p)
    good = _header_of(p)
    assert "rng" in good                                   # written by save
    cases = [
        (dict(good, rng={"": {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}}}),
         "bad random generator states"),
        (dict(good, rng={"0": good["rng"].get("", {})}), "bad random generator states"),
        (dict(good, rng="PCG64"), "bad random generator states"),
        (dict(good, extra={"__array__": ["not", "a", "key"]}), "extra: array"),
        (dict(good, extra={"__array__": "param/../../etc/passwd"}), "extra: array"),
    ]
    for header, pattern in cases:
        _good_dense_file(p)
        _with_header(p, header)
        with pytest.raises(io.ModelFileError, match=pattern):
            rnnpy.load_with_extra(p)
    # JSON nested deeper than the interpreter's recursion limit
    _good_dense_file(p)
    deep = b"[" * 100000 + b"]" * 100000
    buf = _stdio.BytesIO()
    np.save(buf, np.frombuffer(deep, np.uint8))
    _rewrite(p, {io.HEADER + ".npy": buf.getvalue()})
    with pytest.raises(io.ModelFileError, match="corrupted header"):
        rnnpy.load(p)


def test_files_without_generator_states_still_load(tmp_path):
    """A file written before generator states were saved loads, with dropout
    restarting from the seeds."""
    p = tmp_path / "m.npz"
    m = rnnpy.GRU(2, 3, num_layers=2, dropout=0.5, seed=4, dtype="float64")
    m.save(p)
    header = _header_of(p)
    del header["rng"]
    _with_header(p, header)
    loaded = rnnpy.load(p)
    np.testing.assert_array_equal(loaded.flat_params, m.flat_params)
    assert loaded.rng_state() == rnnpy.GRU(2, 3, num_layers=2, dropout=0.5, seed=4,
                                           dtype="float64").rng_state()


def test_refuses_a_bare_npy_file(tmp_path):
    p = tmp_path / "m.npz"
    np.save(p.open("wb"), np.zeros(3))
    with pytest.raises(io.ModelFileError, match="no rnnpy header"):
        rnnpy.load(p)
