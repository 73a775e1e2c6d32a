"""The connection one unit of work runs on; every statement goes through error translation.

A unit of work is one plain transaction on one connection: SQLAlchemy begins it with the first
statement, :meth:`adapters_sql.uow.SqlUnitOfWork.commit` commits it, and leaving without a
commit rolls it back. Repositories send statements through :meth:`SqlTransaction.execute` (or
:meth:`SqlTransaction.fetch_rows` for a read whose rows they want as mappings), so that every
driver error is translated into a core error in one place (:mod:`adapters_sql.errors`).

A read-only unit of work (``Runtime.reads``: use cases that only read) runs each statement on
its own, in autocommit mode, and refuses writes: under READ COMMITTED a statement sees the
data committed when it starts, in a transaction or not, so the answers are the same, and a
``GET`` costs one round trip instead of three (``BEGIN``, the read, ``ROLLBACK``). On
PostgreSQL its :meth:`SqlTransaction.fetch_rows` also sends the statement, compiled once,
straight to asyncpg (public APIs: the pooled connection's ``driver_connection``,
``SQLCompiler.construct_expanded_state``), skipping SQLAlchemy's per-execution work, which
costs more than a primary-key read itself; a read through SQLAlchemy switches the connection
to autocommit first. Measured with ``python -m bench --only http`` (docs/performance.md,
issue 13): ``GET /v1/classes/{id}`` at 42–48 % of the bare reference through SQLAlchemy in
autocommit, 63–74 % with this path (the deferred-BEGIN code it replaced: 70–77 %).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from adapters_sql.errors import translate_errors

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_DriverPlan = tuple[str, tuple[str, ...], Mapping[str, Callable[[Any], Any]]]
# Reads sent straight to the driver: SQL, parameter names in order and their bind processors,
# worked out once per statement (module-level statements only).
_DRIVER_PLANS: dict[Select[Any], _DriverPlan] = {}


def _driver_plan(
    statement: Select[Any], conn: AsyncConnection, params: Mapping[str, Any]
) -> _DriverPlan:
    compiled = statement.compile(dialect=conn.dialect)
    assert isinstance(compiled, SQLCompiler)
    state = compiled.construct_expanded_state(params)
    if state.statement != compiled.string:
        raise ValueError("fetch_rows needs a statement with plain parameters (no expanding IN)")
    return state.statement, tuple(state.positiontup or ()), dict(state.processors)


class SqlTransaction:
    """Holds the unit of work's connection (set when the unit of work is entered)."""

    def __init__(self, *, read_only: bool = False) -> None:
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._autocommit = False
        self.read_only = read_only
        self.added_outbox = False
        # Students whose version went up without an event (a class deletion's members): the
        # unit of work adds them to the change feed at commit.
        self.touched: dict[UUID, datetime] = {}
        # Students inserted in this transaction by a bulk COPY (an import's chunk): no change
        # feed row can exist for them yet, so the feed's rows for them are COPYed too.
        self.copied_students: set[UUID] = set()

    def bind(self, conn: AsyncConnection | None, driver: Any = None) -> None:
        """Use ``conn``; ``driver`` is its asyncpg connection in a read-only unit of work."""
        self._conn = conn
        self._driver = driver if self.read_only else None
        self._autocommit = False
        self.touched = {}
        self.copied_students = set()

    @property
    def driver_only(self) -> bool:
        """Whether every statement so far went straight to the driver (a read-only unit of
        work on PostgreSQL that SQLAlchemy has not executed anything on)."""
        return self._driver is not None and not self._autocommit

    @property
    def conn(self) -> AsyncConnection:
        """The connection, inside the unit of work's transaction."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered (use `async with uow:`)")
        return self._conn

    @property
    def is_postgresql(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """A dialect ``INSERT`` (for ``ON CONFLICT``)."""
        if self.is_postgresql:
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def execute(
        self, statement: Executable, params: Params | None = None
    ) -> CursorResult[Any]:
        if self.read_only:
            if not getattr(statement, "is_select", False):
                raise RuntimeError("a read-only unit of work does not write")
            if self._driver is not None and not self._autocommit:
                # The first read through SQLAlchemy: autocommit from here on (no BEGIN); the
                # pool puts the connection's level back when it is returned.
                with translate_errors():
                    await self.conn.execution_options(isolation_level="AUTOCOMMIT")
                self._autocommit = True
        with translate_errors():
            return await self.conn.execute(statement, params)

    async def fetch_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        """The rows of a read, as mappings (``row["column"]``); straight through asyncpg in a
        read-only unit of work on PostgreSQL (see the module's docstring). Only for statements
        whose result columns have distinct names and need no result processing."""
        if self._driver is None:
            return list((await self.execute(statement, params)).mappings())
        plan = _DRIVER_PLANS.get(statement)
        if plan is None:
            plan = _DRIVER_PLANS[statement] = _driver_plan(statement, self.conn, params)
        sql, names, processors = plan
        args = [
            processors[name](params[name]) if name in processors else params[name] for name in names
        ]
        try:
            return list(await self._driver.fetch(sql, *args))
        except Exception:  # translated only when it happens: no context manager per read
            with translate_errors():
                raise
