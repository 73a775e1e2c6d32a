"""Entities and value objects of the domain.

Never mapped by an ORM: adapters map rows explicitly.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar
from uuid import UUID

from attrs import define, field, frozen

T = TypeVar("T")

PLACEHOLDER_FIRST_NAME = "UNKNOWN"
PLACEHOLDER_LAST_NAME = "STUDENT"
SYSTEM_TIMEOUT_USER = "SYSTEM_TIMEOUT"


def placeholder_email(class_id: UUID) -> str:
    """The reserved email of a class's UNKNOWN placeholder student."""
    return f"unknown.{class_id}@huleedu.system"


class ValidationStatus(StrEnum):
    PENDING = "pending_validation"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    TIMEOUT_CONFIRMED = "timeout_confirmed"


class ValidationMethod(StrEnum):
    HUMAN = "human"
    TIMEOUT = "timeout"
    AUTO = "auto"  # reserved by the contract; never produced


class BatchStatus(StrEnum):
    PENDING = "pending"
    FINALIZED = "finalized"


@define
class SchoolClass:
    """A teacher's class, tied to exactly one course."""

    id: UUID
    owner_id: str
    name: str
    course_code: str
    created_at: datetime
    updated_at: datetime
    student_count: int = 0  # derived on read: members without the placeholder


@define
class Student:
    """A student, unique by email per owner. ``class_ids`` are the memberships as read."""

    id: UUID
    owner_id: str
    first_name: str
    last_name: str
    legal_full_name: str | None
    email: str | None
    created_at: datetime
    updated_at: datetime
    is_placeholder: bool = False
    class_ids: tuple[UUID, ...] = field(factory=tuple)

    @property
    def full_name(self) -> str:
        return self.legal_full_name or f"{self.first_name} {self.last_name}"


@define
class Batch:
    """A batch of essays whose authors are being matched; the deadline is fixed on first store."""

    batch_id: UUID
    class_id: UUID
    owner_id: str
    course_code: str
    status: BatchStatus
    deadline: datetime
    created_at: datetime
    updated_at: datetime
    finalized_at: datetime | None = None
    timeout_triggered: bool = False

    @property
    def is_finalized(self) -> bool:
        return self.status is BatchStatus.FINALIZED


@define
class Association:
    """Which student wrote one essay: the suggestion is kept apart from the decision."""

    essay_id: UUID
    batch_id: UUID
    class_id: UUID
    suggested_student_id: UUID | None
    confidence_score: float | None
    match_reasons: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    student_id: UUID | None = None
    validation_status: ValidationStatus = ValidationStatus.PENDING
    validation_method: ValidationMethod | None = None
    validated_by: str | None = None
    validated_at: datetime | None = None

    @property
    def is_pending(self) -> bool:
        return self.validation_status is ValidationStatus.PENDING

    def decide(
        self,
        status: ValidationStatus,
        student_id: UUID | None,
        method: ValidationMethod,
        by: str,
        at: datetime,
    ) -> None:
        """Record a decision; the suggestion is never touched."""
        self.validation_status = status
        self.student_id = student_id
        self.validation_method = method
        self.validated_by = by
        self.validated_at = at
        self.updated_at = at


@frozen
class Page(Generic[T]):
    """One page of a list plus the total number of matches."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int
