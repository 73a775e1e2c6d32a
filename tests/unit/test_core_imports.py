"""The core imports only the standard library, attrs and itself (house style)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import class_core

CORE = Path(class_core.__file__).parent
ALLOWED = {"attrs", "class_core"}


def foreign_imports(source: str) -> list[str]:
    """Top-level modules imported by ``source`` that are neither stdlib nor allowed."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside class_core
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ALLOWED:
                found.append(name)
    return found


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_checker_flags_foreign_imports() -> None:
    source = (
        "import os, sqlalchemy.orm\n"
        "from attrs import frozen\n"
        "from litestar import get\n"
        "from . import model\n"
        "def f():\n    import redis\n"
        "if True:\n    from cattrs import Converter\n"
    )
    assert foreign_imports(source) == ["sqlalchemy.orm", "litestar", "redis", "cattrs"]


def test_the_walk_sees_every_core_module() -> None:
    names = {p.relative_to(CORE).as_posix() for p in core_modules()}
    assert {"model.py", "use_cases/matching.py", "testing/memory.py", "ports.py"} <= names


def test_every_core_import_is_stdlib_attrs_or_the_core() -> None:
    offenders = {
        p.relative_to(CORE).as_posix(): bad
        for p in core_modules()
        if (bad := foreign_imports(p.read_text(encoding="utf-8")))
    }
    assert offenders == {}
