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

A write unit of work on PostgreSQL is one asyncpg transaction (asyncpg's public
``Connection.transaction()``): :meth:`SqlTransaction.begin` sends ``BEGIN`` when the unit of
work is entered, :meth:`SqlTransaction.commit` sends ``COMMIT``, and leaving without a commit
sends ``ROLLBACK``. Its hot statements go straight to asyncpg like a read's
(:meth:`SqlTransaction.fetch_rows`, :meth:`SqlTransaction.write`); a statement that needs
SQLAlchemy's result handling goes through :meth:`SqlTransaction.execute`, which first switches
the SQLAlchemy connection to autocommit (as a read does), so that SQLAlchemy never begins or
commits a transaction of its own on that connection and every statement runs in the unit of
work's transaction. Measured with ``POST /v1/classes/students`` into one class
(docs/performance.md, "POST student: a write transaction without SQLAlchemy's machinery"):
the first statement, ``BEGIN`` and ``COMMIT`` no longer go through SQLAlchemy's execution
and greenlets. A connection whose transaction could not be ended (a ``ROLLBACK`` that failed
or was cancelled) is closed, never pooled (:meth:`SqlTransaction.end`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from adapters_sql.errors import translate_errors

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_DriverPlan = tuple[str, tuple[str, ...], Mapping[str, Callable[[Any], Any]]]
# Statements sent straight to the driver: SQL, parameter names in order and their bind
# processors, worked out once per statement and set of parameter names (module-level
# statements, or statements cached by their shape: a bounded set).
_DRIVER_PLANS: dict[tuple[Executable, frozenset[str]], _DriverPlan] = {}


def _driver_plan(
    statement: Executable, conn: AsyncConnection, params: Mapping[str, Any]
) -> _DriverPlan:
    # ``for_executemany``: no implicit ``RETURNING`` of an INSERT's generated key (unused).
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=conn.dialect, column_keys=list(params), for_executemany=True
    )
    assert isinstance(compiled, SQLCompiler)
    state = compiled.construct_expanded_state(params)
    if state.statement != compiled.string:
        raise ValueError("a direct statement needs plain parameters (no expanding IN)")
    names = tuple(state.positiontup or ())
    processors = {}
    for name in names:
        # The bind processor SQLAlchemy would apply (e.g. JSON to text, aware datetimes).
        impl = compiled.binds[name].type.dialect_impl(conn.dialect)
        processor = impl.bind_processor(conn.dialect)
        if processor is not None:
            processors[name] = processor
    return state.statement, names, processors


def _args(plan: _DriverPlan, params: Mapping[str, Any]) -> list[Any]:
    _, names, processors = plan
    return [
        processors[name](params[name]) if name in processors else params[name] for name in names
    ]


