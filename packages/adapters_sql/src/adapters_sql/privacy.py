"""Where students' personal data lives in the schema, and erasure's clean-up of its copies
(contract §10).

Every text-holding column of every table is registered here, either as *personal* (with
the step of erasure that clears it) or as *safe* (with the reason it never holds a student's
personal data). ``tests/integration/test_privacy_registry.py`` fails when a table of the
migrated schema holds a text column registered as neither, so a new table or a new copy of a
name cannot escape erasure silently: whoever adds it must say which it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from uuid import UUID

from sqlalchemy import bindparam, delete, or_, select, update

from adapters_sql.envelopes import ENVELOPES
from adapters_sql.schema import essay_associations, import_items, outbox
from adapters_sql.transaction import SqlTransaction
from class_core.privacy import scrub_reasons


class Erasure(StrEnum):
    """How erasure clears a personal column."""

    STUDENT_ROW = "student_row"  # the student's own row is rewritten (``Student.erase``)
    SUGGESTION_REASONS = "suggestion_reasons"  # reasons naming the student are dropped
    OUTBOX = "outbox"  # published rows deleted, unpublished ones rewritten (same event id)
    IMPORT_HISTORY = "import_history"  # the student's before-images in import items cleared


PERSONAL: Mapping[tuple[str, str], Erasure] = MappingProxyType(
    {
        ("cms_students", "first_name"): Erasure.STUDENT_ROW,
        ("cms_students", "last_name"): Erasure.STUDENT_ROW,
        ("cms_students", "legal_full_name"): Erasure.STUDENT_ROW,
        ("cms_students", "email"): Erasure.STUDENT_ROW,
        ("cms_students", "search_key"): Erasure.STUDENT_ROW,
        ("cms_students", "aliases"): Erasure.STUDENT_ROW,
        ("cms_students", "external_id"): Erasure.STUDENT_ROW,
        ("cms_essay_associations", "match_reasons"): Erasure.SUGGESTION_REASONS,
        ("cms_outbox", "payload"): Erasure.OUTBOX,
        ("cms_import_items", "before_first_name"): Erasure.IMPORT_HISTORY,
        ("cms_import_items", "before_last_name"): Erasure.IMPORT_HISTORY,
        ("cms_import_items", "before_legal_full_name"): Erasure.IMPORT_HISTORY,
        ("cms_import_items", "before_email"): Erasure.IMPORT_HISTORY,
        ("cms_import_items", "before_aliases"): Erasure.IMPORT_HISTORY,
    }
)

_TEACHER = "a teacher's user id (X-User-ID), not a student's data"
SAFE: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("cms_alembic_version", "version_num"): "migration revision",
        ("cms_courses", "code"): "reference data",
        ("cms_courses", "name"): "reference data",
        ("cms_courses", "language"): "reference data",
        ("cms_classes", "owner_id"): _TEACHER,
        ("cms_classes", "name"): "a class's name, chosen by the teacher",
        ("cms_classes", "course_code"): "reference data",
        ("cms_classes", "search_key"): "the class name, folded",
        ("cms_classes", "external_id"): "a class's id in the school's system, not a person's",
        ("cms_classes", "status"): "an enumeration",
        ("cms_students", "owner_id"): _TEACHER,
        ("cms_batches", "owner_id"): _TEACHER,
        ("cms_batches", "course_code"): "reference data",
        ("cms_batches", "status"): "an enumeration",
        ("cms_essay_associations", "validation_status"): "an enumeration",
        ("cms_essay_associations", "validation_method"): "an enumeration",
        ("cms_essay_associations", "validated_by"): f"{_TEACHER}, or SYSTEM_TIMEOUT",
        ("cms_outbox", "topic"): "a topic name",
        ("cms_outbox", "key"): "an id (class, student, batch) or a teacher's user id",
        ("cms_outbox", "headers"): "event id, type, correlation id, source service, trace",
        ("cms_outbox", "last_error"): "the broker's error for an event, never its payload",
        ("cms_inbox", "consumer"): "a consumer name",
        ("cms_inbox", "message_id"): "an event id",
        ("cms_student_history", "owner_id"): _TEACHER,
        ("cms_student_history", "action"): "an enumeration",
        ("cms_student_history", "actor"): f"{_TEACHER}, SYSTEM_TIMEOUT or import:<id>",
        ("cms_imports", "owner_id"): _TEACHER,
        ("cms_imports", "source"): "an enumeration (http, cli)",
        ("cms_import_items", "action"): "an enumeration",
        ("cms_changes", "entity"): "an enumeration",
        ("cms_changes", "op"): "an enumeration",
        ("cms_changes", "owner_id"): _TEACHER,
        ("cms_change_feed_key", "secret"): "the key change-feed cursors are signed with",
    }
)

_a = essay_associations
_NAMING_STUDENT = select(_a.c.essay_id, _a.c.match_reasons).where(
    or_(
        _a.c.student_id == bindparam("student_id"),
        _a.c.suggested_student_id == bindparam("student_id"),
    )
)
_SET_REASONS = (
    update(_a)
    .where(_a.c.essay_id == bindparam("v_essay_id"))
    .values(match_reasons=bindparam("v_reasons"))
)
_FORGET_BEFORE = (
    update(import_items)
    # Only an item with a before-image holds personal data (and only those are indexed by
    # student: ``ix_cms_import_items_before_student``, the same predicate).
    .where(import_items.c.student_id == bindparam("v_student_id"), import_items.c.has_before)
    .values(
        before_first_name=None,
        before_last_name=None,
        before_legal_full_name=None,
        before_email=None,
        before_aliases=None,
        before_protected_identity=None,
    )
)
_DELETE_OUTBOX = delete(outbox).where(outbox.c.seq == bindparam("v_seq"))
_REWRITE_OUTBOX = (
    update(outbox).where(outbox.c.seq == bindparam("v_seq")).values(payload=bindparam("v_payload"))
)


class SqlPersonalData:
    """``PersonalData`` on SQL: the steps of :class:`Erasure` outside the student row."""

    HANDLES: frozenset[Erasure] = frozenset(
        {Erasure.STUDENT_ROW, Erasure.SUGGESTION_REASONS, Erasure.OUTBOX, Erasure.IMPORT_HISTORY}
    )

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def forget(self, student_id: UUID, former: Sequence[str]) -> None:
        # Erasure.STUDENT_ROW is the use case's ``students.update`` of the erased student.
        await self._suggestion_reasons(student_id, former)
        await self._tx.execute(_FORGET_BEFORE, {"v_student_id": student_id})
        await self._outbox(student_id, former)

    async def _suggestion_reasons(self, student_id: UUID, former: Sequence[str]) -> None:
        result = await self._tx.execute(_NAMING_STUDENT, {"student_id": student_id})
        changed: list[dict[str, object]] = []
        for row in result.mappings():
            reasons = list(row["match_reasons"] or ())
            kept = list(scrub_reasons(reasons, former))
            if kept != reasons:
                changed.append({"v_essay_id": row["essay_id"], "v_reasons": kept})
        if changed:
            await self._tx.execute(_SET_REASONS, changed)

    async def _outbox(self, student_id: UUID, former: Sequence[str]) -> None:
        # Every envelope that concerns the student names its id (key or data).
        mentioning = select(outbox.c.seq, outbox.c.payload, outbox.c.published_at).where(
            outbox.c.payload.contains(str(student_id), autoescape=True)
        )
        deleted: list[dict[str, object]] = []
        rewritten: list[dict[str, object]] = []
        for row in (await self._tx.execute(mentioning)).mappings():
            scrubbed = ENVELOPES.erase(row["payload"], student_id, former)
            if scrubbed is None:
                continue
            if row["published_at"] is not None:
                deleted.append({"v_seq": row["seq"]})
            else:
                rewritten.append({"v_seq": row["seq"], "v_payload": scrubbed})
        if deleted:
            await self._tx.execute(_DELETE_OUTBOX, deleted)
        if rewritten:
            await self._tx.execute(_REWRITE_OUTBOX, rewritten)
