"""Shared test settings and fixtures.

The folders mirror the package:
    kernels/     rnnpy._core's C types and GEMM, and the NumPy reference (rnnpy/_reference.py)
                 against the kernels, PyTorch and finite differences
    nn/          layers and the module base: shapes, options, parameters, buffers, cells
    train/       fit and its arguments, optimizers, losses, resume, determinism, MPI
    data/        the data helpers
    io/          save/load, checkpoints, hostile model files, atomic writes, ONNX export
    tools/       gradcheck, bench, plot, the command line, generation
    demos/       the demos, their data and notebooks
    robustness/  hostile input and fuzzing, leaks, interrupts, memory limits, threads, locks
    package/     the sdist, the README's examples, the import graph
    c/           the C kernels' own tests (built and run by kernels/test_c_kernels.py)
    sanitize/    the sanitizer build and run
helpers.py holds what test files share; torch_ext.py the extended cells in torch.

RNNPY_REQUIRE_TORCH=1 makes a missing PyTorch an error instead of a skip, and
RNNPY_FORBID_SKIPS=1 fails the run if any test was skipped: CI sets both, so
that the parity tests cannot silently stop running.

Every module-level helpers.ErrorTable or ModuleReport is printed when its
module finishes (the autouse fixture below).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402

_skipped = []


def pytest_configure(config):
    if os.environ.get("RNNPY_REQUIRE_TORCH") == "1":
        import torch  # noqa: F401  (fails loudly when PyTorch is missing)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("RNNPY_FORBID_SKIPS") == "1" and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("RNNPY_FORBID_SKIPS") == "1" and _skipped:
        terminalreporter.write_line(
            f"RNNPY_FORBID_SKIPS=1: {len(_skipped)} test(s) skipped, failing the run: "
            + ", ".join(_skipped[:5]),
            red=True,
        )


@pytest.fixture(scope="module", autouse=True)
def _print_error_tables(request):
    """Prints the module's reports (helpers.ModuleReport, ErrorTable) after its last test."""
    yield
    tables = [v for v in vars(request.module).values() if isinstance(v, helpers.ModuleReport)]
    lines = [line for t in tables if t.rows for line in t.lines()]
    if not lines:
        return
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print("\n".join(lines))
    else:
        print("\n".join(lines))
