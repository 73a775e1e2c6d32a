"""Explicit row ↔ domain mapping (no ORM): ``*_row`` builds insert/update parameters,
``*_from_row`` rebuilds domain objects from result rows."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, Select, bindparam

from class_core.events import OutboxMessage
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    ClassStatus,
    HistoryAction,
    HistoryEntry,
    SchoolClass,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.ports import StoredOutboxMessage
from class_core.text import search_key

Row = RowMapping


def class_search_key(cls: SchoolClass) -> str:
    return search_key(cls.name)


def student_search_key(s: Student) -> str:
    return search_key(s.first_name, s.last_name, s.legal_full_name, s.email, *s.aliases)


def class_row(cls: SchoolClass) -> dict[str, Any]:
    return {
        "id": cls.id,
        "owner_id": cls.owner_id,
        "name": cls.name,
        "course_code": cls.course_code,
        "search_key": class_search_key(cls),
        "created_at": cls.created_at,
        "updated_at": cls.updated_at,
        "version": cls.version,
        "external_id": cls.external_id,
        "status": cls.status.value,
        "archived_at": cls.archived_at,
    }


def class_from_row(row: Row, student_count: int = 0) -> SchoolClass:
    return SchoolClass(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        course_code=row["course_code"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        student_count=student_count,
        version=row["version"],
        external_id=row["external_id"],
        status=ClassStatus(row["status"]),
        archived_at=row["archived_at"],
    )


def student_row(s: Student, placeholder_class_id: UUID | None = None) -> dict[str, Any]:
    return {
        "id": s.id,
        "owner_id": s.owner_id,
        "first_name": s.first_name,
        "last_name": s.last_name,
        "legal_full_name": s.legal_full_name,
        "email": s.email,
        "search_key": student_search_key(s),
        "is_placeholder": placeholder_class_id is not None,
        "placeholder_class_id": placeholder_class_id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "version": s.version,
        "aliases": list(s.aliases),
        "protected_identity": s.protected_identity,
        "erased_at": s.erased_at,
        "external_id": s.external_id,
    }


# The columns of ``student_row`` but ``aliases`` (a bulk insert leaves the column's default,
# no aliases), in the order of :func:`student_record`., in the order of :func:`student_record`.
STUDENT_RECORD_COLUMNS: tuple[str, ...] = (
    "id",
    "owner_id",
    "first_name",
    "last_name",
    "legal_full_name",
    "email",
    "search_key",
    "is_placeholder",
    "placeholder_class_id",
    "created_at",
    "updated_at",
    "version",
    "protected_identity",
    "erased_at",
    "external_id",
)


def student_record(s: Student) -> tuple[Any, ...]:
    """``student_row`` of an ordinary (not placeholder) student without aliases as a tuple in
    the order of :data:`STUDENT_RECORD_COLUMNS`: bulk inserts, without a dictionary per row."""
    if s.aliases:  # pragma: no cover - bulk paths create students without aliases
        raise ValueError("student_record cannot carry aliases")
    return (
        s.id,
        s.owner_id,
        s.first_name,
        s.last_name,
        s.legal_full_name,
        s.email,
        student_search_key(s),
        False,
        None,
        s.created_at,
        s.updated_at,
        s.version,
        s.protected_identity,
        s.erased_at,
        s.external_id,
    )


def student_from_row(row: Row, class_ids: Sequence[UUID] = ()) -> Student:
    return Student(
        id=row["id"],
        owner_id=row["owner_id"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        legal_full_name=row["legal_full_name"],
        email=row["email"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        is_placeholder=bool(row["is_placeholder"]),
        class_ids=tuple(sorted(class_ids)),
        version=row["version"],
        aliases=_aliases(row["aliases"]),
        protected_identity=bool(row["protected_identity"]),
        erased_at=row["erased_at"],
        external_id=row["external_id"],
    )


HISTORY_COLUMNS: tuple[str, ...] = (
    "student_id",
    "owner_id",
    "at",
    "action",
    "actor",
    "subject_id",
)  # the keys of history_row(entry), in order


def history_row(e: HistoryEntry) -> dict[str, Any]:
    return {
        "student_id": e.student_id,
        "owner_id": e.owner_id,
        "at": e.at,
        "action": e.action.value,
        "actor": e.by,
        "subject_id": e.subject_id,
    }


def history_from_row(row: Row) -> HistoryEntry:
    return HistoryEntry(
        student_id=row["student_id"],
        owner_id=row["owner_id"],
        at=row["at"],
        action=HistoryAction(row["action"]),
        by=row["actor"],
        subject_id=row["subject_id"],
    )


def _aliases(value: Any) -> tuple[str, ...]:
    """The stored JSON list (decoded by SQLAlchemy, or text when read through the driver)."""
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(value or ())


def batch_row(b: Batch) -> dict[str, Any]:
    return {
        "batch_id": b.batch_id,
        "class_id": b.class_id,
        "owner_id": b.owner_id,
        "course_code": b.course_code,
        "status": b.status.value,
        "deadline": b.deadline,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "finalized_at": b.finalized_at,
        "timeout_triggered": b.timeout_triggered,
    }


def batch_from_row(row: Row) -> Batch:
    return Batch(
        batch_id=row["batch_id"],
        class_id=row["class_id"],
        owner_id=row["owner_id"],
        course_code=row["course_code"],
        status=BatchStatus(row["status"]),
        deadline=row["deadline"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finalized_at=row["finalized_at"],
        timeout_triggered=bool(row["timeout_triggered"]),
    )


def association_row(a: Association) -> dict[str, Any]:
    return {
        "essay_id": a.essay_id,
        "batch_id": a.batch_id,
        "class_id": a.class_id,
        "suggested_student_id": a.suggested_student_id,
        "confidence_score": a.confidence_score,
        "match_reasons": list(a.match_reasons),
        "student_id": a.student_id,
        "validation_status": a.validation_status.value,
        "validation_method": a.validation_method.value if a.validation_method else None,
        "validated_by": a.validated_by,
        "validated_at": a.validated_at,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "runner_up_confidence": a.runner_up_confidence,
    }


def association_from_row(row: Row) -> Association:
    method = row["validation_method"]
    return Association(
        essay_id=row["essay_id"],
        batch_id=row["batch_id"],
        class_id=row["class_id"],
        suggested_student_id=row["suggested_student_id"],
        confidence_score=row["confidence_score"],
        match_reasons=tuple(row["match_reasons"] or ()),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        student_id=row["student_id"],
        validation_status=ValidationStatus(row["validation_status"]),
        validation_method=ValidationMethod(method) if method is not None else None,
        validated_by=row["validated_by"],
        validated_at=row["validated_at"],
        runner_up_confidence=row["runner_up_confidence"],
    )


def outbox_row(m: OutboxMessage) -> dict[str, Any]:
    return {
        "event_id": m.event_id,
        "topic": m.topic,
        "key": m.key,
        "payload": m.payload,
        "headers": [list(pair) for pair in m.headers],
        "created_at": m.created_at,
        "next_attempt_at": m.created_at,
    }


# The columns of a bulk outbox insert, in the order of :func:`outbox_record`; the others have
# defaults (``seq``, ``attempts``) or start empty.
OUTBOX_RECORD_COLUMNS: tuple[str, ...] = (
    "event_id",
    "topic",
    "key",
    "payload",
    "headers",
    "created_at",
    "next_attempt_at",
)


def headers_json(headers: Sequence[tuple[str, str]]) -> str:
    """The headers as a JSON array of ``[name, value]`` pairs (``outbox_row``'s lists) in
    compact text; jsonb keeps no spacing. Built directly: ``json.dumps`` sets up an encoder
    per call, which costs more than the encoding."""
    pairs = ",".join([f"[{_json_str(k)},{_json_str(v)}]" for k, v in headers])
    return f"[{pairs}]"


def outbox_record(m: OutboxMessage) -> tuple[Any, ...]:
    """``outbox_row`` as a tuple in the order of :data:`OUTBOX_RECORD_COLUMNS`, with the headers as
    JSON text (what the driver takes for a jsonb column)."""
    return (
        m.event_id,
        m.topic,
        m.key,
        m.payload,
        headers_json(m.headers),
        m.created_at,
        m.created_at,
    )


def outbox_from_row(row: Row) -> StoredOutboxMessage:
    headers = row["headers"]
    if isinstance(headers, str):  # pragma: no cover - drivers decode JSON already
        headers = json.loads(headers)
    message = OutboxMessage(
        event_id=row["event_id"],
        topic=row["topic"],
        key=row["key"],
        payload=row["payload"],
        headers=tuple((str(k), str(v)) for k, v in headers),
        created_at=row["created_at"],
    )
    return StoredOutboxMessage(seq=row["seq"], message=message, attempts=row["attempts"])


def like_pattern(text: str) -> str:
    """``%text%`` with ``%``, ``_`` and the escape character ``/`` escaped (``LIKE … ESCAPE
    '/'``): what SQLAlchemy's ``contains(…, autoescape=True)`` binds, for a statement whose
    pattern is a plain parameter."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def page_window(statement: Select[Any], later_page: bool) -> Select[Any]:
    """``statement`` limited to ``:limit`` rows, from ``:offset`` on a later page only.

    PostgreSQL plans a prepared statement again at every call when it judges its generic
    plan dearer than the plans made for the values. With ``OFFSET $n`` the generic plan cannot
    know how many rows it skips, and on a table of 10⁶ students it lost, so a teacher's search
    was planned again at every call (182 against 113 µs per call, docs/performance.md). The
    first page, the one almost every request asks for, therefore has no ``OFFSET`` at all.
    That settled the benchmark's case, not every one: for an owner much smaller than the
    statistics' average the custom plans can still look cheaper (docs/performance.md)."""
    window = statement.limit(bindparam("limit"))
    return window.offset(bindparam("offset")) if later_page else window


def list_params(
    owner_id: str, limit: int, offset: int, values: Mapping[str, object]
) -> tuple[tuple[bool, ...], dict[str, Any]]:
    """A list statement's parameters — the owner, the window of :func:`page_window` (``offset``
    only past the first page) and each filter of ``values`` that is set (not ``None``) — and
    which filters are set, in ``values``' order: the key the statement is built and kept under."""
    params: dict[str, Any] = {"owner_id": owner_id, "limit": limit}
    if offset > 0:
        params["offset"] = offset
    params.update((name, value) for name, value in values.items() if value is not None)
    return tuple(value is not None for value in values.values()), params


def count_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`list_params`' parameters without the window: for the list's total alone."""
    return {name: value for name, value in params.items() if name not in ("limit", "offset")}
