"""Library messages speak library terms: no module outside attnviz/cli names a command-line
flag in an error's message or hint. An error about a parameter carries it as ``option``
and the command line words it as the flag (attnviz.errors.AttnvizError.worded)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attnviz

PACKAGE = Path(attnviz.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _error_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal inside a call of a name ending in ``Error`` (the message, the
    hint and anything formatted into them)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if not name.endswith("Error"):
            continue
        for part in [*node.args, *(k.value for k in node.keywords)]:
            for inner in ast.walk(part):
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    found.append((inner.lineno, inner.value))
    return found


def test_library_error_messages_name_no_flags() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("cli/"):
            continue
        for line, text in _error_strings(ast.parse(path.read_text(encoding="utf-8"))):
            if FLAG.search(text):
                offenders.append(f"attnviz/{relative}:{line}: {text!r}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_a_flag_in_a_message() -> None:
    tree = ast.parse('raise InputError("bad", hint="use " + "--max-bytes 8G")')
    assert any(FLAG.search(text) for _, text in _error_strings(tree))
    assert not any(FLAG.search(text) for _, text in _error_strings(ast.parse('raise InputError("a -- b")')))
