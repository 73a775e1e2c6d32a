"""JSON views of what the commands print: the same shapes as the HTTP API's (contract §3.2)
where the API has one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from class_core.courses import COURSES_BY_CODE
from class_core.import_records import ImportRecord, UndoResult
from class_core.model import Association, SchoolClass, Student
from class_core.ports import OutboxStatus
from class_core.use_cases.imports import ImportSummary
from class_core.use_cases.matching import BatchView, ConfirmResult, FinalizedBatch
from class_core.use_cases.students import StudentExport


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def class_view(cls: SchoolClass) -> dict[str, Any]:
    course = COURSES_BY_CODE[cls.course_code]
    return {
        "id": str(cls.id),
        "name": cls.name,
        "course_code": cls.course_code,
        "course": {"code": course.code, "name": course.name, "language": course.language},
        "student_count": cls.student_count,
        "created_at": timestamp(cls.created_at),
        "updated_at": timestamp(cls.updated_at),
        "version": cls.version,
        "external_id": cls.external_id,
        "status": cls.status.value,
        "archived_at": timestamp(cls.archived_at),
    }


def student_view(s: Student) -> dict[str, Any]:
    """The API's student representation (§3.2, §10)."""
    return {
        "id": str(s.id),
        "first_name": s.first_name,
        "last_name": s.last_name,
        "legal_full_name": s.legal_full_name,
        "full_name": s.full_name,
        "email": s.email,
        "class_ids": [str(c) for c in sorted(s.class_ids)],
        "is_placeholder": s.is_placeholder,
        "created_at": timestamp(s.created_at),
        "updated_at": timestamp(s.updated_at),
        "version": s.version,
        "aliases": list(s.aliases),
        "protected_identity": s.protected_identity,
        "is_erased": s.is_erased,
        "erased_at": timestamp(s.erased_at),
        "external_id": s.external_id,
    }


def export_view(export: StudentExport) -> dict[str, Any]:
    """The API's export answer (§10 access)."""
    return {
        "student": student_view(export.student),
        "classes": [
            {"id": str(c.id), "name": c.name, "course_code": c.course_code} for c in export.classes
        ],
        "associations": [association_view(a, export.student_name(a)) for a in export.associations],
        "history": [
            {"at": timestamp(e.at), "action": e.action.value, "by": e.by} for e in export.history
        ],
    }


def association_view(
    a: Association, student_name: str | None = None, conflict: bool | None = None
) -> dict[str, Any]:
    """The HTTP association (§3.2, §11); ``conflict`` only where the whole batch is known."""
    view = {
        "essay_id": str(a.essay_id),
        "batch_id": str(a.batch_id),
        "class_id": str(a.class_id),
        "suggested_student_id": _id(a.suggested_student_id),
        "student_id": _id(a.student_id),
        "student_name": student_name,
        "confidence_score": a.confidence_score,
        "match_reasons": list(a.match_reasons),
        "validation_status": a.validation_status.value,
        "validation_method": a.validation_method.value if a.validation_method else None,
        "validated_by": a.validated_by,
        "validated_at": timestamp(a.validated_at),
        "created_at": timestamp(a.created_at),
        "runner_up_confidence": a.runner_up_confidence,
    }
    if conflict is not None:
        view["conflict"] = conflict
    return view


def batch_view(view: BatchView) -> dict[str, Any]:
    b = view.batch
    return {
        "batch_id": str(b.batch_id),
        "class_id": str(b.class_id),
        "course_code": b.course_code,
        "status": b.status.value,
        "deadline": timestamp(b.deadline),
        "associations": [
            association_view(a, view.student_name(a), view.conflict(a)) for a in view.associations
        ],
    }


def confirm_result_view(result: ConfirmResult) -> dict[str, Any]:
    return {
        "batch_id": str(result.batch_id),
        "status": result.status.value,
        "associations_confirmed": result.associations_confirmed,
        "associations_rejected": result.associations_rejected,
        "pending": result.pending,
    }


def finalized_view(f: FinalizedBatch) -> dict[str, Any]:
    return {
        "batch_id": str(f.batch_id),
        "class_id": str(f.class_id),
        "timeout_triggered": True,
        "auto_confirmed": f.auto_confirmed,
        "unknown_assigned": f.unknown_assigned,
    }


def outbox_status_view(status: OutboxStatus) -> dict[str, Any]:
    return {
        "pending": status.pending,
        "dead": status.dead,
        "published": status.published,
        "oldest_pending_age_seconds": status.oldest_pending_age_seconds,
    }


def import_summary_view(summary: ImportSummary) -> dict[str, Any]:
    """Exactly the contract's summary keys."""
    return {
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "failed": summary.failed,
        "errors": [{"row": e.row, "errors": list(e.errors)} for e in summary.errors],
        "import_id": _id(summary.import_id),
        "removed": summary.removed,
    }


def import_record_view(record: ImportRecord) -> dict[str, Any]:
    """One entry of the import history (§9.4), as ``GET /v1/imports`` shows it."""
    return {
        "import_id": str(record.import_id),
        "at": timestamp(record.at),
        "source": record.source.value,
        "class_id": _id(record.class_id),
        "created": record.created,
        "updated": record.updated,
        "removed": record.removed,
        "undone_at": timestamp(record.undone_at),
    }


def undo_result_view(result: UndoResult) -> dict[str, Any]:
    return {
        "import_id": str(result.import_id),
        "reverted": result.reverted,
        "skipped": [{"student_id": str(s.student_id), "reason": s.reason} for s in result.skipped],
    }


def _id(value: object | None) -> str | None:
    return str(value) if value is not None else None
