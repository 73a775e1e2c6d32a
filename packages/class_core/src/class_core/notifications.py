"""Which teacher notifications a change produces (contract §5.4), from one table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from attrs import frozen

from class_core.events import TeacherNotification

if TYPE_CHECKING:  # the model builds its notifications here
    from class_core.model import SchoolClass, Student


@frozen
class NotificationKind:
    """What is fixed per notification type: category, priority, whether it asks for action."""

    category: str
    priority: str
    action_required: bool = False


KINDS: Mapping[str, NotificationKind] = MappingProxyType(
    {
        "class_created": NotificationKind("class_management", "standard"),
        "student_added_to_class": NotificationKind("class_management", "low"),
        "student_associations_suggested": NotificationKind("student_workflow", "high", True),
        "student_associations_confirmed": NotificationKind("student_workflow", "high"),
        "validation_timeout_processed": NotificationKind("student_workflow", "immediate"),
    }
)


def notification(
    notification_type: str,
    teacher_id: str,
    payload: dict[str, Any],
    *,
    class_id: UUID,
    batch_id: UUID | None = None,
    deadline: datetime | None = None,
    correlation_id: UUID,
    at: datetime,
) -> TeacherNotification:
    """A notification of a type of :data:`KINDS`; ``payload`` keys in the order published."""
    kind = KINDS[notification_type]
    return TeacherNotification(
        teacher_id=teacher_id,
        notification_type=notification_type,
        category=kind.category,
        priority=kind.priority,
        payload=payload,
        action_required=kind.action_required,
        deadline_timestamp=deadline,
        correlation_id=str(correlation_id),
        batch_id=batch_id,
        class_id=class_id,
        timestamp=at,
    )


def _batch_notification(
    notification_type: str,
    owner_id: str,
    batch_id: UUID,
    class_id: UUID,
    counts: dict[str, Any],
    correlation_id: UUID,
    at: datetime,
    deadline: datetime | None = None,
) -> TeacherNotification:
    """A batch's notification: ``batch_id`` and ``class_id`` first in the payload, then
    ``counts`` (its figures and message)."""
    payload = {"batch_id": str(batch_id), "class_id": str(class_id), **counts}
    return notification(
        notification_type,
        owner_id,
        payload,
        class_id=class_id,
        batch_id=batch_id,
        deadline=deadline,
        correlation_id=correlation_id,
        at=at,
    )


def class_created(cls: SchoolClass, correlation_id: UUID, at: datetime) -> TeacherNotification:
    payload = {
        "class_id": str(cls.id),
        "class_designation": cls.name,
        "course_codes": [cls.course_code],
        "message": f"Class '{cls.name}' was created",
    }
    return notification(
        "class_created",
        cls.owner_id,
        payload,
        class_id=cls.id,
        correlation_id=correlation_id,
        at=at,
    )


def student_added_to_class(
    student: Student, cls: SchoolClass, correlation_id: UUID, at: datetime
) -> TeacherNotification:
    payload = {
        "student_id": str(student.id),
        "student_name": student.outside_view().full_name,  # a pseudonym if protected (§10)
        "class_id": str(cls.id),
        "class_designation": cls.name,
        "message": f"A student was added to class '{cls.name}'",
    }
    return notification(
        "student_added_to_class",
        cls.owner_id,
        payload,
        class_id=cls.id,
        correlation_id=correlation_id,
        at=at,
    )


def associations_suggested(
    owner_id: str,
    batch_id: UUID,
    class_id: UUID,
    essay_count: int,
    suggested_count: int,
    deadline: datetime,
    correlation_id: UUID,
    at: datetime,
) -> TeacherNotification:
    counts = {
        "essay_count": essay_count,
        "suggested_count": suggested_count,
        "message": (
            f"Student matches for {essay_count} essays are ready for review; "
            "unconfirmed matches are settled automatically at the deadline"
        ),
    }
    return _batch_notification(
        "student_associations_suggested",
        owner_id,
        batch_id,
        class_id,
        counts,
        correlation_id,
        at,
        deadline,
    )


def associations_confirmed(
    owner_id: str,
    batch_id: UUID,
    class_id: UUID,
    confirmed_count: int,
    rejected_count: int,
    correlation_id: UUID,
    at: datetime,
) -> TeacherNotification:
    counts = {
        "confirmed_count": confirmed_count,
        "rejected_count": rejected_count,
        "message": "Student matches of the batch are confirmed",
    }
    return _batch_notification(
        "student_associations_confirmed", owner_id, batch_id, class_id, counts, correlation_id, at
    )


def validation_timeout_processed(
    owner_id: str,
    batch_id: UUID,
    class_id: UUID,
    auto_confirmed_count: int,
    unknown_assigned_count: int,
    timeout_hours: float,
    correlation_id: UUID,
    at: datetime,
) -> TeacherNotification:
    counts = {
        "auto_confirmed_count": auto_confirmed_count,
        "unknown_assigned_count": unknown_assigned_count,
        "timeout_hours": timeout_hours,
        "message": "Unconfirmed student matches were settled at the deadline",
    }
    return _batch_notification(
        "validation_timeout_processed", owner_id, batch_id, class_id, counts, correlation_id, at
    )
