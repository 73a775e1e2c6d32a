"""Issue 13: the core holds no JSON encoding and no memoising caches (rendering is at the
edge, in ``adapters_sql.envelopes``; log formatting in ``class_runtime.logging_setup``)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import class_core

CORE = Path(class_core.__file__).resolve().parent
# Serialisation libraries the core must not use (import-linter forbids the third-party ones
# too; the standard library's are checked here).
_ENCODERS = {"json", "pickle", "marshal"}
_CACHES = {"cache", "lru_cache", "cached_property"}


def _in_core(check: Callable[[ast.Module], list[str]]) -> dict[str, list[str]]:
    """What ``check`` finds in each module of class_core (modules where it finds nothing are
    left out)."""
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10, CORE  # the walk found the package
    trees = {str(p.relative_to(CORE)): ast.parse(p.read_text(encoding="utf-8")) for p in files}
    return {name: found for name, tree in trees.items() if (found := check(tree))}


def _offences(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in _ENCODERS]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in _ENCODERS:
                found.append(f"from {node.module}")
            if module == "functools":
                found += [f"functools.{a.name}" for a in node.names if a.name in _CACHES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = node.value.id
            if name in _ENCODERS or (name == "functools" and node.attr in _CACHES):
                found.append(f"{name}.{node.attr}")
    return found


_MUTABLE = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def _mutable_module_values(tree: ast.Module) -> list[str]:
    """Module-level names bound to a dict, list or set (a constant table is a
    ``MappingProxyType``, a ``frozenset`` or a tuple; ``__all__`` is a list by custom)."""
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, _MUTABLE):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            found += [n for n in names if n != "__all__"]
    return found


def test_class_core_has_no_module_level_dicts_lists_or_sets() -> None:
    assert _in_core(_mutable_module_values) == {}
    sample = "A = {}\nB: list[int] = []\nC = frozenset({1})\n__all__ = ['C']\nD = {1: 2}\n"
    assert _mutable_module_values(ast.parse(sample)) == ["A", "B", "D"]


def test_class_core_encodes_no_json_and_memoises_nothing() -> None:
    assert _in_core(_offences) == {}


def test_the_check_finds_what_it_looks_for() -> None:
    source = (
        "import json\nfrom json import dumps\nimport functools\n"
        "@functools.lru_cache\ndef f(): return json.dumps(1)\n"
        "from functools import cache\n"
    )
    assert sorted(_offences(ast.parse(source))) == [
        "from json",
        "functools.cache",
        "functools.lru_cache",
        "json",
        "json.dumps",
    ]
