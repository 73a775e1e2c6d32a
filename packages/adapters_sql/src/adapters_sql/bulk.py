"""Bulk writes on PostgreSQL: ``COPY`` into a table inside the unit of work's transaction.

Only the bulk paths use this (roster imports: many students, memberships and outbox rows at
once); single-row writes keep their ordinary statements. Errors are translated like every
other statement's (a unique or foreign-key violation becomes the same core error).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy import exc as sa_exc

from adapters_sql.errors import translate_errors
from adapters_sql.transaction import SqlTransaction

# Below this many rows an ordinary INSERT is as fast (COPY first looks the columns up).
COPY_MIN_ROWS = 64


@contextmanager
def _copy_errors(statement: str) -> Iterator[None]:
    """Translate errors of a COPY sent straight to asyncpg like any other statement's: an
    integrity violation takes the shape of a failed INSERT through SQLAlchemy (one table)."""
    with translate_errors():
        try:
            yield
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise sa_exc.IntegrityError(statement, None, exc) from exc


def use_copy(tx: SqlTransaction, rows: int) -> bool:
    """Whether ``rows`` rows are worth a ``COPY`` on this connection."""
    return rows >= COPY_MIN_ROWS and tx.is_postgresql


async def copy_records(
    tx: SqlTransaction,
    table: Table,
    columns: Sequence[str],
    records: Iterable[tuple[Any, ...]],
) -> None:
    """``COPY table (columns) FROM STDIN`` (binary) in the current transaction.

    Values go to asyncpg as they are: aware datetimes, UUIDs, JSON as text.
    """
    driver: asyncpg.Connection = tx.driver  # in the unit of work's transaction
    with translate_errors(), _copy_errors(f"COPY {table.name}"):
        await driver.copy_records_to_table(
            table.name, records=records, columns=list(columns), schema_name=table.schema
        )
