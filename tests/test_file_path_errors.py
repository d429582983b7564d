"""Errors of the path argument of every function that reads or writes a file
(save, load, load_with_extra, export_onnx, ModelCheckpoint, fit(resume=)):
one clear exception naming the argument and what was expected; the old file
is left intact."""
import os

import numpy as np
import pytest

import rnnpy
from rnnpy import optim


def _model():
    return rnnpy.Sequential(rnnpy.LSTM(3, 4, seed=0), rnnpy.LastStep(), rnnpy.Dense(4, 2, seed=1))


def _writers(model):
    from rnnpy.io.onnx import export_onnx
    return {"save": lambda p: rnnpy.save(model, p), "Module.save": lambda p: model.save(p),
            "export_onnx": lambda p: export_onnx(model, p)}


def _readers():
    return {"load": rnnpy.load, "load_with_extra": rnnpy.load_with_extra}


NOT_PATHS = [None, 123, 3.5, ["m.npz"], object()]


@pytest.mark.parametrize("value", NOT_PATHS, ids=repr)
def test_what_is_not_a_path_is_a_type_error_naming_path(value):
    for name, fn in {**_writers(_model()), **_readers()}.items():
        with pytest.raises(TypeError, match=r"^path: expected a file path \(str or os.PathLike\), got "):
            fn(value)


@pytest.mark.parametrize("value", ["", "m\0.npz", b"PK\x03\x04\0\0\0binary contents"], ids=repr)
def test_an_empty_path_or_file_contents_is_a_value_error_naming_path(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, fn in {**_writers(_model()), **_readers()}.items():
        with pytest.raises(ValueError, match=r"^path: expected a file path, got "):
            fn(value)
    assert os.listdir(tmp_path) == []


def test_bytes_and_pathlike_paths_work(tmp_path):
    m = _model()
    rnnpy.save(m, os.fsencode(str(tmp_path / "a.npz")))
    rnnpy.save(m, tmp_path / "b.npz")
    for p in (os.fsencode(str(tmp_path / "b.npz")), tmp_path / "a.npz"):
        np.testing.assert_array_equal(rnnpy.load(p).flat_params, m.flat_params)


def test_a_missing_folder_is_named(tmp_path):
    target = tmp_path / "no" / "such" / "m.npz"
    for name, fn in _writers(_model()).items():
        with pytest.raises(FileNotFoundError, match=r"^path: the folder .*no/such' does not exist "
                                                    r"\('.*/no' is missing\)"):
            fn(str(target))
    for name, fn in _readers().items():
        with pytest.raises(FileNotFoundError, match=r"^path: no model file at .*\(the folder "
                                                    r".*no/such' does not exist\)"):
            fn(str(target))
    assert os.listdir(tmp_path) == []


def test_a_folder_is_refused_up_front(tmp_path):
    (tmp_path / "d").mkdir()
    for name, fn in _writers(_model()).items():
        for p in (str(tmp_path / "d"), str(tmp_path / "d") + "/"):
            with pytest.raises(IsADirectoryError, match=r"^path: expected a file path, got the folder"):
                fn(p)
    for name, fn in _readers().items():
        with pytest.raises(IsADirectoryError, match=r"^path: expected a model file, got the folder"):
            fn(str(tmp_path / "d"))
    assert sorted(os.listdir(tmp_path)) == ["d"] and os.listdir(tmp_path / "d") == []


def test_a_file_used_as_a_folder_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    for name, fn in _writers(_model()).items():
        with pytest.raises(NotADirectoryError, match=r"^path: .*/f' is not a folder"):
            fn(str(tmp_path / "f" / "m.npz"))
    for name, fn in _readers().items():
        with pytest.raises(NotADirectoryError, match=r"^path: .*goes through a file"):
            fn(str(tmp_path / "f" / "m.npz"))


def test_a_fifo_is_not_waited_on(tmp_path):
    p = str(tmp_path / "fifo")
    os.mkfifo(p)
    with pytest.raises(rnnpy.ModelFileError, match=r"^path: .*fifo' is not a regular file"):
        rnnpy.load(p)


def _check_read_only(folder, target, secret, before):
    from rnnpy.io.onnx import export_onnx
    m = rnnpy.Dense(2, 2, seed=5)
    want = (f"^path: no permission to write in the folder {str(folder)!r}; {target!r} was "
            "not written$")
    for fn in (lambda: rnnpy.save(m, target), lambda: export_onnx(m, target)):
        with pytest.raises(PermissionError) as e:
            fn()
        assert str(e.value) == want[1:-1]
    assert open(target, "rb").read() == before
    assert sorted(os.listdir(folder)) == ["m.npz", "secret.npz"]


def _setup(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    target = str(folder / "m.npz")
    rnnpy.save(rnnpy.Dense(2, 2, seed=0), target)
    rnnpy.save(rnnpy.Dense(2, 2, seed=0), str(folder / "secret.npz"))
    return folder, target, str(folder / "secret.npz"), open(target, "rb").read()


def _test_a_read_only_folder_is_a_permission_error_naming_it(tmp_path):
    folder, target, secret, before = _setup(tmp_path)
    os.chmod(secret, 0o000)
    os.chmod(folder, 0o555)
    try:
        _check_read_only(folder, target, secret, before)
        with pytest.raises(PermissionError, match=f"^path: no permission to read {secret!r}$"):
            rnnpy.load(secret)
    finally:
        os.chmod(folder, 0o755)


# root ignores permissions (CI runs as root, where the next test simulates the
# kernel's refusal); elsewhere the real read-only folder is tested
if os.geteuid() != 0:
    test_a_read_only_folder_is_a_permission_error_naming_it = \
        _test_a_read_only_folder_is_a_permission_error_naming_it


def test_a_folder_refusing_the_temporary_is_a_permission_error_naming_it(tmp_path, monkeypatch):
    """What the kernel answers in a read-only folder (EACCES when the
    temporary is created, or os.access saying no), whoever runs the tests."""
    import errno
    import tempfile
    from rnnpy import io

    folder, target, secret, before = _setup(tmp_path)

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder / ".x.tmp"))

    with monkeypatch.context() as mp:
        mp.setattr(io.atomic.tempfile, "mkstemp", refuse)
        _check_read_only(folder, target, secret, before)
    real_access = os.access
    with monkeypatch.context() as mp:
        mp.setattr(os, "access", lambda p, mode, **k: False if os.path.samefile(p, folder)
                   else real_access(p, mode, **k))
        _check_read_only(folder, target, secret, before)
    real_open = os.open

    def no_read(p, flags, *a, **k):
        if os.fspath(p) == secret:
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return real_open(p, flags, *a, **k)

    with monkeypatch.context() as mp:
        mp.setattr(os, "open", no_read)
        with pytest.raises(PermissionError, match=f"^path: no permission to read {secret!r}$"):
            rnnpy.load(secret)
