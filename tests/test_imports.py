"""The package's import structure: the audit stands apart from training, and nothing imports in a circle.

Imports are read from the source (every ``import``, at module level or inside a function), so a
lazy import that only runs on some code path counts too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import segrob

PACKAGE_ROOT = Path(segrob.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_segrob_modules(path: Path, known: set[str]) -> set[str]:
    """The segrob modules ``path`` imports: ``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {m for m in found if m == "segrob" or m.startswith("segrob.")}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_segrob_modules(path, set(known)) - {name} for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_audit_imports_nothing_from_training():
    graph = import_graph()
    audit = {name for name in graph if name == "segrob.audit" or name.startswith("segrob.audit.")}
    assert len(audit) > 5  # the walk found the audit package
    offending = {
        name: sorted(t for t in graph[name] if t == "segrob.training" or t.startswith("segrob.training."))
        for name in audit
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_and_lazy_imports_are_read(tmp_path, monkeypatch):
    package = tmp_path / "segrob" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "segrob" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "other.py").write_text("")
    source = package / "mod.py"
    source.write_text(
        "from . import other\nfrom ..errors import X\n\ndef f():\n    import segrob.training.loop\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_ROOT", tmp_path / "segrob")
    known = {"segrob", "segrob.sub", "segrob.sub.other", "segrob.sub.mod"}
    assert imported_segrob_modules(source, known) == {"segrob.sub.other", "segrob.errors",
                                                     "segrob.training.loop"}
