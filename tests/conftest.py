"""Shared test settings.

RNNPY_REQUIRE_TORCH=1 makes a missing PyTorch an error instead of a skip, and
RNNPY_FORBID_SKIPS=1 fails the run if any test was skipped: CI sets both, so
that the parity tests cannot silently stop running.
"""
import os

import pytest

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
