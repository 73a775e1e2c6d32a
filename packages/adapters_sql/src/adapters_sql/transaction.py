"""The connection one unit of work runs on; every statement goes through error translation.

A unit of work is one plain transaction on one connection: SQLAlchemy begins it with the first
statement, :meth:`adapters_sql.uow.SqlUnitOfWork.commit` commits it, and leaving without a
commit rolls it back. Repositories send statements through :meth:`SqlTransaction.execute` (or
:meth:`SqlTransaction.fetch_rows` for a read whose rows they want as mappings), so that every
driver error is translated into a core error in one place (:mod:`adapters_sql.errors`).

A read-only unit of work (``Runtime.reads``: use cases that only read) runs each statement on
its own, in autocommit mode, and refuses writes: under READ COMMITTED a statement sees the
data committed when it starts, in a transaction or not, so the answers are the same, and a
``GET`` costs one round trip instead of three (``BEGIN``, the read, ``ROLLBACK``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from adapters_sql.errors import translate_errors

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class SqlTransaction:
    """Holds the unit of work's connection (set when the unit of work is entered)."""

    def __init__(self, *, read_only: bool = False) -> None:
        self._conn: AsyncConnection | None = None
        self.read_only = read_only
        self.added_outbox = False

    def bind(self, conn: AsyncConnection | None) -> None:
        self._conn = conn

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
        with translate_errors():
            return await self.conn.execute(statement, params)

    async def fetch_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        """The rows of a read, as mappings (``row["column"]``)."""
        return list((await self.execute(statement, params)).mappings())
