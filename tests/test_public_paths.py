"""The module paths users reach after a bare ``import rnnpy`` stay where they were
(rnnpy.training.Callback, rnnpy.distributed.init, ...), whatever the package's layout."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PATHS = ["rnnpy.training.Callback", "rnnpy.training.fit", "rnnpy.training.lengths_mask",
         "rnnpy.distributed.init", "rnnpy.distributed.abort_on_error", "rnnpy.io.load_with_extra",
         "rnnpy.io.ModelFileError", "rnnpy.nn.Dense", "rnnpy.data.CharVocab",
         "rnnpy.data.sequence_batches", "rnnpy.optim.Adam", "rnnpy.optim.clip_grad_norm",
         "rnnpy.losses.softmax_cross_entropy", "rnnpy.export_onnx", "rnnpy.gradcheck"]


@pytest.mark.parametrize("path", PATHS)
def test_reachable_after_import_rnnpy_alone(path):
    # a fresh interpreter: nothing else has imported the submodules
    code = f"import rnnpy; print(callable({path}) or isinstance({path}, type))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr[-800:]


def test_distributed_is_the_module_not_a_copy():
    import rnnpy
    import rnnpy.train.distributed

    assert rnnpy.distributed is rnnpy.train.distributed
