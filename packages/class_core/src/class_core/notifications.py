"""Which teacher notifications a change produces (contract §5.4)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from class_core.events import TeacherNotification
from class_core.model import SchoolClass, Student


def class_created(cls: SchoolClass, correlation_id: UUID, at: datetime) -> TeacherNotification:
    return TeacherNotification(
        teacher_id=cls.owner_id,
        notification_type="class_created",
        category="class_management",
        priority="standard",
        payload={
            "class_id": str(cls.id),
            "class_designation": cls.name,
            "course_codes": [cls.course_code],
            "message": f"Class '{cls.name}' was created",
        },
        action_required=False,
        deadline_timestamp=None,
        correlation_id=str(correlation_id),
        batch_id=None,
        class_id=cls.id,
        timestamp=at,
    )


def student_added_to_class(
    student: Student, cls: SchoolClass, correlation_id: UUID, at: datetime
) -> TeacherNotification:
    return TeacherNotification(
        teacher_id=cls.owner_id,
        notification_type="student_added_to_class",
        category="class_management",
        priority="low",
        payload={
            "student_id": str(student.id),
            "student_name": student.full_name,
            "class_id": str(cls.id),
            "class_designation": cls.name,
            "message": f"A student was added to class '{cls.name}'",
        },
        action_required=False,
        deadline_timestamp=None,
        correlation_id=str(correlation_id),
        batch_id=None,
        class_id=cls.id,
        timestamp=at,
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
    return TeacherNotification(
        teacher_id=owner_id,
        notification_type="student_associations_suggested",
        category="student_workflow",
        priority="high",
        payload={
            "batch_id": str(batch_id),
            "class_id": str(class_id),
            "essay_count": essay_count,
            "suggested_count": suggested_count,
            "message": (
                f"Student matches for {essay_count} essays are ready for review; "
                "unconfirmed matches are settled automatically at the deadline"
            ),
        },
        action_required=True,
        deadline_timestamp=deadline,
        correlation_id=str(correlation_id),
        batch_id=batch_id,
        class_id=class_id,
        timestamp=at,
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
    return TeacherNotification(
        teacher_id=owner_id,
        notification_type="student_associations_confirmed",
        category="student_workflow",
        priority="high",
        payload={
            "batch_id": str(batch_id),
            "class_id": str(class_id),
            "confirmed_count": confirmed_count,
            "rejected_count": rejected_count,
            "message": "Student matches of the batch are confirmed",
        },
        action_required=False,
        deadline_timestamp=None,
        correlation_id=str(correlation_id),
        batch_id=batch_id,
        class_id=class_id,
        timestamp=at,
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
    return TeacherNotification(
        teacher_id=owner_id,
        notification_type="validation_timeout_processed",
        category="student_workflow",
        priority="immediate",
        payload={
            "batch_id": str(batch_id),
            "class_id": str(class_id),
            "auto_confirmed_count": auto_confirmed_count,
            "unknown_assigned_count": unknown_assigned_count,
            "timeout_hours": timeout_hours,
            "message": "Unconfirmed student matches were settled at the deadline",
        },
        action_required=False,
        deadline_timestamp=None,
        correlation_id=str(correlation_id),
        batch_id=batch_id,
        class_id=class_id,
        timestamp=at,
    )
