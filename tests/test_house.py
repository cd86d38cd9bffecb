"""The house rules that keep the code easy to change: short functions, thin commands."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
MAX_COMMAND_BODY_LINES = 40


def _functions(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT), node


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end."""
    body = node.body
    has_docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                    ast.Constant)
    first = body[1] if has_docstring and len(body) > 1 else body[0]
    return node.end_lineno - first.lineno + 1


def test_no_library_function_is_longer_than_sixty_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions(ROOT / "segrob")
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_no_command_body_is_longer_than_forty_lines():
    """A command parses, calls one library function and renders; its options may be many."""
    long = []
    for path, node in _functions(ROOT / "cli"):
        decorated = any(isinstance(d, ast.Name) and d.id == "handles_errors" for d in node.decorator_list)
        if decorated and _body_lines(node) > MAX_COMMAND_BODY_LINES:
            long.append(f"{path}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
        elif not decorated and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
            long.append(f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
