"""Events of contract §5.2 and what their §5.1 envelope carries, as plain data.

The core decides *which* events a change produces and what they say: the event classes, their
topic and partition key, the fields of their ``data`` and their envelope's ``metadata``. It
holds no JSON: the outbox adapter renders the envelope text (``EnvelopeRenderer``, in
``adapters_sql.envelopes``) once, when the unit of work commits, so that the event id and
bytes never change across relay retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID

import attrs
from attrs import frozen

if TYPE_CHECKING:  # the builders read these; the model records the events they build
    from class_core.model import SchoolClass, Student

SOURCE_SERVICE = "class_management_service"

SCHEMA_VERSION = 1

CLASS_CREATED = "huleedu.class.created.v1"
CLASS_UPDATED = "huleedu.class.updated.v1"
CLASS_DELETED = "huleedu.class.deleted.v1"
STUDENT_CREATED = "huleedu.class.student.created.v1"
STUDENT_UPDATED = "huleedu.class.student.updated.v1"
STUDENT_DELETED = "huleedu.class.student.deleted.v1"
STUDENT_ERASED = "huleedu.class.student.erased.v1"
ASSOCIATIONS_CONFIRMED = "huleedu.class.student.associations.confirmed.v1"
TEACHER_NOTIFICATION = "huleedu.notification.teacher.requested.v1"
SUGGESTIONS_TOPIC = "huleedu.batch.author.matches.suggested.v1"
SUGGESTIONS_EVENT_TYPES = frozenset({SUGGESTIONS_TOPIC, "batch.author.matches.suggested"})

PUBLISHED_TOPICS: tuple[str, ...] = (
    CLASS_CREATED,
    CLASS_UPDATED,
    CLASS_DELETED,
    STUDENT_CREATED,
    STUDENT_UPDATED,
    STUDENT_DELETED,
    STUDENT_ERASED,
    ASSOCIATIONS_CONFIRMED,
    TEACHER_NOTIFICATION,
)


# Exact types that are plain already (a StrEnum member's type is its enum: it is converted).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def plain_value(value: Any) -> Any:
    """Plain data (what JSON can carry): UUIDs and enums as strings, datetimes as ISO 8601
    with offset, mappings as dictionaries with text keys, sequences as lists."""
    kind = type(value)
    if kind in _PLAIN_TYPES:  # most values; skips the isinstance chain (Mapping is slow)
        return value
    if kind is UUID:
        return str(value)
    if kind is tuple:
        return [plain_value(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [plain_value(v) for v in value]
    return value


# Marks a field that goes into the envelope's ``metadata``, not into ``data``.
_IN_METADATA = "in_metadata"


def _aggregate_version() -> Any:
    """Contract §8: the version of the class or student after the change, carried in the
    envelope's ``metadata`` as ``aggregate_version`` (not in ``data``)."""
    return attrs.field(default=1, kw_only=True, metadata={_IN_METADATA: True})


def data_field_names(cls: type) -> tuple[str, ...]:
    """The fields of an attrs event class (or item of one) that its envelope's ``data``
    carries, in order; fields that belong in the envelope's ``metadata`` are left out."""
    return tuple(f.name for f in attrs.fields(cls) if not f.metadata.get(_IN_METADATA))


@frozen
class ClassCreatedV1:
    class_id: UUID
    class_designation: str
    course_codes: tuple[str, ...]
    user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "class.created"
    aggregate_version: int = _aggregate_version()
    external_id: str | None = None  # added in v2 (§9.1): the current value

    @classmethod
    def of(
        cls, created: SchoolClass, by: str, correlation_id: UUID, at: datetime
    ) -> ClassCreatedV1:
        """The event for a new class (the API's create and a roster import alike)."""
        return cls(
            created.id,
            created.name,
            (created.course_code,),
            by,
            correlation_id,
            at,
            aggregate_version=created.version,
            external_id=created.external_id,
        )


