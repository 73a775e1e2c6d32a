"""``StudentHistory`` on SQL: what was done to each student (ids and actions only)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import bindparam, delete, insert, select

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.mapping import HISTORY_COLUMNS, history_from_row, history_row
from adapters_sql.schema import student_history
from adapters_sql.transaction import SqlTransaction
from class_core.model import HistoryEntry

_INSERT = insert(student_history)
_OF_STUDENT = (
    select(student_history)
    .where(student_history.c.student_id == bindparam("student_id"))
    .order_by(student_history.c.seq)
)
_DELETE = delete(student_history).where(student_history.c.student_id == bindparam("student_id"))


class SqlStudentHistory:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def add(self, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        if use_copy(self._tx, len(entries)):
            # Imports: a COPY, like their students and outbox rows (two entries per student).
            records = (
                (e.student_id, e.owner_id, e.at, e.action.value, e.by, e.subject_id)
                for e in entries
            )
            await copy_records(self._tx, student_history, HISTORY_COLUMNS, records)
            return
        await self._tx.write(_INSERT, [history_row(e) for e in entries])

    async def of_student(self, student_id: UUID) -> list[HistoryEntry]:
        result = await self._tx.execute(_OF_STUDENT, {"student_id": student_id})
        return [history_from_row(r) for r in result.mappings()]

    async def delete_student(self, student_id: UUID) -> None:
        await self._tx.execute(_DELETE, {"student_id": student_id})
