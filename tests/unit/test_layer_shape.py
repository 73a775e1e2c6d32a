"""The shape issue 13 asked for, checked on the source: no asyncio concurrency in the core,
no private SQLAlchemy (or driver) attributes in the SQL adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import adapters_sql
import class_core

_CONCURRENCY = {
    "create_task",
    "ensure_future",
    "gather",
    "wait",
    "wait_for",
    "Future",
    "Task",
    "get_running_loop",
    "get_event_loop",
    "TaskGroup",
}


def _sources(package: object, skip: str | None = None) -> list[Path]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    return [p for p in root.rglob("*.py") if skip is None or skip not in p.parts]


def test_the_core_runs_no_asyncio_concurrency() -> None:
    found: list[str] = []
    for path in _sources(class_core, skip="testing"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "asyncio"
                and node.attr in _CONCURRENCY
            ):
                found.append(f"{path.name}:{node.lineno} asyncio.{node.attr}")
    assert found == []


def test_the_sql_adapter_uses_no_private_attributes_of_other_objects() -> None:
    """``x._name`` only on our own objects (``self``/``cls``); ``sqlalchemy`` and asyncpg
    objects are used through their public API."""
    found: list[str] = []
    for path in _sources(adapters_sql, skip="migrations"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
            ):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
        text = path.read_text(encoding="utf-8")
        if "getattr(" in text and "_for_update_arg" in text:
            found.append(f"{path.name}: getattr of a private attribute")
    assert found == []
