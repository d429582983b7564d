"""Loading checks every declared size against what the file holds before
allocating: hostile files (a huge model config in a tiny file, a deflated
member declaring gigabytes, tens of thousands of modules, deep nesting) are
refused with ModelFileError by a child process whose address space is capped
a little above what it uses before loading. The size plan matches the real
modules for every configuration tried."""
import io as _stdio
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import helpers
import pytest

import rnnpy
from rnnpy import io

resource = pytest.importorskip("resource")
ROOT = helpers.ROOT


def _npy(arr):
    buf = _stdio.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def write_file(path, model, params, members=None, deflate=()):
    """A model file with the given header parts and members (name -> bytes or a
    callable writing into an open member)."""
    header = {"format": io.FORMAT, "version": io.VERSION, "model": model, "params": params,
              "extra": None}
    with zipfile.ZipFile(path, "w", allowZip64=True) as z:
        z.writestr(io.HEADER + ".npy", _npy(np.frombuffer(json.dumps(header).encode(), np.uint8)))
        for name, data in (members or {}).items():
            method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            if callable(data):
                info = zipfile.ZipInfo(name)
                info.compress_type = method
                with z.open(info, "w", force_zip64=True) as f:
                    data(f)
            else:
                z.writestr(name, data, compress_type=method)


def lstm_spec(hidden):
    return {"class": "LSTM", "config": {"input_size": 2, "hidden_size": hidden}}


def lstm_params(hidden):
    G = 4 * hidden
    return {"weight_ih_l0": {"shape": [G, 2], "dtype": "float32"},
            "weight_hh_l0": {"shape": [G, hidden], "dtype": "float32"},
            "bias_ih_l0": {"shape": [G], "dtype": "float32"},
            "bias_hh_l0": {"shape": [G], "dtype": "float32"}}


def hostile_files(folder):
    files = {}
    # the case: a few hundred bytes declaring a 1.6 GB LSTM and no arrays
    files["tiny file, huge config"] = (lstm_spec(10000), {}, {})
    # huge config, declarations consistent with it, members a few bytes each
    small = {f"param/{k}.npy": _npy(np.zeros(2, np.float32)) for k in lstm_params(10000)}
    files["declared huge, stored tiny"] = (lstm_spec(10000), lstm_params(10000), small)
    # huge config with the declarations of a small model
    files["config and declarations differ"] = (lstm_spec(10000), lstm_params(3), small)

    # a deflated member: 256 MiB of zeros compressed to a few hundred KiB
    def zeros(f):
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (16384, 4096)})
        block = bytes(1 << 22)
        for _ in range(64):
            f.write(block)
    dense = {"class": "Dense", "config": {"in_features": 4096, "out_features": 16384, "bias": False}}
    files["deflate bomb"] = (dense, {"weight": {"shape": [16384, 4096], "dtype": "float32"}},
                             {"param/weight.npy": zeros})
    many = {"class": "Sequential", "config": {"modules": [{"class": "Dropout", "config": {"p": 0.5}}] * 50000}}
    files["50000 modules"] = (many, {}, {})
    deep = {"class": "Dropout", "config": {"p": 0.5}}
    for _ in range(200):
        deep = {"class": "Sequential", "config": {"modules": [deep]}}
    files["nested 200 deep"] = (deep, {}, {})
    paths = {}
    for i, (name, (model, params, members)) in enumerate(files.items()):
        p = os.path.join(folder, f"h{i}.npz")
        write_file(p, model, params, members, deflate={"param/weight.npy"} if "deflate" in name else ())
        paths[name] = p
    return paths


CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    import rnnpy
    def vm():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    limit = vm() + 160 * 2 ** 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            rnnpy.load(path)
            out[name] = "loaded"
        except rnnpy.ModelFileError as exc:
            out[name] = "ModelFileError: " + str(exc)[:300]
        except BaseException as exc:
            out[name] = type(exc).__name__ + ": " + str(exc)[:200]
    print(json.dumps(out))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_hostile_files_are_refused_within_a_small_memory_budget(tmp_path):
    paths = hostile_files(str(tmp_path))
    assert os.path.getsize(paths["tiny file, huge config"]) < 600
    assert os.path.getsize(paths["deflate bomb"]) < 2 << 20
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout)
    expected = {
        "tiny file, huge config": "declares 0 parameter values but its model's configuration has 400160000",
        "declared huge, stored tiny": "declares float32 (40000, 2) but stores 136 bytes",
        "config and declarations differ": "declares 84 parameter values but its model's configuration has",
        "deflate bomb": "rnnpy writes plain stored members",
        "50000 modules": "more than 4096 modules",
        "nested 200 deep": "nested deeper than 64 levels",
    }
    for name, words in expected.items():
        assert got[name].startswith("ModelFileError") and words in got[name], (name, got[name])


CONFIGS = [
    rnnpy.RNN(3, 4), rnnpy.RNN(3, 4, num_layers=3, bidirectional=True, nonlinearity="relu"),
    rnnpy.GRU(2, 5, num_layers=2, layer_norm=True), rnnpy.GRU(2, 5, bidirectional=True),
    rnnpy.LSTM(3, 4), rnnpy.LSTM(3, 6, num_layers=3, bidirectional=True, peephole=True,
                                 proj_size=2, layer_norm=True),
    rnnpy.LSTM(4, 5, num_layers=2, proj_size=3), rnnpy.LSTM(2, 3, peephole=True, layer_norm=True),
    rnnpy.Dense(3, 4), rnnpy.Dense(3, 4, bias=False), rnnpy.Embedding(7, 3), rnnpy.LastStep(),
    rnnpy.Dropout(0.1),
    rnnpy.Sequential(rnnpy.Embedding(5, 3), rnnpy.Sequential(rnnpy.LSTM(3, 4), rnnpy.LastStep()),
                     rnnpy.Dense(4, 2)),
]


@pytest.mark.parametrize("module", CONFIGS, ids=lambda m: type(m).__name__)
def test_size_plan_matches_the_built_module(module):
    assert io.planned_params(io.module_config(module)) == module.num_params


def test_save_refuses_models_load_would_refuse(tmp_path):
    deep = rnnpy.Dropout(0.1)
    for _ in range(70):
        deep = rnnpy.Sequential(deep)
    with pytest.raises(ValueError, match="nested deeper than 64 levels"):
        io.save(deep, str(tmp_path / "m.npz"))
    assert os.listdir(tmp_path) == []


def test_an_array_referenced_many_times_is_refused(tmp_path):
    """The header may name one stored array many times: reading it each time
    would take many times the file's size."""
    p = tmp_path / "m.npz"
    rnnpy.Dense(2, 2, seed=0).save(p, extra={"a": np.zeros(1 << 17)})   # 1 MiB
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.load(_stdio.BytesIO(members[io.HEADER + ".npy"])).tobytes())
    header["extra"] = {"a": [{"__array__": "extra/0"}] * 100}
    members[io.HEADER + ".npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    with zipfile.ZipFile(p, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(io.ModelFileError, match="referenced twice"):
        rnnpy.load_with_extra(p)
