"""Every ``python -m <module>`` that rnnpy runs or documents names a module that
exists and runs as a script (a moved module leaves no dead command behind)."""
import importlib.util
import os
import re

import pytest

import rnnpy

ROOT = os.path.dirname(rnnpy.__file__)
README = os.path.join(os.path.dirname(ROOT), "README.md")


def _sources():
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(folder, f)
    yield README


def _commands():
    found = set()
    for path in _sources():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found |= set(re.findall(r'"-m",\s*"(rnnpy[\w.]*)"', text))
        found |= set(re.findall(r"python -m (rnnpy[\w.]*)", text))
    return sorted(found)


def test_the_scan_finds_the_commands():
    assert {"rnnpy", "rnnpy.tools.bench", "rnnpy.distributed_bench"} <= set(_commands())


@pytest.mark.parametrize("module", _commands())
def test_python_dash_m_module_exists_and_runs_as_a_script(module):
    spec = importlib.util.find_spec(module)
    # in this checkout: another installed copy of rnnpy must not stand in for a moved module
    assert spec is not None and spec.origin.startswith(ROOT), \
        f"python -m {module}: no such module in {ROOT} (found {spec and spec.origin})"
    if spec.submodule_search_locations:   # a package runs its __main__
        assert importlib.util.find_spec(module + ".__main__") is not None, module
    else:
        with open(spec.origin, encoding="utf-8") as f:
            assert 'if __name__ == "__main__":' in f.read(), f"{module} does nothing as a script"
