"""Whatever save writes, load reads back exactly; what it cannot give back
exactly, save refuses with an error naming the parameter or the key path.
Covers extra data of every kind (property-tested with hypothesis), parameters
and optimizer moments holding NaN/Inf, and ModelCheckpoint on a diverged
epoch (the previous checkpoint is kept)."""
import collections
import enum
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rnnpy
from rnnpy import io, optim
from rnnpy.training import Callback, ModelCheckpoint, fit


def same(a, b):
    """Exact equality, types included (NaN equal to NaN, -0.0 apart from 0.0)."""
    return io.codec._difference(a, b, "extra") is None


def round_trip(tmp_path, extra):
    p = tmp_path / "m.npz"
    rnnpy.Dense(2, 2, seed=0).save(p, extra=extra)
    return rnnpy.load_with_extra(p)[1]


EXACT = {
    "tuple": (1, (2, "x"), []),
    "numpy scalars": [np.float32(1.5), np.float16(-0.0), np.int8(-3), np.uint64(2 ** 64 - 1),
                      np.bool_(True), np.complex64(1 + 2j), np.str_("s"), np.bytes_(b"b"),
                      np.datetime64("2020-01-02T03:04", "m")],
    "python scalars": [True, False, None, 0, -(2 ** 100), 1.0, -0.0, math.nan, math.inf, -math.inf,
                       "", "\u00e9\ud800\0"],
    "bytes": b"\x00\xffabc",
    "descriptor look-alikes": {"__array__": "extra/0", "x": {"__tuple__": [1]},
                               "y": {"__dict__": {"__array__": 1}}},
    "flattening collisions": {"a/b": np.arange(3), "a": {"b": np.arange(4)}},
    "arrays": [np.zeros(()), np.arange(6.0).reshape(2, 3, order="F").copy(order="F"),
               np.arange(6, dtype=">i4").reshape(3, 2), np.array(["ab", "\u00e9"]),
               np.array([b"x", b"yz"]), np.array(["2020-01-01", "NaT"], dtype="M8[D]"),
               np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")]),
               np.zeros((0, 4), np.float32), np.array([np.nan, -0.0, np.inf]),
               np.arange(10.0)[::3], np.array([True, False])],
    "empty": {"": {}, "l": [], "t": ()},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_extra_round_trips_exactly(tmp_path, name):
    extra = {name: EXACT[name]}
    got = round_trip(tmp_path, extra)
    assert same(extra, got), io.codec._difference(extra, got, "extra")
    if name == "arrays":   # memory order survives too
        assert got[name][1].flags.f_contiguous and not got[name][1].flags.c_contiguous


class Color(enum.IntEnum):
    RED = 1


def _self_list():
    x = []
    x.append(x)
    return x


def _deep(n):
    x = 0
    for _ in range(n):
        x = [x]
    return x


REFUSED = [
    ({"opt": {"m": np.array([{"a": 1}], dtype=object)}}, TypeError,
     r"^extra\['opt'\]\['m'\]: cannot save an array that holds Python objects"),
    ({"k": {1: "one"}}, TypeError, r"^extra\['k'\]: keys must be strings, got 1"),
    ({"k": {(1, 2): "one"}}, TypeError, r"^extra\['k'\]: keys must be strings"),
    ({"s": {1, 2}}, TypeError, r"^extra\['s'\]: cannot save a set"),
    ({"o": collections.OrderedDict(a=1)}, TypeError, r"^extra\['o'\]: cannot save a OrderedDict \(a subclass of dict"),
    ({"e": [Color.RED]}, TypeError, r"^extra\['e'\]\[0\]: cannot save a Color \(a subclass of int"),
    ({"m": np.ma.masked_array([1, 2], mask=[0, 1])}, TypeError, r"^extra\['m'\]: cannot save a MaskedArray"),
    ({"b": bytearray(b"x")}, TypeError, r"^extra\['b'\]: cannot save a bytearray"),
    ({"d": _deep(200)}, ValueError, r"^extra\['d'\](\[0\])+: nested deeper than 64 levels"),
    ({"r": _self_list()}, ValueError, r"^extra\['r'\](\[0\])+: nested deeper than 64 levels"),
    ({"f": lambda: 0}, TypeError, r"^extra\['f'\]: cannot save a function"),
]


@pytest.mark.parametrize("extra,exc,pattern", REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_extra_that_cannot_round_trip_is_refused_by_name(tmp_path, extra, exc, pattern):
    p = tmp_path / "m.npz"
    rnnpy.Dense(2, 2, seed=0).save(p)
    before = p.read_bytes()
    with pytest.raises(exc, match=pattern):
        rnnpy.Dense(2, 2, seed=1).save(p, extra=extra)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_header_size_limit_is_the_same_for_save_and_load(tmp_path, monkeypatch):
    p = tmp_path / "m.npz"
    rnnpy.Dense(2, 2, seed=0).save(p, extra={"vocab": ["w"] * 50})
    monkeypatch.setattr(io.checkpoint, "MAX_HEADER_BYTES", 200)
    with pytest.raises(ValueError, match=r"^extra: its JSON part takes \d+ bytes, over the limit of 200"):
        rnnpy.Dense(2, 2, seed=0).save(tmp_path / "n.npz", extra={"vocab": ["w"] * 50})
    with pytest.raises(io.ModelFileError, match="has a header over 200 bytes"):
        rnnpy.load(p)


# -- hypothesis: a property over generated nested data ------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.binary(max_size=5),
    hnp.from_dtype(np.dtype("float32")).map(np.float32), st.integers(-128, 127).map(np.int8),
    st.booleans().map(np.bool_))
_arrays = hnp.arrays(dtype=st.sampled_from([np.dtype(t) for t in ("<f8", ">f4", "<i2", "u1", "?", "<U3", "<c16")]),
                     shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
_keys = st.one_of(st.sampled_from(["__array__", "__tuple__", "__dict__", "__scalar__", "__bytes__",
                                   "a/b", "a", "b", ""]), st.text(max_size=4))
_extra = st.recursive(st.one_of(_scalars, _arrays),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.lists(inner, max_size=3).map(tuple),
                                              st.dictionaries(_keys, inner, max_size=3)),
                      max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=_extra)
def test_extra_round_trip_property(tmp_path, extra):
    got = round_trip(tmp_path, {"x": extra})
    assert same({"x": extra}, got), io.codec._difference({"x": extra}, got, "extra")


# -- parameters and optimizer moments holding NaN/Inf -------------------------------
def test_save_refuses_parameters_load_would_refuse(tmp_path):
    p = tmp_path / "m.npz"
    m = rnnpy.Sequential(rnnpy.LSTM(2, 3, seed=0), rnnpy.Dense(3, 2, seed=1))
    m.save(p)
    before = p.read_bytes()
    m.params["1.bias"][1] = np.inf
    with pytest.raises(ValueError, match=r"^model: parameter '1.bias' holds NaN or Inf \(first at flat index 1\)"):
        m.save(p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]
    m.params["1.bias"][1] = 0
    m.params["0.weight_hh_l0"][2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^model: parameter '0.weight_hh_l0' holds NaN or Inf"):
        m.save(p)
    assert p.read_bytes() == before


def test_save_verifies_the_written_file_before_replacing(tmp_path, monkeypatch):
    """A writer that produces a file load refuses (here a corrupting savez) is
    caught before the rename: the previous file stays."""
    p = tmp_path / "m.npz"
    m = rnnpy.Dense(2, 2, seed=0)
    m.save(p)
    before = p.read_bytes()
    real = np.savez

    def corrupting(f, **arrays):
        arrays["param/weight"] = np.zeros((3, 2), np.float32)
        real(f, **arrays)

    monkeypatch.setattr(np, "savez", corrupting)
    with pytest.raises(ValueError, match="^save: the file written for .* does not load back"):
        m.save(p)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["m.npz"]


class Poison(Callback):
    """Makes the given epoch end diverged, as a last step that overflowed would."""

    def __init__(self, epoch, where):
        self.epoch, self.where = epoch, where

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            if self.where == "params":
                trainer.model.params["1.weight"][0, 0] = np.nan
            else:
                trainer.optimizer.state["exp_avg_sq"][3] = np.inf


@pytest.mark.parametrize("where,pattern", [
    ("params", r"parameter '1.weight' holds NaN or Inf"),
    ("moments", r"state\['exp_avg_sq'\]: expected finite values, found NaN or Inf at flat index 3"),
])
def test_checkpoint_of_a_diverged_epoch_keeps_the_previous_file(tmp_path, where, pattern):
    ck = str(tmp_path / "ck.npz")
    m = rnnpy.Sequential(rnnpy.GRU(2, 3, dtype="float64", seed=0), rnnpy.Dense(3, 2, dtype="float64", seed=1))
    x = np.random.default_rng(0).standard_normal((8, 4, 2))
    y = np.random.default_rng(1).standard_normal((8, 4, 2))
    with pytest.raises(FloatingPointError, match=f"^ModelCheckpoint: after epoch 3 the {pattern}.*"
                                                  "previous checkpoint .* was kept"):
        fit(m, (x, y), loss="mse", optimizer=optim.Adam(m), epochs=5, metrics=(), progress=False,
            callbacks=[Poison(2, where), ModelCheckpoint(ck)])
    model, extra = rnnpy.load_with_extra(ck)        # the epoch-2 checkpoint, loadable
    assert extra["epoch"] == 2 and np.isfinite(model.flat_params).all()
    opt = optim.Adam(model)
    opt.load_state_dict(extra["optimizer"])
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_the_exactness_check_tells_apart_what_json_would_merge():
    """The comparison that save's verification and these tests use is strict."""
    pairs = [((1, 2), [1, 2]), (np.float32(1.5), 1.5), (-0.0, 0.0), (True, 1), (np.bool_(True), True),
             ({"a": 1, "b": 2}, {"b": 2, "a": 1}), (np.zeros(2, np.float32), np.zeros(2)),
             (np.zeros((2, 1)), np.zeros(2)), (b"x", "x"), (np.array([1.0]), np.array([1.0 + 1e-16 * 3]))]
    for a, b in pairs:
        assert not same(a, b), (a, b)
    assert same(math.nan, math.nan) and same(np.array([np.nan]), np.array([np.nan]))
