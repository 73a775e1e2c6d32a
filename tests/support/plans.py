"""Capture every statement the SQL adapter sends to PostgreSQL, and EXPLAIN it.

Statements reach asyncpg two ways: through SQLAlchemy (seen by its ``before_cursor_execute``
event, already compiled to ``$n`` placeholders with the driver's parameter values) and
straight to the driver (``SqlTransaction.fetch_rows`` and friends; seen by asyncpg's query
logger). Both are recorded per connection, in order, so a ``SET LOCAL`` the adapter sends
before a statement (the relay's fetch) is replayed with it: the plan is the one the adapter
gets.

Each statement is explained twice: with its own parameter values (a custom plan) and as a
prepared statement forced to its generic plan — what PostgreSQL switches to after a prepared
statement's fifth execution, which is how asyncpg's statement cache runs the service's hot
statements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_EXPLAINABLE = re.compile(r"^\s*(SELECT|WITH|UPDATE|DELETE)\b", re.IGNORECASE)
_SET_LOCAL = re.compile(r"^\s*SET\s+LOCAL\b", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    sql: str
    args: tuple[Any, ...]
    settings: tuple[str, ...]  # SET LOCAL statements sent just before it, in its transaction


@dataclass
class StatementLog:
    """What the adapter sent, by connection, while :meth:`recording`."""

    statements: list[Statement] = field(default_factory=list)
    _pending_settings: dict[int, list[str]] = field(default_factory=dict)
    _recording: bool = False
    _hooked: set[int] = field(default_factory=set)

    def _record(self, conn_key: int, sql: str, args: tuple[Any, ...]) -> None:
        if not self._recording or "cms_" not in sql:
            if self._recording and _SET_LOCAL.match(sql):
                self._pending_settings.setdefault(conn_key, []).append(sql)
            return
        settings = tuple(self._pending_settings.pop(conn_key, ()))
        if _EXPLAINABLE.match(sql):
            self.statements.append(Statement(sql, args, settings))

    def attach(self, engine: AsyncEngine) -> None:
        """Record the statements of every connection ``engine`` uses from now on."""

        def before_cursor_execute(
            conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, many: bool
        ) -> None:
            driver = conn.connection.driver_connection
            self._hook_driver(driver)
            if many or (isinstance(params, list) and params and isinstance(params[0], tuple)):
                for one in params:
                    self._record(id(driver), sql, tuple(one))
            else:
                self._record(id(driver), sql, tuple(params or ()))

        def connect(dbapi_connection: Any, _record: Any) -> None:
            self._hook_driver(dbapi_connection.driver_connection)

        event.listen(engine.sync_engine, "connect", connect)
        event.listen(engine.sync_engine, "before_cursor_execute", before_cursor_execute)

    def _hook_driver(self, driver: asyncpg.Connection) -> None:
        key = id(driver)
        if key in self._hooked:
            return
        self._hooked.add(key)

        def logged(record: Any) -> None:
            args = tuple(record.args or ())
            if args and isinstance(args[0], tuple):  # executemany: one tuple per execution
                for one in args:
                    self._record(key, record.query, one)
            else:
                self._record(key, record.query, args)

        # Called soon after each query the driver runs itself (not SQLAlchemy's prepared
        # statements, which the event above sees).
        driver.add_query_logger(logged)

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        """Collect the statements sent inside the block (a fresh list)."""
        self.statements = []
        self._pending_settings.clear()
        self._recording = True
        try:
            yield self.statements
        finally:
            self._recording = False


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def sequential_scans(plan_json: Any, tables: frozenset[str]) -> list[str]:
    """Names of ``tables`` read by a sequential scan anywhere in an EXPLAIN (FORMAT JSON)."""
    document = json.loads(plan_json) if isinstance(plan_json, str) else plan_json
    return [
        node["Relation Name"]
        for top in document
        for node in _nodes(top["Plan"])
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in tables
    ]


async def _explain(conn: asyncpg.Connection, statement: Statement, generic: bool) -> Any:
    """EXPLAIN (FORMAT JSON) of ``statement`` prepared and executed with its own values, under
    ``plan_cache_mode`` forced to the custom or to the generic plan."""
    async with conn.transaction():
        for setting in statement.settings:
            await conn.execute(setting)
        prepared = await conn.prepare(statement.sql)
        types = [
            await conn.fetchval("SELECT format_type($1::oid, NULL)", p.oid)
            for p in prepared.get_parameters()
        ]
        # EXECUTE takes no bind parameters: each value goes in as a literal of its type.
        literals = []
        for value, type_name in zip(statement.args, types, strict=True):
            text = await conn.fetchval(f"SELECT $1::{type_name}::text", value)
            literal = "NULL" if text is None else "'" + text.replace("'", "''") + "'"
            literals.append(f"{literal}::{type_name}")
        mode = "force_generic_plan" if generic else "force_custom_plan"
        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        signature = f"({', '.join(types)})" if types else ""
        await conn.execute(f"PREPARE cms_plan_probe{signature} AS {statement.sql}")
        try:
            values = f"({', '.join(literals)})" if literals else ""
            return await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE cms_plan_probe{values}")
        finally:
            await conn.execute("DEALLOCATE cms_plan_probe")


@dataclass(frozen=True)
class PlanProblem:
    statement: Statement
    mode: str
    tables: list[str]
    plan: str

    def __str__(self) -> str:
        return (
            f"{self.mode} plan scans {', '.join(self.tables)} sequentially:\n"
            f"{self.statement.sql}\n{self.plan}"
        )


async def plan_problems(
    conn: asyncpg.Connection, statements: list[Statement], tables: frozenset[str]
) -> list[PlanProblem]:
    """Every custom or generic plan of ``statements`` that scans one of ``tables``."""
    problems: list[PlanProblem] = []
    for statement in statements:
        for mode in ("custom", "generic"):
            plan = await _explain(conn, statement, generic=mode == "generic")
            scanned = sequential_scans(plan, tables)
            if scanned:
                text = await _text_plan(conn, statement, mode == "generic")
                problems.append(PlanProblem(statement, mode, scanned, text))
    return problems


async def _text_plan(conn: asyncpg.Connection, statement: Statement, generic: bool) -> str:
    document = await _explain(conn, statement, generic)
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        relation = f" on {node['Relation Name']}" if "Relation Name" in node else ""
        index = f" using {node['Index Name']}" if "Index Name" in node else ""
        lines.append(f"{'  ' * depth}-> {node['Node Type']}{relation}{index}")
        for child in node.get("Plans", ()):
            walk(child, depth + 1)

    walk(json.loads(document)[0]["Plan"], 0)
    return "\n".join(lines)
