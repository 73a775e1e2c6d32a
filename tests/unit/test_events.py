"""The §5.1 envelope, §5.2 event data and keys, §5.4 notifications."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters_sql.envelopes import ENVELOPES
from class_core import notifications
from class_core.events import (
    ASSOCIATIONS_CONFIRMED,
    CLASS_CREATED,
    CLASS_DELETED,
    CLASS_UPDATED,
    PUBLISHED_TOPICS,
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_ERASED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
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
    TeacherNotification,
    topic_and_key,
)
from class_core.model import SchoolClass, Student

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

AT = datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=UTC)
# Fixed ids: they appear in the parametrised test ids, which must be the same in every
# pytest-xdist worker's collection.
CID = UUID("c1d00000-0000-4000-8000-000000000001")
CLASS = UUID("c1a55000-0000-4000-8000-000000000002")
STUDENT = UUID("57d0e000-0000-4000-8000-000000000003")
BATCH = UUID("ba7c0000-0000-4000-8000-000000000004")
ESSAY = UUID("e55a0000-0000-4000-8000-000000000005")


def note() -> TeacherNotification:
    return notifications.class_created(SchoolClass(CLASS, "t-1", "9A", "ENG5", AT, AT), CID, AT)


EVENTS: list[tuple[DomainEvent, str, str, set[str]]] = [
    (
        ClassCreatedV1(CLASS, "9A", ("ENG5",), "t-1", CID, AT),
        CLASS_CREATED,
        str(CLASS),
        {"event", "class_id", "class_designation", "course_codes", "user_id", "external_id"},
    ),
    (
        ClassUpdatedV1(CLASS, None, None, "t-1", CID, AT),
        CLASS_UPDATED,
        str(CLASS),
        {
            "event",
            "class_id",
            "class_designation",
            "course_codes",
            "user_id",
            "external_id",
            "status",
        },
    ),
    (
        ClassDeletedV1(CLASS, "t-1", CID, AT),
        CLASS_DELETED,
        str(CLASS),
        {"event", "class_id", "user_id"},
    ),
    (
        StudentCreatedV1(STUDENT, "A", "B", None, (CLASS,), "t-1", CID, AT),
        STUDENT_CREATED,
        str(STUDENT),
        {
            "event",
            "student_id",
            "first_name",
            "last_name",
            "student_email",
            "class_ids",
            "created_by_user_id",
            "aliases",
            "external_id",
        },
    ),
    (
        StudentUpdatedV1(STUDENT, "A", "B", None, (CLASS,), None, "t-1", CID, AT),
        STUDENT_UPDATED,
        str(STUDENT),
        {
            "event",
            "student_id",
            "first_name",
            "last_name",
            "student_email",
            "add_class_ids",
            "remove_class_ids",
            "updated_by_user_id",
            "aliases",
            "external_id",
        },
    ),
    (
        StudentDeletedV1(STUDENT, (CLASS,), "t-1", CID, AT),
        STUDENT_DELETED,
        str(STUDENT),
        {"event", "student_id", "class_ids", "user_id"},
    ),
    (
        StudentErasedV1(STUDENT, (CLASS,), "t-1", CID, AT),
        STUDENT_ERASED,
        str(STUDENT),
        {"event", "student_id", "class_ids", "user_id"},
    ),
    (
        note(),
        TEACHER_NOTIFICATION,
        "t-1",
        {
            "teacher_id",
            "notification_type",
            "category",
            "priority",
            "payload",
            "action_required",
            "deadline_timestamp",
            "batch_id",
            "class_id",
        },
    ),
]


def envelope(event: DomainEvent, event_id: UUID | None = None) -> dict[str, Any]:
    msg = build_outbox_message(event, event_id=event_id or uuid4(), correlation_id=CID, at=AT)
    parsed: dict[str, Any] = json.loads(msg.payload)
    return parsed


@pytest.mark.parametrize(("event", "topic", "key", "fields"), EVENTS)
def test_envelope_topic_key_headers_and_data_fields(
    event: DomainEvent, topic: str, key: str, fields: set[str]
) -> None:
    event_id = uuid4()
    msg = build_outbox_message(event, event_id=event_id, correlation_id=CID, at=AT)
    assert (msg.topic, msg.key, msg.event_id, msg.created_at) == (topic, key, event_id, AT)
    assert dict(msg.headers) == {
        "event_id": str(event_id),
        "event_type": topic,
        "correlation_id": str(CID),
        "source_service": "class_management_service",
    }
    env = json.loads(msg.payload)
    assert env == {
        "event_id": str(event_id),
        "event_type": topic,
        "event_timestamp": "2026-11-27T10:15:00.123456+00:00",
        "source_service": "class_management_service",
        "schema_version": 1,
        "correlation_id": str(CID),
        "data_schema_uri": None,
        "data": env["data"],
        # Contract §8: class and student events carry the version after the change.
        "metadata": None if topic == TEACHER_NOTIFICATION else {"aggregate_version": 1},
    }
    assert set(env["data"]) == fields | {"correlation_id", "timestamp"}
    assert env["data"]["correlation_id"] == str(CID)
    assert env["data"]["timestamp"] == AT.isoformat()


def test_the_event_names_and_topics() -> None:
    names = {envelope(e)["data"].get("event") for e, *_ in EVENTS}
    assert names == {
        "class.created",
        "class.updated",
        "class.deleted",
        "student.created",
        "student.updated",
        "student.deleted",
        "student.erased",
        None,
    }
    assert set(PUBLISHED_TOPICS) == {t for _, t, _, _ in EVENTS} | {ASSOCIATIONS_CONFIRMED}
    assert all(t.startswith("huleedu.") and t.endswith(".v1") for t in PUBLISHED_TOPICS)


def test_id_lists_are_json_lists_of_strings() -> None:
    data = envelope(StudentCreatedV1(STUDENT, "A", "B", "a@b.se", (CLASS,), "t", CID, AT))["data"]
    assert data["class_ids"] == [str(CLASS)]
    assert data["student_email"] == "a@b.se"


def test_payload_is_utf8_text_not_ascii_escaped() -> None:
    msg = build_outbox_message(
        ClassCreatedV1(CLASS, "Åsa", ("SV1",), "t", CID, AT),
        event_id=uuid4(),
        correlation_id=CID,
        at=AT,
    )
    assert "Åsa" in msg.payload


def associations_event() -> StudentAssociationsConfirmedV1:
    return StudentAssociationsConfirmedV1(
        batch_id=BATCH,
        class_id=CLASS,
        course_code="ENG5",
        associations=(
            ConfirmedAssociation(ESSAY, STUDENT, 0.93, "human", "t-1", AT, STUDENT, 0.93),
            ConfirmedAssociation(uuid4(), None, 0.0, "human", "t-1", AT),
        ),
        timeout_triggered=False,
        validation_summary={"total_associations": 2, "confirmed": 1, "rejected": 1},
        timestamp=AT,
    )


def test_associations_confirmed_envelope_data_and_metadata() -> None:
    event_id = uuid4()
    msg = build_outbox_message(associations_event(), event_id=event_id, correlation_id=CID, at=AT)
    assert (msg.topic, msg.key) == (ASSOCIATIONS_CONFIRMED, str(BATCH))
    env = json.loads(msg.payload)
    assert env["metadata"] == {
        "batch_id": str(BATCH),
        "class_id": str(CLASS),
        "partition_key": str(BATCH),
    }
    data = env["data"]
    assert set(data) == {
        "event_name",
        "entity_id",
        "entity_type",
        "parent_id",
        "timestamp",
        "batch_id",
        "class_id",
        "course_code",
        "associations",
        "timeout_triggered",
        "validation_summary",
    }
    assert data["event_name"] == "student.associations.confirmed"
    assert (data["entity_id"], data["entity_type"], data["parent_id"]) == (None, None, None)
    assert data["associations"][0] == {
        "essay_id": str(ESSAY),
        "student_id": str(STUDENT),
        "confidence_score": 0.93,
        "validation_method": "human",
        "validated_by": "t-1",
        "validated_at": AT.isoformat(),
        "suggested_student_id": str(STUDENT),
        "suggested_confidence": 0.93,
    }
    assert data["associations"][1]["student_id"] is None
    assert data["associations"][1]["suggested_student_id"] is None
    assert data["associations"][1]["suggested_confidence"] is None
    assert isinstance(data["associations"][1]["confidence_score"], float)
    assert data["validation_summary"] == {"total_associations": 2, "confirmed": 1, "rejected": 1}
    assert data["timeout_triggered"] is False


def test_explicit_metadata_is_kept() -> None:
    msg = build_outbox_message(
        note(), event_id=uuid4(), correlation_id=CID, at=AT, metadata={"x": 1}
    )
    assert json.loads(msg.payload)["metadata"] == {"x": 1}


# ----------------------------------------------------------------------------- §5.4

SCHOOL_CLASS = SchoolClass(CLASS, "t-1", "9A", "ENG5", AT, AT)
A_STUDENT = Student(STUDENT, "t-1", "Ada", "Lovelace", None, None, AT, AT)
DEADLINE = AT + timedelta(hours=24)

NOTIFICATIONS: list[tuple[TeacherNotification, str, str, str, bool, set[str]]] = [
    (
        notifications.class_created(SCHOOL_CLASS, CID, AT),
        "class_created",
        "class_management",
        "standard",
        False,
        {"class_id", "class_designation", "course_codes"},
    ),
    (
        notifications.student_added_to_class(A_STUDENT, SCHOOL_CLASS, CID, AT),
        "student_added_to_class",
        "class_management",
        "low",
        False,
        {"student_id", "student_name", "class_id", "class_designation"},
    ),
    (
        notifications.associations_suggested("t-1", BATCH, CLASS, 3, 2, DEADLINE, CID, AT),
        "student_associations_suggested",
        "student_workflow",
        "high",
        True,
        {"batch_id", "class_id", "essay_count", "suggested_count"},
    ),
    (
        notifications.associations_confirmed("t-1", BATCH, CLASS, 2, 1, CID, AT),
        "student_associations_confirmed",
        "student_workflow",
        "high",
        False,
        {"batch_id", "class_id", "confirmed_count", "rejected_count"},
    ),
    (
        notifications.validation_timeout_processed("t-1", BATCH, CLASS, 2, 1, 24.0, CID, AT),
        "validation_timeout_processed",
        "student_workflow",
        "immediate",
        False,
        {"batch_id", "class_id", "auto_confirmed_count", "unknown_assigned_count", "timeout_hours"},
    ),
]


@pytest.mark.parametrize(("n", "kind", "category", "priority", "action", "keys"), NOTIFICATIONS)
def test_notification_types_categories_priorities_and_payload_keys(
    n: TeacherNotification,
    kind: str,
    category: str,
    priority: str,
    action: bool,
    keys: set[str],
) -> None:
    assert (n.notification_type, n.category, n.priority, n.action_required) == (
        kind,
        category,
        priority,
        action,
    )
    assert set(n.payload) == keys | {"message"}
    assert n.teacher_id == "t-1"
    assert n.correlation_id == str(CID)
    assert n.deadline_timestamp == (DEADLINE if action else None)

    message = n.realtime_message()
    assert set(message) == {"event", "data"}
    assert message["event"] == kind
    assert set(message["data"]) == keys | {
        "message",
        "category",
        "priority",
        "action_required",
        "deadline",
        "batch_id",
        "class_id",
        "correlation_id",
        "timestamp",
    }
    assert message["data"]["category"] == category
    assert message["data"]["class_id"] == str(CLASS)
    assert message["data"]["deadline"] == (DEADLINE.isoformat() if action else None)
    json.dumps(message)  # JSON-ready

    data = envelope(n)["data"]
    assert data["notification_type"] == kind
    assert data["deadline_timestamp"] == (DEADLINE.isoformat() if action else None)
    assert set(data["payload"]) == keys | {"message"}
    assert isinstance(data["correlation_id"], str)


def test_notification_payload_values() -> None:
    suggested = NOTIFICATIONS[2][0]
    assert suggested.payload["essay_count"] == 3
    assert suggested.payload["suggested_count"] == 2
    assert suggested.batch_id == BATCH
    timeout = NOTIFICATIONS[4][0]
    assert timeout.payload["timeout_hours"] == 24.0
    assert timeout.payload["auto_confirmed_count"] == 2
    assert timeout.payload["unknown_assigned_count"] == 1
    added = NOTIFICATIONS[1][0]
    assert added.payload["student_name"] == "Ada Lovelace"
    assert added.payload["class_designation"] == "9A"


# ----------------------------------------------------------------------------- fast paths


def _reference_json(value: Any) -> Any:
    """The plain conversion the envelope is defined by (no fast paths, no memory)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _reference_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_reference_json(v) for v in value]
    if attrs.has(type(value)):
        return {f.name: _reference_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


def _reference_payload(
    event: DomainEvent, event_id: UUID, cid: UUID, at: datetime, metadata: Any
) -> str:
    data = _reference_json(event)
    version = data.pop("aggregate_version", None)  # contract §8: metadata, not data
    if metadata is None and isinstance(event, StudentAssociationsConfirmedV1):
        metadata = {"batch_id": str(BATCH), "class_id": str(CLASS), "partition_key": str(BATCH)}
    elif metadata is None and version is not None:
        metadata = {"aggregate_version": version}
    return json.dumps(
        {
            "event_id": str(event_id),
            "event_type": topic_and_key(event)[0],
            "event_timestamp": at.isoformat(),
            "source_service": "class_management_service",
            "schema_version": 1,
            "correlation_id": str(cid),
            "data_schema_uri": None,
            "data": data,
            "metadata": _reference_json(metadata),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


ALL_EVENTS = [e for e, *_ in EVENTS] + [associations_event()]


@pytest.mark.parametrize("event", ALL_EVENTS)
@pytest.mark.parametrize("same_context", [True, False])
@pytest.mark.parametrize("metadata", [None, {"partition_key": "k", "n": 1, "ä": ["ö", None]}])
def test_the_payload_is_exactly_the_json_of_the_envelope(
    event: DomainEvent, same_context: bool, metadata: dict[str, Any] | None
) -> None:
    # The event's own correlation id and time may or may not be the envelope's.
    cid, at = (CID, AT) if same_context else (uuid4(), AT + timedelta(seconds=1))
    event_id = uuid4()
    msg = build_outbox_message(
        event, event_id=event_id, correlation_id=cid, at=at, metadata=metadata
    )
    assert msg.payload == _reference_payload(event, event_id, cid, at, metadata)
    assert (msg.topic, msg.key) == topic_and_key(event)
    assert dict(msg.headers)["correlation_id"] == str(cid)


def test_many_distinct_ids_render_correctly() -> None:
    # More ids than the rendering memory holds: each one still renders as itself.
    ids = [uuid4() for _ in range(10_000)]
    for student_id in ids + ids[:100]:
        event = StudentCreatedV1(student_id, "A", "B", None, (CLASS,), "t", CID, AT)
        msg = build_outbox_message(event, event_id=student_id, correlation_id=CID, at=AT)
        data = json.loads(msg.payload)["data"]
        assert (msg.key, data["student_id"], data["class_ids"]) == (
            str(student_id),
            str(student_id),
            [str(CLASS)],
        )


_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    first=_TEXT,
    last=_TEXT,
    email=st.none() | _TEXT,
    teacher=_TEXT,
    classes=st.lists(st.uuids(), max_size=3),
    at=st.datetimes(timezones=st.just(UTC)),
    stamp_is_envelope_time=st.booleans(),
)
def test_any_text_renders_exactly_as_json_dumps(
    first: str,
    last: str,
    email: str | None,
    teacher: str,
    classes: list[UUID],
    at: datetime,
    stamp_is_envelope_time: bool,
) -> None:
    # Quotes, backslashes, control characters, non-ASCII and lone surrogates alike.
    event = StudentCreatedV1(uuid4(), first, last, email, tuple(classes), teacher, CID, at)
    envelope_at = at if stamp_is_envelope_time else AT
    event_id = uuid4()
    msg = build_outbox_message(event, event_id=event_id, correlation_id=CID, at=envelope_at)
    assert msg.payload == _reference_payload(event, event_id, CID, envelope_at, None)
    updated = StudentUpdatedV1(
        uuid4(), first, None, email, tuple(classes) or None, (), teacher, CID, at
    )
    msg = build_outbox_message(updated, event_id=event_id, correlation_id=CID, at=envelope_at)
    assert msg.payload == _reference_payload(updated, event_id, CID, envelope_at, None)


_ITEM = st.builds(
    ConfirmedAssociation,
    essay_id=st.uuids(),
    student_id=st.none() | st.uuids(),
    confidence_score=st.floats(allow_nan=True, allow_infinity=True),
    validation_method=st.sampled_from([None, "human", "timeout"]),
    validated_by=st.none() | _TEXT,
    validated_at=st.none() | st.datetimes(timezones=st.just(UTC)),
)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(_ITEM, max_size=5),
    course=_TEXT,
    timeout=st.booleans(),
    summary=st.dictionaries(_TEXT, st.integers(), max_size=3),
)
def test_any_associations_event_renders_exactly_as_json_dumps(
    items: list[ConfirmedAssociation], course: str, timeout: bool, summary: dict[str, int]
) -> None:
    event = StudentAssociationsConfirmedV1(BATCH, CLASS, course, tuple(items), timeout, summary, AT)
    event_id = uuid4()
    msg = build_outbox_message(event, event_id=event_id, correlation_id=CID, at=AT)
    assert msg.payload == _reference_payload(event, event_id, CID, AT, None)
    assert (msg.topic, msg.key) == topic_and_key(event)


def test_a_subclass_of_an_event_type_routes_as_its_base() -> None:
    @attrs.frozen
    class Extended(StudentCreatedV1):
        pass

    event = Extended(STUDENT, "A", "B", None, (), "t", CID, AT)
    assert topic_and_key(event) == (STUDENT_CREATED, str(STUDENT))
    with pytest.raises(TypeError, match="not a domain event"):
        topic_and_key(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(("event", "topic"), [(e[0], e[1]) for e in EVENTS[:6]])
def test_aggregate_version_goes_into_metadata_not_data(event: DomainEvent, topic: str) -> None:
    versioned: Any = attrs.evolve(event, aggregate_version=7)  # type: ignore[arg-type]
    env = envelope(versioned)
    assert env["event_type"] == topic
    assert env["metadata"] == {"aggregate_version": 7}
    assert "aggregate_version" not in env["data"]


_META_VALUE = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
    | st.uuids()
    | st.lists(st.integers() | _TEXT, max_size=3)
)


@settings(max_examples=200, deadline=None)
@given(metadata=st.dictionaries(_TEXT, _META_VALUE, max_size=4), version=st.integers(1, 2**40))
def test_any_metadata_renders_exactly_as_json_dumps(metadata: dict[str, Any], version: int) -> None:
    # The metadata is rendered field by field (ints, bools, text, ids, lists), not by the
    # encoder: the text must still be json.dumps's, for a caller's mapping and an event's own.
    event = StudentCreatedV1(
        uuid4(), "Eva", "Berg", None, (), "t", CID, AT, aggregate_version=version
    )
    event_id = uuid4()
    msg = build_outbox_message(
        event, event_id=event_id, correlation_id=CID, at=AT, metadata=metadata
    )
    assert msg.payload == _reference_payload(event, event_id, CID, AT, metadata)
    own = build_outbox_message(event, event_id=event_id, correlation_id=CID, at=AT)
    assert json.loads(own.payload)["metadata"] == {"aggregate_version": version}
    assert own.payload == _reference_payload(event, event_id, CID, AT, None)
