"""HTTP representations of roster imports, their history and undo (contract §9.4)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from msgspec import Struct

from class_api.dto import PaginationOut, Timestamp, pagination_out, timestamp
from class_core.import_records import ImportRecord, UndoResult
from class_core.model import Page
from class_core.use_cases.imports import ImportSummary


class RowErrorOut(Struct):
    row: int
    errors: list[str]


class ImportSummaryOut(Struct):
    """The §7 summary plus ``import_id`` (null on a dry run and when nothing changed) and
    ``removed`` (sync mode)."""

    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[RowErrorOut]
    import_id: UUID | None
    removed: int


class ImportOut(Struct):
    import_id: UUID
    at: Timestamp
    source: Literal["http", "cli"]
    class_id: UUID | None
    created: int
    updated: int
    removed: int
    undone_at: Timestamp | None


class ImportListOut(Struct):
    imports: list[ImportOut]
    pagination: PaginationOut


SkipReason = Literal["deleted", "erased", "associated", "class_archived", "changed_since"]


class SkippedOut(Struct):
    student_id: UUID
    reason: SkipReason


class UndoOut(Struct):
    import_id: UUID
    reverted: int
    skipped: list[SkippedOut]


def import_summary_out(summary: ImportSummary) -> ImportSummaryOut:
    return ImportSummaryOut(
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        failed=summary.failed,
        errors=[RowErrorOut(e.row, list(e.errors)) for e in summary.errors],
        import_id=summary.import_id,
        removed=summary.removed,
    )


def import_out(r: ImportRecord) -> ImportOut:
    return ImportOut(
        import_id=r.import_id,
        at=timestamp(r.at),
        source=r.source.value,
        class_id=r.class_id,
        created=r.created,
        updated=r.updated,
        removed=r.removed,
        undone_at=timestamp(r.undone_at) if r.undone_at is not None else None,
    )


def import_list_out(page: Page[ImportRecord]) -> ImportListOut:
    return ImportListOut([import_out(r) for r in page.items], pagination_out(page))  # type: ignore[arg-type]


def undo_out(result: UndoResult) -> UndoOut:
    return UndoOut(
        import_id=result.import_id,
        reverted=result.reverted,
        skipped=[SkippedOut(s.student_id, s.reason) for s in result.skipped],  # type: ignore[arg-type]
    )
