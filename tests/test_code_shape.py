"""Code shape: no function over 60 lines in the app and the core (chatvlmllm/devtools/ excepted).

A function's length runs from its `def` line to its last line, docstring, comments and blank lines
included: what a reader scrolls through. Nested functions count on their own and inside the one
that holds them. Read with `ast`, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60
ROOTS = ("chatvlmllm", "ui", "pages", "app.py")
EXEMPT_FOLDERS = (ROOT / "chatvlmllm" / "devtools",)  # test-time builders of tiny checkpoints and servers
EXEMPT_FUNCTIONS: set[tuple[str, str]] = set()  # (file, function): none


def python_files() -> list[Path]:
    files: list[Path] = []
    for root in ROOTS:
        target = ROOT / root
        files.extend([target] if target.is_file() else sorted(target.rglob("*.py")))
    return [path for path in files if not any(folder in path.parents for folder in EXEMPT_FOLDERS)]


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function and method in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.name, node.lineno, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


@pytest.mark.slow
def test_the_walk_finds_the_code():
    # The check below means something only if it reads the app and every layer of the core.
    files = {str(path.relative_to(ROOT)) for path in python_files()}
    assert {"app.py", "ui/sidebar.py", "chatvlmllm/server/app.py", "chatvlmllm/eval/benchmark.py"} <= files
    assert not any(name.startswith("chatvlmllm/devtools/") for name in files)
    assert sum(len(function_lengths(path)) for path in python_files()) > 500


def test_no_function_is_over_60_lines():
    too_long = [
        f"{relative}:{line} {name} ({length} lines)"
        for path in python_files()
        for name, line, length in function_lengths(path)
        if length > MAX_LINES and ((relative := str(path.relative_to(ROOT))), name) not in EXEMPT_FUNCTIONS
    ]
    assert too_long == []
