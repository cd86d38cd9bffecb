"""No import cycles among segrob's and the CLI's modules, lazy (in-function) imports included.

A cycle hidden behind an in-function import still ties two modules into one: neither can be
read, tested or moved without the other. Package ``__init__`` files that re-export their
submodules are not cycles by themselves, so an edge goes to the module an import names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"segrob": ROOT / "segrob", "segrob_cli": ROOT / "cli"}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.with_suffix("").relative_to(folder).parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                named = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(target for target in named if target in modules)
    return graph


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or ``None``."""
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop()
        for target in sorted(graph[path[-1]]):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                paths.append([*path, target])
    return None


def test_graph_sees_lazy_imports():
    graph = import_graph(module_files())
    assert "segrob.perturb.registry" in graph["segrob.audit.runner"]  # imported in a function
    assert "segrob.perturb.base" in graph["segrob.perturb.registry"]


def test_no_module_imports_itself_back():
    graph = import_graph(module_files())
    cycles = [cycle for name in graph if (cycle := cycle_from(name, graph))]
    assert not cycles, "import cycle: " + " -> ".join(cycles[0])
