"""rnnpy's modules import each other without a cycle.

The graph is read from the source (ast), not from a running interpreter, so it
counts every import: at the top of a module, inside functions and methods,
relative and absolute. Only imports under ``if TYPE_CHECKING:`` are left out
(they never run; annotations may name a type of a layer above). An edge goes to
the module an import names: ``from ..io import checkpoint`` to rnnpy.io.checkpoint,
``from ..io import save`` to the package rnnpy.io (its __init__), ``import
rnnpy`` to rnnpy. A submodule does not depend on its parent package's
__init__ (Python imports it first, but the __init__ is the layer above that
gathers the public names).
"""
import ast
import os
from typing import Dict, List, Optional, Set

import pytest

import rnnpy

ROOT = os.path.dirname(rnnpy.__file__)


def _modules(root: str) -> Dict[str, str]:
    """dotted name -> path of every .py file of the package."""
    found = {}
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith((".py", ".so", ".pyd")):   # compiled modules (rnnpy._core) too
                stem = f[:-3] if f.endswith(".py") else f.split(".")[0]
                rel = os.path.relpath(os.path.join(folder, stem), os.path.dirname(root))
                name = rel.replace(os.sep, ".")
                found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = \
                    os.path.join(folder, f)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> List[ast.stmt]:
    """Every import statement, at any depth, except under ``if TYPE_CHECKING:``."""
    out: List[ast.stmt] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    walk(stmt)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            walk(child)

    walk(tree)
    return out


def import_graph(root: str = ROOT) -> Dict[str, Set[str]]:
    """module -> the rnnpy modules it imports (see the module docstring)."""
    modules = _modules(root)
    packages = {name for name, path in modules.items() if path.endswith("__init__.py")}
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if not path.endswith(".py"):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        here = name if name in packages else name.rpartition(".")[0]
        for node in _imports(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = here.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                for alias in node.names:
                    sub = f"{stem}.{alias.name}"
                    targets.append(sub if sub in modules else stem)
            for target in targets:
                while target and target not in modules:   # import a.b.c of a module a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle as [a, b, ..., a], or None."""
    state: Dict[str, int] = {}   # 1 on the current path, 2 done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_rnnpy_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 30 and "rnnpy.nn.module" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_module_base_knows_no_files_or_training():
    graph = import_graph()
    seen, todo = set(), ["rnnpy.nn.module"]
    while todo:   # everything the module base needs, transitively
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    assert not {m for m in seen if m.startswith(("rnnpy.io", "rnnpy.train", "rnnpy.tools"))}, seen


def test_the_graph_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..c import C\n"
        "def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(str(pkg))
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]


@pytest.mark.parametrize("method", ["save", "compile", "fit", "evaluate", "predict", "summary"])
def test_every_module_keeps_the_keras_methods(method):
    assert getattr(rnnpy.Module, method) is getattr(rnnpy.model_methods.ModelMethods, method)
    assert callable(getattr(rnnpy.Sequential(rnnpy.Dense(2, 3)), method))
    assert method not in vars(rnnpy.nn.module.Module.__mro__[0]) or \
        vars(rnnpy.Module)[method] is vars(rnnpy.model_methods.ModelMethods)[method]
