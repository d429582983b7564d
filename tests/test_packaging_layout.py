"""The distributions carry every rnnpy subpackage: the package list that
pyproject.toml gives setuptools covers every folder of rnnpy with an __init__.py."""
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def _listed_packages() -> set:
    with open(ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)["tool"]["setuptools"]
    packages = config.get("packages")
    if isinstance(packages, list):   # written by hand
        return set(packages)
    find = packages.get("find", {}) if isinstance(packages, dict) else {}
    return set(find_packages(str(ROOT), include=find.get("include", ("*",)),
                             exclude=find.get("exclude", ())))


def test_every_subpackage_is_distributed():
    packages = {".".join(p.parent.relative_to(ROOT).parts)
                for p in (ROOT / "rnnpy").rglob("__init__.py")}
    assert {"rnnpy", "rnnpy.nn", "rnnpy.io.onnx", "rnnpy.train", "rnnpy.demos"} <= packages
    listed = _listed_packages()
    assert packages <= listed, sorted(packages - listed)
    assert not {p for p in listed if not p.startswith("rnnpy")}, listed
