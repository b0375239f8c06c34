"""The package's import graph: no cycles among finecap modules, and nothing imports the CLI.

Read from the source with `ast` (nothing is imported), counting every import statement at any
level (function-local ones too: they are cycles waiting for the first call). An import names a
module when one exists by that name (`from finecap.train import ray_launch`), else the deepest
module that does (`from finecap.report import ReportError` -> finecap.report).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "finecap"


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _deepest(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The finecap modules `module` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up level - 1 packages from this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found |= {_deepest(name, modules) for name in names if name.split(".")[0] == "finecap"}
    return found - {module, None}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(root)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_finecap_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and graph["finecap.cli"]  # the walk found the package
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_nothing_imports_the_cli():
    importers = sorted(module for module, deps in import_graph().items() if "finecap.cli" in deps)
    assert not importers, f"{importers} import finecap.cli: call the library instead"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "finecap"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_cycle_through_a_function_local_import_is_found(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "cli.py": "from finecap.train import commands\n",
        "train/__init__.py": "",
        "train/commands.py": "from . import launch\n",
        "train/launch.py": "def trainer():\n    from finecap.cli import main\n",
        "other.py": "import finecap.train.launch\nfrom finecap.report import ReportError\n",
        "report/__init__.py": "from finecap.other import x\n",
    })
    graph = import_graph(root)
    assert graph["finecap.train.commands"] == {"finecap.train.launch"}  # relative import
    assert graph["finecap.other"] == {"finecap.train.launch", "finecap.report"}  # a name -> its module
    assert cycles(graph) == [["finecap.cli", "finecap.train.commands", "finecap.train.launch"],
                             ["finecap.other", "finecap.report"]]


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"a"}}, []),  # a module importing itself is no cycle between modules
    ({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}}, [["c", "d"], ["a", "b"]]),
])
def test_cycles_are_the_components_of_more_than_one_module(graph, expected):
    assert cycles(graph) == expected
