"""README's Python blocks run as written, top to bottom, in one namespace
(in a scratch directory: they write model files)."""
import importlib.util
import re
from pathlib import Path

import helpers
import pytest

README = Path(helpers.ROOT) / "README.md"


def _blocks():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_examples_of_each_topic():
    text = "\n".join(_blocks())
    for needle in ("model.compile(", "model.fit(x_train, y_train", "validation_data=", ".predict(",
                   "rnnpy.sample(", "resume=", "export_onnx(", "with_lengths=True"):
        assert needle in text, needle


def test_readme_python_runs_top_to_bottom(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    has_mpi = importlib.util.find_spec("mpi4py") is not None
    for i, block in enumerate(_blocks()):
        if "distributed=True" in block and not has_mpi:
            continue   # the MPI script runs where the extra is installed (CI, the mpi tests)
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"README python block {i + 1} failed: {exc!r}\n{block}") from exc
