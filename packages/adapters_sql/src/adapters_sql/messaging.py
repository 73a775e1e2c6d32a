"""``Outbox`` and ``Inbox`` inside a unit of work."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.mapping import outbox_row
from adapters_sql.schema import inbox, outbox
from adapters_sql.transaction import SqlTransaction
from class_core.events import OutboxMessage

_INSERT = insert(outbox)
# A bulk insert's columns; the rest have defaults (``seq``, ``attempts``) or start empty.
_COPY_COLUMNS = (
    "event_id",
    "topic",
    "key",
    "payload",
    "headers",
    "created_at",
    "next_attempt_at",
)


# The same rows through the driver, once the unit of work's transaction is open.
_DRIVER_INSERT = (
    f"INSERT INTO {outbox.name} ({', '.join(_COPY_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COPY_COLUMNS) + 1))})"
)


def _copy_record(m: OutboxMessage) -> tuple[Any, ...]:
    """``outbox_row`` as a COPY record (JSON columns as text)."""
    row = outbox_row(m)
    row["headers"] = json.dumps(row["headers"])
    return tuple(row[c] for c in _COPY_COLUMNS)


class SqlOutbox:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        """Record events in the current transaction. On PostgreSQL an insert trigger runs
        ``pg_notify('cms_outbox', '')``, delivered at commit, to wake relays elsewhere."""
        if not messages:
            return
        if use_copy(self._tx, len(messages)):
            # Imports: one COPY per chunk (the statement-level NOTIFY trigger fires for it too).
            records = [_copy_record(m) for m in messages]
            await copy_records(self._tx, outbox, _COPY_COLUMNS, records)
        elif not await self._tx.executemany_in_transaction(
            _DRIVER_INSERT, [_copy_record(m) for m in messages]
        ):
            rows = [outbox_row(m) for m in messages]
            await self._tx.execute(_INSERT, rows if len(rows) > 1 else rows[0])
        self._tx.added_outbox = True


class SqlInbox:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def claim(self, consumer: str, message_id: str) -> bool:
        statement = (
            self._tx.insert(inbox)
            .values(consumer=consumer, message_id=message_id)
            .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
            .returning(inbox.c.consumer)
        )
        return (await self._tx.execute(statement)).first() is not None