class SqlTransaction:
    """Holds the unit of work's connection (set when the unit of work is entered)."""

    def __init__(self, *, read_only: bool = False) -> None:
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._driver_tx: Any = None  # the write unit of work's asyncpg transaction (PostgreSQL)
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
        """Use ``conn``; ``driver`` is its asyncpg connection (PostgreSQL)."""
        self._conn = conn
        self._driver = driver
        self._driver_tx = None
        self._autocommit = False
        self.touched = {}
        self.copied_students = set()

    @property
    def driver(self) -> Any:
        """The asyncpg connection of a write unit of work on PostgreSQL, inside its
        transaction (for ``COPY``: :mod:`adapters_sql.bulk`)."""
        if self._driver_tx is None:
            raise RuntimeError("no driver transaction: a write unit of work on PostgreSQL")
        return self._driver

    @property
    def used_sqlalchemy(self) -> bool:
        """Whether SQLAlchemy executed a statement on the connection (it then holds state the
        pool must reset when the connection is returned)."""
        return self._autocommit

    async def begin(self) -> None:
        """On PostgreSQL, begin the write unit of work's transaction (``BEGIN``) on the
        driver; SQLite's transaction is SQLAlchemy's, begun by the first statement."""
        if self._driver is None or self.read_only:
            return
        tx = self._driver.transaction()
        with translate_errors():
            await tx.start()
        self._driver_tx = tx

    async def commit(self) -> None:
        """Commit the unit of work's transaction (an error raised at ``COMMIT``, e.g. by a
        deferred constraint, is translated like a statement's)."""
        tx, self._driver_tx = self._driver_tx, None
        if tx is None:
            with translate_errors():
                await self.conn.commit()
            return
        with translate_errors(), _as_integrity_error("COMMIT"):
            await tx.commit()

    async def end(self) -> bool:
        """Leave the driver's transaction if it is still open (``ROLLBACK``); whether the
        connection may go back to the pool. When the rollback fails or is cancelled, the
        connection is closed at once (the pool replaces a closed connection at checkout), so
        that no half-ended transaction is ever handed to the next unit of work."""
        tx, self._driver_tx = self._driver_tx, None
        if tx is None:  # committed, read-only, or SQLite (SQLAlchemy's transaction)
            return True
        try:
            await tx.rollback()
        except Exception:
            log.debug("rollback failed; the connection is closed", exc_info=True)
            self._driver.terminate()
            return False
        except BaseException:  # cancelled mid-ROLLBACK: closed, and the cancellation goes on
            self._driver.terminate()
            raise
        return True

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
        if self.read_only and not getattr(statement, "is_select", False):
            raise RuntimeError("a read-only unit of work does not write")
        if self._driver is not None and not self._autocommit:
            # The first statement through SQLAlchemy: autocommit from here on, so that it
            # neither begins nor commits a transaction of its own (a read runs on its own; a
            # write unit of work's statements run in its driver transaction). The pool puts
            # the connection's level back when it is returned.
            with translate_errors():
                await self.conn.execution_options(isolation_level="AUTOCOMMIT")
            self._autocommit = True
        with translate_errors():
            return await self.conn.execute(statement, params)

    def _plan(self, statement: Executable, params: Mapping[str, Any]) -> _DriverPlan:
        key = (statement, frozenset(params))
        plan = _DRIVER_PLANS.get(key)
        if plan is None:
            plan = _DRIVER_PLANS[key] = _driver_plan(statement, self.conn, params)
        return plan

    async def fetch_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        """The rows of a read, as mappings (``row["column"]``); straight through asyncpg on
        PostgreSQL (see the module's docstring). Only for statements whose result columns
        have distinct names and need no result processing."""
        driver = self._driver  # PostgreSQL: on its own (read-only) or in the driver transaction
        if driver is None:
            return list((await self.execute(statement, params)).mappings())
        plan = self._plan(statement, params)
        try:
            return list(await driver.fetch(plan[0], *_args(plan, params)))
        except Exception:  # translated only when it happens: no context manager per read
            with translate_errors():
                raise

    async def write(self, statement: Executable, params: Params) -> None:
        """Run a write whose result is not needed (one row's parameters, or several: an
        executemany); straight through asyncpg inside a PostgreSQL transaction (see the
        module's docstring), through :meth:`execute` otherwise."""
        driver = None if self.read_only else self._driver
        if driver is None or not params:
            await self.execute(statement, params)
            return
        rows = [params] if isinstance(params, Mapping) else params
        plan = self._plan(statement, rows[0])
        with translate_errors(), _as_integrity_error(plan[0]):
            if len(rows) == 1:
                await driver.execute(plan[0], *_args(plan, rows[0]))
            else:
                await driver.executemany(plan[0], [_args(plan, r) for r in rows])


@contextmanager
def _as_integrity_error(sql: str) -> Iterator[None]:
    """A constraint violation (SQLSTATE class 23) raised by asyncpg itself, wrapped as
    SQLAlchemy wraps it, so that :func:`adapters_sql.errors.translate_errors` reads it the
    same way (constraint name, statement)."""
    try:
        yield
    except Exception as exc:
        if str(getattr(exc, "sqlstate", "") or "").startswith("23"):
            raise IntegrityError(sql, None, exc) from exc
        raise
