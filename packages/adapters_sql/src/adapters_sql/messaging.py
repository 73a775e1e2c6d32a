"""``Outbox`` and ``Inbox`` inside a unit of work."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.mapping import OUTBOX_RECORD_COLUMNS, outbox_record, outbox_row
from adapters_sql.schema import inbox, outbox
from adapters_sql.transaction import SqlTransaction
from class_core.events import OutboxMessage

_INSERT = insert(outbox)


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
            # The records are made as the COPY streams: the server works on the first ones
            # while the next are encoded.
            streamed = map(outbox_record, messages)
            await copy_records(self._tx, outbox, OUTBOX_RECORD_COLUMNS, streamed)
        else:
            await self._tx.write(_INSERT, [outbox_row(m) for m in messages])
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
