"""Fixed events of every type, rendered to the golden envelopes in
``data/golden_envelopes.json`` (captured from the renderer class_core held before issue 13
moved it to ``adapters_sql.envelopes``; see tests/unit/test_envelope_golden.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from class_core import notifications
from class_core.events import (
    ClassCreatedV1,
    ClassDeletedV1,
    ClassUpdatedV1,
    ConfirmedAssociation,
    DomainEvent,
    StudentAssociationsConfirmedV1,
    StudentCreatedV1,
    StudentDeletedV1,
    StudentErasedV1,
    StudentUpdatedV1,
)
from class_core.model import SchoolClass, Student

AT = datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=UTC)
LATER = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
CID = UUID("c1d00000-0000-4000-8000-000000000001")
CLASS = UUID("c1a55000-0000-4000-8000-000000000002")
OTHER_CLASS = UUID("c1a55000-0000-4000-8000-0000000000ff")
STUDENT = UUID("57d0e000-0000-4000-8000-000000000003")
BATCH = UUID("ba7c0000-0000-4000-8000-000000000004")
ESSAY = UUID("e55a0000-0000-4000-8000-000000000005")
ESSAY2 = UUID("e55a0000-0000-4000-8000-000000000006")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

# A name with quotes, a backslash, a control character and non-ASCII text.
AWKWARD = 'Åsa "Bo" \\ Ö\u0007 \u00e9\u0301 日本'

SCHOOL_CLASS = SchoolClass(CLASS, "t-1", '9A "Ä"', "ENG5", AT, AT)
A_STUDENT = Student(STUDENT, "t-1", AWKWARD, "Lovelace", None, "a@b.se", AT, AT, version=3)


def cases() -> list[tuple[str, DomainEvent, dict[str, Any]]]:
    """(name, event, the envelope's keyword arguments besides the event id)."""
    plain: dict[str, Any] = {"correlation_id": CID, "at": AT}
    other = {"correlation_id": UUID("c1d00000-0000-4000-8000-0000000000aa"), "at": LATER}
    return [
        ("class_created", ClassCreatedV1.of(SCHOOL_CLASS, "t-1", CID, AT), plain),
        (
            "class_created_external_id",
            ClassCreatedV1(
                CLASS, "9B", ("SV1",), "t-2", CID, AT, aggregate_version=4, external_id="ext-ä-1"
            ),
            other,
        ),
        (
            "class_updated",
            ClassUpdatedV1.of(SCHOOL_CLASS, "9C", "ENG6", "t-1", CID, LATER),
            plain,
        ),
        ("class_updated_nothing", ClassUpdatedV1(CLASS, None, None, "t-1", CID, AT), plain),
        ("class_deleted", ClassDeletedV1(CLASS, "t-1", CID, AT, aggregate_version=9), plain),
        (
            "student_created",
            StudentCreatedV1.of(A_STUDENT, (CLASS, OTHER_CLASS), "t-1", CID, AT),
            plain,
        ),
        (
            "student_created_aliases",
            StudentCreatedV1(
                STUDENT, "A", "B", None, (), "t-1", CID, AT, aliases=("Bee", "Ö"), external_id='x"1'
            ),
            other,
        ),
        (
            "student_updated",
            StudentUpdatedV1.of(A_STUDENT, [CLASS], [OTHER_CLASS], "t-1", CID, AT),
            plain,
        ),
        (
            "student_updated_nothing",
            StudentUpdatedV1(STUDENT, None, None, None, None, None, "t-1", CID, AT),
            plain,
        ),
        ("student_deleted", StudentDeletedV1(STUDENT, (CLASS,), "t-1", CID, AT), plain),
        ("student_erased", StudentErasedV1(STUDENT, (), "t-1", CID, AT), plain),
        (
            "associations_confirmed",
            StudentAssociationsConfirmedV1(
                batch_id=BATCH,
                class_id=CLASS,
                course_code="ENG5",
                associations=(
                    ConfirmedAssociation(ESSAY, STUDENT, 0.93, "human", "t-1", AT, STUDENT, 0.9),
                    ConfirmedAssociation(ESSAY2, None, 0.0, "timeout", None, None),
                    ConfirmedAssociation(ESSAY2, None, 1e-7, None, AWKWARD, LATER, None, 1.0),
                ),
                timeout_triggered=True,
                validation_summary={"total_associations": 3, "confirmed": 1, "rejected": 2},
                timestamp=AT,
            ),
            plain,
        ),
        (
            "associations_confirmed_metadata",
            StudentAssociationsConfirmedV1(BATCH, CLASS, "SV1", (), False, {}, LATER),
            {**plain, "metadata": {"partition_key": "k", "n": 1, "ä": ["ö", None]}},
        ),
        ("note_class_created", notifications.class_created(SCHOOL_CLASS, CID, AT), plain),
        (
            "note_student_added",
            notifications.student_added_to_class(A_STUDENT, SCHOOL_CLASS, CID, AT),
            plain,
        ),
        (
            "note_suggested",
            notifications.associations_suggested(
                "t-1", BATCH, CLASS, 12, 10, AT + timedelta(hours=72), CID, AT
            ),
            plain,
        ),
        (
            "note_confirmed",
            notifications.associations_confirmed("t-1", BATCH, CLASS, 9, 3, CID, AT),
            {**plain, "metadata": {"x": 1}},
        ),
        (
            "note_timeout",
            notifications.validation_timeout_processed("t-1", BATCH, CLASS, 4, 2, 72.5, CID, AT),
            other,
        ),
    ]


def event_id(index: int) -> UUID:
    return UUID(int=0xE0E0_0000_0000_4000_8000_0000_0000_0000 + index)
