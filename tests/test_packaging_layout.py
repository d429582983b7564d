"""The distributions carry every module of every rnnpy subpackage (the package
list in pyproject.toml is found, not written by hand)."""
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sdist_carries_every_rnnpy_module(tmp_path):
    res = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True)
    subprocess.run(["rm", "-rf", "rnnpy.egg-info"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    (sdist,) = tmp_path.glob("rnnpy-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "rnnpy").rglob("*.py")}
    assert {"rnnpy/nn/module.py", "rnnpy/io/onnx/export.py", "rnnpy/train/loop.py"} <= modules
    assert modules <= names, sorted(modules - names)
