"""The connection one unit of work runs on; every statement goes through error translation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from adapters_sql.errors import translate_errors

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class SqlTransaction:
    """Holds the unit of work's connection (set when the unit of work is entered)."""

    def __init__(self) -> None:
        self._conn: AsyncConnection | None = None
        self.added_outbox = False

    def bind(self, conn: AsyncConnection | None) -> None:
        self._conn = conn

    @property
    def conn(self) -> AsyncConnection:
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
        with translate_errors():
            return await self.conn.execute(statement, params)