@frozen
class ClassUpdatedV1:
    class_id: UUID
    class_designation: str | None
    course_codes: tuple[str, ...] | None
    user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "class.updated"
    aggregate_version: int = _aggregate_version()
    external_id: str | None = None  # added in v2 (§9.1): the current value
    status: str = "active"  # added in v2 (§9.2): the current value

    @classmethod
    def of(
        cls,
        changed: SchoolClass,
        new_name: str | None,
        new_course: str | None,
        by: str,
        correlation_id: UUID,
        at: datetime,
    ) -> ClassUpdatedV1:
        """The event for a changed class: the name and course when they changed (``None``
        otherwise), the current external id and status always."""
        return cls(
            changed.id,
            new_name,
            (new_course,) if new_course is not None else None,
            by,
            correlation_id,
            at,
            aggregate_version=changed.version,
            external_id=changed.external_id,
            status=changed.status.value,
        )


@frozen
class ClassDeletedV1:
    class_id: UUID
    user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "class.deleted"
    aggregate_version: int = _aggregate_version()


@frozen
class StudentCreatedV1:
    student_id: UUID
    first_name: str
    last_name: str
    student_email: str | None
    class_ids: tuple[UUID, ...]
    created_by_user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "student.created"
    aggregate_version: int = _aggregate_version()
    aliases: tuple[str, ...] = ()  # added in v2 (§11): the current list
    external_id: str | None = None  # added in v2 (§9.1): the current value

    @classmethod
    def of(
        cls,
        student: Student,
        class_ids: tuple[UUID, ...],
        by: str,
        correlation_id: UUID,
        at: datetime,
    ) -> StudentCreatedV1:
        """The event for a new student, joining ``class_ids`` (in the order given); a
        protected identity is carried as its pseudonym (§10)."""
        student = student.outside_view()
        return cls(
            student.id,
            student.first_name,
            student.last_name,
            student.email,
            class_ids,
            by,
            correlation_id,
            at,
            aggregate_version=student.version,
            aliases=student.aliases,
            external_id=student.external_id,
        )


@frozen
class StudentUpdatedV1:
    student_id: UUID
    first_name: str | None
    last_name: str | None
    student_email: str | None
    add_class_ids: tuple[UUID, ...] | None
    remove_class_ids: tuple[UUID, ...] | None
    updated_by_user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "student.updated"
    aggregate_version: int = _aggregate_version()
    aliases: tuple[str, ...] = ()  # added in v2 (§11): the current list
    external_id: str | None = None  # added in v2 (§9.1): the current value

    @classmethod
    def of(
        cls,
        student: Student,
        added: Sequence[UUID],
        removed: Sequence[UUID],
        by: str,
        correlation_id: UUID,
        at: datetime,
    ) -> StudentUpdatedV1:
        """The event for a changed student (as it is now), with the memberships it gained and
        lost (``None`` for none); a protected identity is carried as its pseudonym (§10)."""
        student = student.outside_view()
        return cls(
            student.id,
            student.first_name,
            student.last_name,
            student.email,
            tuple(added) or None,
            tuple(removed) or None,
            by,
            correlation_id,
            at,
            aggregate_version=student.version,
            aliases=student.aliases,
            external_id=student.external_id,
        )


@frozen
class StudentDeletedV1:
    student_id: UUID
    class_ids: tuple[UUID, ...]
    user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "student.deleted"
    aggregate_version: int = _aggregate_version()


@frozen
class StudentErasedV1:
    """A student was erased (§10): consumers drop what they hold about them."""

    student_id: UUID
    class_ids: tuple[UUID, ...]
    user_id: str
    correlation_id: UUID
    timestamp: datetime
    event: str = "student.erased"
    aggregate_version: int = _aggregate_version()


@frozen
class ConfirmedAssociation:
    essay_id: UUID
    student_id: UUID | None
    confidence_score: float
    validation_method: str | None
    validated_by: str | None
    validated_at: datetime | None
    # The learning signal (contract §11): what was suggested, ``None`` when nothing was.
    suggested_student_id: UUID | None = None
    suggested_confidence: float | None = None


@frozen
class StudentAssociationsConfirmedV1:
    batch_id: UUID
    class_id: UUID
    course_code: str
    associations: tuple[ConfirmedAssociation, ...]
    timeout_triggered: bool
    validation_summary: Mapping[str, int]
    timestamp: datetime
    event_name: str = "student.associations.confirmed"
    entity_id: None = None
    entity_type: None = None
    parent_id: None = None


