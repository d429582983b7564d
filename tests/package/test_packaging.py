"""What the source distribution carries: everything the C extension builds
from, the licence and the typing marker (a full build-and-install of the sdist
and the wheel into fresh environments runs in .ci/run)."""
import subprocess
import sys
import tarfile
from pathlib import Path

import helpers

ROOT = Path(helpers.ROOT)


def test_sdist_carries_sources_headers_license_and_py_typed(tmp_path):
    res = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True)
    subprocess.run(["rm", "-rf", "rnnpy.egg-info"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    (sdist,) = tmp_path.glob("rnnpy-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {f"csrc/{p.name}" for p in (ROOT / "csrc").glob("*.[ch]")}
    assert any(n.endswith(".h") for n in needed)
    needed |= {"LICENSE", "rnnpy/py.typed", "setup.py", "pyproject.toml", "README.md",
               "rnnpy/demos/data/anna_karenina_part1.txt"}
    assert needed <= names, sorted(needed - names)


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the rnnpy authors" in text
