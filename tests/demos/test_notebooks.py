"""Runs every notebook in notebooks/ top to bottom and checks what it reports.

The kernel is this interpreter with RNNPY_NOTEBOOK_FAST=1 (each notebook's
small settings) and matplotlib's inline backend (Agg rendering, no display,
figures kept as outputs so the test can count them). A cell error fails the
test; so do results below what the fixed seeds reach.
"""
import json
import os
import re
import sys
from pathlib import Path

import helpers
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(helpers.ROOT) / "notebooks"
KERNEL = "rnnpy-notebook-test"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory):
    """A kernel spec running this interpreter, with the notebooks' fast settings."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rnnpy tests",
        "language": "python",
        # the kernel starts in notebooks/: without the checkout on its path it would
        # import whichever rnnpy is installed, not the one under test
        "env": {"RNNPY_NOTEBOOK_FAST": "1",
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(NOTEBOOKS.parent), os.environ.get("PYTHONPATH")) if p)},
    }))
    return [str(root)]


def execute(name, kernel_dirs):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = nbclient.NotebookClient(nb, km=km, timeout=300,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()          # raises CellExecutionError, naming the cell, on any error
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                text.append(out["text"])
            elif "image/png" in out.get("data", {}):
                images += 1
    return "".join(text), images


def number(text, label):
    m = re.findall(re.escape(label) + r":?\s*([0-9.]+)", text)
    assert m, f"the notebook did not print {label!r}"
    return float(m[-1])


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == [
        "char_rnn.ipynb", "echo.ipynb", "seq_classification.ipynb"]


FIGURES = {"seq_classification.ipynb": 5, "echo.ipynb": 3, "char_rnn.ipynb": 1}


def test_notebooks_are_committed_executed_with_their_figures():
    """Browsed on a forge, a notebook shows what it computed: every code cell
    ran, in order, without an error, and the figures are there."""
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), \
            f"{path.name}: run every cell top to bottom before committing"
        outs = [o for c in code for o in c.outputs]
        assert not [o for o in outs if o.output_type == "error"], f"{path.name}: a cell failed"
        images = sum("image/png" in o.get("data", {}) for o in outs)
        assert images == FIGURES[path.name], f"{path.name}: {images} figures"
        text = json.dumps(nb)
        assert "/work/" not in text and "/tmp/" not in text, f"{path.name}: a local path in the outputs"


def test_seq_classification(kernel_dirs):
    text, images = execute("seq_classification.ipynb", kernel_dirs)
    assert "fast settings" in text
    lstm = number(text, "LSTM test accuracy (easy)")
    rnn = number(text, "RNN test accuracy (easy)")
    assert lstm >= 0.95 and rnn <= 0.75 and lstm > rnn
    assert number(text, "RNN test accuracy (easy, 30 epochs)") >= 0.9
    assert number(text, "LSTM test accuracy (moderate)") >= 0.8
    hard = re.search(r"hard: solved after (\d+) sequences, test accuracy ([0-9.]+)", text)
    assert hard and int(hard.group(1)) <= 31_390 and float(hard.group(2)) >= 0.99
    unit = re.search(r"unit (\d+), X first", text)
    assert unit and 0 <= int(unit.group(1)) < 10
    assert images == 5      # curves x3, the twin heat maps, h_t


def test_echo(kernel_dirs):
    text, images = execute("echo.ipynb", kernel_dirs)
    assert number(text, "RNN test accuracy (echo_step 3)") >= 0.95
    assert number(text, "LSTM test accuracy (echo_step 3)") >= 0.95
    m = re.search(r"echo_step (\d+): RNN ([0-9.]+), LSTM ([0-9.]+)", text)
    assert m, "the notebook did not print the sweep's last point"
    rnn_far, lstm_far = float(m.group(2)), float(m.group(3))
    assert rnn_far < 0.6 and lstm_far > rnn_far + 0.05   # the RNN forgets first
    assert images == 3


def test_char_rnn(kernel_dirs):
    text, images = execute("char_rnn.ipynb", kernel_dirs)
    val = number(text, "validation loss")
    entropy = number(text, "unigram entropy")
    assert 0 < val < entropy - 0.2          # the model uses context
    assert "--- temperature 0.5 ---\nAnna " in text and "--- temperature 1.0 ---\nAnna " in text
    assert images == 1
