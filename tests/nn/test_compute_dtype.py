"""compute_dtype on RNN, LSTM and GRU: the option itself (what it accepts,
where it is kept, shown, saved and exported) and the hardware dispatch.

The refusal on a CPU without AMX-BF16 or AVX512-BF16 is tested everywhere by
making rnnpy.nn.precision.bf16_isas report only the portable kernel; the
tests that run bfloat16 kernels skip without the hardware, saying so.
"""
import copy
import json
import zipfile

import numpy as np
import pytest

import rnnpy
from rnnpy import io
from rnnpy.nn import precision
from rnnpy.tools import cli

HAVE_BF16 = precision.bf16_hardware() is not None
needs_bf16 = pytest.mark.skipif(not HAVE_BF16, reason="needs AMX-BF16 or AVX512-BF16")
REFUSAL = 'compute_dtype="bfloat16" needs AMX-BF16 or AVX512-BF16; this CPU has neither'
LAYERS = [rnnpy.RNN, rnnpy.LSTM, rnnpy.GRU]


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU whose C core offers only the portable bf16 kernel."""
    monkeypatch.setattr(precision, "bf16_isas", lambda: ("generic",))


@pytest.fixture
def avx512_only(monkeypatch):
    monkeypatch.setattr(precision, "bf16_isas", lambda: ("avx512_bf16", "generic"))


def cell_dtypes(layer):
    return [c.compute_dtype for c in layer._cells]


# -- the refusal and 'auto' without the hardware (run everywhere) ---------------------
@pytest.mark.parametrize("cls", LAYERS)
def test_bfloat16_without_the_hardware_is_refused_at_construction(cls, no_bf16):
    with pytest.raises(ValueError) as e:
        cls(3, 4, compute_dtype="bfloat16")
    assert str(e.value) == REFUSAL


@pytest.mark.parametrize("cls", LAYERS)
def test_auto_without_the_hardware_falls_back_and_says_so(cls, no_bf16):
    m = cls(3, 4, num_layers=2, bidirectional=True, compute_dtype="auto")
    assert m.compute_dtype == "float32" and cell_dtypes(m) == ["float32"] * 4
    assert "compute_dtype" not in repr(m)
    assert m.get_config()["compute_dtype"] == "auto"   # resolved again where it is loaded


def test_setting_bfloat16_without_the_hardware_is_refused_and_changes_nothing(no_bf16):
    m = rnnpy.LSTM(3, 4)
    x = np.ones((2, 5, 3), np.float32)
    m.forward(x)
    with pytest.raises(ValueError) as e:
        m.compute_dtype = "bfloat16"
    assert str(e.value) == REFUSAL
    assert m.compute_dtype == "float32" and cell_dtypes(m) == ["float32"]
    m.backward(np.ones((2, 5, 4), np.float32))   # the forward is still there


def test_a_saved_bfloat16_model_loads_elsewhere_with_the_refusal_named(tmp_path, avx512_only,
                                                                       monkeypatch):
    path = str(tmp_path / "m.rnnpy")
    rnnpy.save(rnnpy.Sequential(rnnpy.LSTM(3, 4, compute_dtype="bfloat16"), rnnpy.Dense(4, 2)), path)
    monkeypatch.setattr(precision, "bf16_isas", lambda: ("generic",))
    with pytest.raises(io.ModelFileError, match="cannot build LSTM: " + REFUSAL):
        rnnpy.load(path)


@pytest.mark.parametrize("isas,want", [(("amx", "avx512_bf16", "generic"), "amx"),
                                       (("avx512_bf16", "generic"), "avx512_bf16"),
                                       (("generic",), None), ((), None)])
def test_bf16_hardware_reads_the_core_list(monkeypatch, isas, want):
    monkeypatch.setattr(precision, "bf16_isas", lambda: isas)
    assert precision.bf16_hardware() == want


def test_the_core_lists_its_kernels_best_first():
    isas = precision.bf16_isas()
    assert isas[-1] == "generic" and set(isas) <= {"amx", "avx512_bf16", "generic"}
    assert list(isas) == [i for i in ("amx", "avx512_bf16", "generic") if i in isas]


# -- what the option accepts -------------------------------------------------------
@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("value,want", [(None, "float32"), ("float32", "float32"),
                                        (np.float32, "float32")])
def test_native_spellings(cls, value, want):
    m = cls(3, 4, compute_dtype=value)
    assert m.compute_dtype == want and cell_dtypes(m) == [want]


@pytest.mark.parametrize("value,err,match", [
    ("bfloat16", ValueError, "compute_dtype: 'bfloat16' needs a float32 layer"),
    ("float32", ValueError, r"compute_dtype: expected None, 'float64' \(the layer's dtype\)"),
    ("bf16", ValueError, "compute_dtype: expected"),
    (16, TypeError, "compute_dtype: expected"),
])
def test_float64_layers(value, err, match):
    with pytest.raises(err, match=match):
        rnnpy.GRU(3, 4, dtype="float64", compute_dtype=value)


def test_float64_auto_and_native():
    assert rnnpy.LSTM(3, 4, dtype="float64", compute_dtype="auto").compute_dtype == "float64"
    m = rnnpy.LSTM(3, 4, dtype="float64", compute_dtype="float64")
    assert m.compute_dtype == "float64" and cell_dtypes(m) == ["float64"]


@pytest.mark.parametrize("value", [np.array(["auto", "auto"]), ["auto"], b"auto"])
def test_non_strings_are_refused_naming_the_argument(value):
    with pytest.raises(TypeError, match="compute_dtype: expected"):
        rnnpy.LSTM(3, 4, compute_dtype=value)


def test_the_setter_checks_like_the_constructor():
    m = rnnpy.RNN(3, 4)
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        m.compute_dtype = "half"
    with pytest.raises(TypeError, match="compute_dtype: expected"):
        m.compute_dtype = 1.0
    assert m.compute_dtype == "float32"


def test_cli_offers_the_option():
    for demo in ("seq-classification", "char-rnn", "echo"):
        args = cli.build_parser().parse_args([demo, "--compute-dtype", "auto"])
        assert args.compute_dtype == "auto"
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([demo, "--compute-dtype", "bf16"])


def test_cli_reports_the_refusal(no_bf16, capsys):
    assert cli.main(["char-rnn", "--compute-dtype", "bfloat16", "--epochs", "0",
                     "--sample", "0", "--json"]) == 2
    assert REFUSAL in capsys.readouterr().err


# -- with the hardware: every cell, whenever made ----------------------------------
@needs_bf16
@pytest.mark.parametrize("cls", LAYERS)
def test_every_cell_computes_in_bf16(cls):
    m = cls(3, 4, num_layers=2, bidirectional=True, compute_dtype="bfloat16")
    assert m.compute_dtype == "bfloat16" and cell_dtypes(m) == ["bfloat16"] * 4
    assert cls(3, 4, compute_dtype="auto").compute_dtype == "bfloat16"


@needs_bf16
def test_cells_remade_later_keep_it():
    m = rnnpy.LSTM(3, 4, num_layers=2, compute_dtype="bfloat16")
    model = rnnpy.Sequential(m, rnnpy.Dense(4, 2))   # re-binds: the cells are remade
    assert cell_dtypes(m) == ["bfloat16"] * 2
    m.compute_dtype = None
    assert cell_dtypes(m) == ["float32"] * 2
    m.compute_dtype = "bfloat16"
    m.load_state_dict(m.state_dict())
    solo = rnnpy.GRU(3, 4, num_layers=2, compute_dtype="bfloat16")
    solo.bind(np.full(solo.num_params, 0.1, np.float32), np.zeros(solo.num_params, np.float32))
    assert cell_dtypes(solo) == ["bfloat16"] * 2 and cell_dtypes(copy.copy(solo)) == ["bfloat16"] * 2
    twin = copy.deepcopy(model)
    assert cell_dtypes(twin.modules[0]) == ["bfloat16"] * 2
    assert twin.modules[0].compute_dtype == "bfloat16"
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(twin.forward(x)[0], model.forward(x)[0])   # (out, states)


@needs_bf16
def test_changing_it_refuses_the_old_forwards_backward_and_keeps_held_masks():
    m = rnnpy.GRU(3, 4, recurrent_dropout=0.5, seed=1, compute_dtype="bfloat16")
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    with m.masks_held():
        m.forward(x)
        held = m._last["cell_masks"][0]["rec_mask"].copy()
        m.compute_dtype = "float32"
        with pytest.raises(RuntimeError, match="compute_dtype changed since the last forward"):
            m.backward(np.ones((2, 5, 4), np.float32))
        m.forward(x)
        np.testing.assert_array_equal(m._last["cell_masks"][0]["rec_mask"], held)
    m.compute_dtype = None   # the same precision: the forward stays
    m.backward(np.ones((2, 5, 4), np.float32))


@needs_bf16
def test_forward_differs_from_float32_and_not_from_its_own_rounding():
    m = rnnpy.LSTM(16, 32, seed=2)
    x = np.random.default_rng(0).standard_normal((4, 6, 16)).astype(np.float32)
    out32, _ = m.forward(x)
    m.compute_dtype = "bfloat16"
    out16, _ = m.forward(x)
    assert not np.array_equal(out16, out32)
    assert np.abs(out16 - out32).max() < 2.0 ** -6 * np.abs(out32).max()


# -- kept, shown, saved, exported --------------------------------------------------
@needs_bf16
def test_repr_and_summary_show_it_when_not_native():
    m = rnnpy.LSTM(3, 4, compute_dtype="bfloat16")
    assert repr(m).endswith("dtype='float32', compute_dtype='bfloat16')")
    assert "compute_dtype" not in repr(rnnpy.LSTM(3, 4))
    s = rnnpy.Sequential(m, rnnpy.LastStep(), rnnpy.Dense(4, 2)).summary(input_shape=(5, 3))
    assert "0 LSTM (bfloat16 compute)" in s and "Dense (" not in s


@needs_bf16
@pytest.mark.parametrize("value", ["bfloat16", "auto", None])
def test_saved_and_loaded(tmp_path, value):
    path = str(tmp_path / "m.rnnpy")
    model = rnnpy.Sequential(rnnpy.GRU(3, 4, compute_dtype=value), rnnpy.Dense(4, 2))
    rnnpy.save(model, path)
    back = rnnpy.load(path)
    assert back.get_config() == model.get_config()
    assert back.modules[0].compute_dtype == model.modules[0].compute_dtype
    assert cell_dtypes(back.modules[0]) == cell_dtypes(model.modules[0])


def test_an_old_file_without_it_loads_native(tmp_path):
    p, q = str(tmp_path / "m.npz"), str(tmp_path / "old.npz")
    rnnpy.save(rnnpy.LSTM(2, 3, seed=0), p)
    with zipfile.ZipFile(p) as z:
        members = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(q, "w") as z:
        for n, data in members:
            if n == io.HEADER + ".npy":
                header = json.loads(np.load(p)[io.HEADER].tobytes())
                del header["model"]["config"]["compute_dtype"]
                import io as _io
                b = _io.BytesIO()
                np.lib.format.write_array(b, np.frombuffer(json.dumps(header).encode(), np.uint8))
                data = b.getvalue()
            z.writestr(n, data)
    m = rnnpy.load(q)
    assert m.compute_dtype == "float32" and cell_dtypes(m) == ["float32"]


@needs_bf16
def test_onnx_export_is_the_float32_graph(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    m = rnnpy.LSTM(8, 16, num_layers=2, seed=3, compute_dtype="bfloat16").eval()
    path = str(tmp_path / "m.onnx")
    rnnpy.export_onnx(m, path, with_lengths=False)
    x = np.random.default_rng(1).standard_normal((3, 7, 8)).astype(np.float32)
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    bf16, _ = m.forward(x)
    m.compute_dtype = "float32"
    f32, _ = m.forward(x)
    np.testing.assert_allclose(got, f32, rtol=1e-5, atol=1e-6)
    assert np.abs(got - bf16).max() > 1e-4   # not the bf16 forward: the docstring says so