@frozen
class TeacherNotification:
    """TeacherNotificationRequestedV1; also pushed to Redis ``ws:{teacher_id}`` after commit."""

    teacher_id: str
    notification_type: str
    category: str
    priority: str
    payload: Mapping[str, Any]
    action_required: bool
    deadline_timestamp: datetime | None
    correlation_id: str
    batch_id: UUID | None
    class_id: UUID | None
    timestamp: datetime

    def realtime_message(self) -> dict[str, Any]:
        """The §5.4 Redis message: ``{"event": type, "data": {...}}``."""
        data = dict(plain_value(self.payload))
        data.update(
            category=self.category,
            priority=self.priority,
            action_required=self.action_required,
            deadline=plain_value(self.deadline_timestamp),
            batch_id=plain_value(self.batch_id),
            class_id=plain_value(self.class_id),
            correlation_id=self.correlation_id,
            timestamp=plain_value(self.timestamp),
        )
        return {"event": self.notification_type, "data": data}


DomainEvent = (
    ClassCreatedV1
    | ClassUpdatedV1
    | ClassDeletedV1
    | StudentCreatedV1
    | StudentUpdatedV1
    | StudentDeletedV1
    | StudentErasedV1
    | StudentAssociationsConfirmedV1
    | TeacherNotification
)


# Events of one class or student: their envelope's metadata carries ``aggregate_version``.
_VERSIONED = (
    ClassCreatedV1,
    ClassUpdatedV1,
    ClassDeletedV1,
    StudentCreatedV1,
    StudentUpdatedV1,
    StudentDeletedV1,
    StudentErasedV1,
)


# Event class → its topic and the data field that is its partition key (§5.2). A constant.
_ROUTES: Mapping[type, tuple[str, str]] = MappingProxyType(
    {
        ClassCreatedV1: (CLASS_CREATED, "class_id"),
        ClassUpdatedV1: (CLASS_UPDATED, "class_id"),
        ClassDeletedV1: (CLASS_DELETED, "class_id"),
        StudentCreatedV1: (STUDENT_CREATED, "student_id"),
        StudentUpdatedV1: (STUDENT_UPDATED, "student_id"),
        StudentDeletedV1: (STUDENT_DELETED, "student_id"),
        StudentErasedV1: (STUDENT_ERASED, "student_id"),
        StudentAssociationsConfirmedV1: (ASSOCIATIONS_CONFIRMED, "batch_id"),
        TeacherNotification: (TEACHER_NOTIFICATION, "teacher_id"),
    }
)
# Every event class (an ``EnvelopeRenderer`` may work out their shapes once).
EVENT_TYPES: tuple[type, ...] = tuple(_ROUTES)


def topic_and_key(event: DomainEvent) -> tuple[str, str]:
    """The §5.2 topic and partition key (as text) of an event."""
    route = _ROUTES.get(type(event))
    if route is None:  # an instance of a subclass of an event type
        found = next((_ROUTES[c] for c in type(event).__mro__ if c in _ROUTES), None)
        if found is None:
            raise TypeError(f"not a domain event: {type(event).__name__}")
        route = found
    topic, key_field = route
    return topic, str(getattr(event, key_field))


@frozen
class OutboxMessage:
    """One event as the outbox stores it: id, topic, key, headers and the envelope's text,
    rendered by an ``EnvelopeRenderer`` (the outbox adapter's wire format)."""

    event_id: UUID
    topic: str
    key: str
    payload: str
    headers: tuple[tuple[str, str], ...]
    created_at: datetime


def envelope_metadata(event: DomainEvent) -> dict[str, Any] | None:
    """The §5.1 envelope's ``metadata`` of an event: the version after the change for a class
    or student event (§8), the batch, class and partition key for confirmed associations
    (§5.2), nothing for a notification."""
    if isinstance(event, StudentAssociationsConfirmedV1):
        batch_id = str(event.batch_id)
        return {"batch_id": batch_id, "class_id": str(event.class_id), "partition_key": batch_id}
    if isinstance(event, _VERSIONED):
        return {"aggregate_version": event.aggregate_version}
    return None


def notifications_of(events: Sequence[DomainEvent]) -> list[TeacherNotification]:
    """The teacher notifications among ``events`` (pushed to Redis after the commit)."""
    return [e for e in events if isinstance(e, TeacherNotification)]
