"""Entities and value objects of the domain.

Never mapped by an ORM: adapters map rows explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum, StrEnum
from typing import Final, Generic, TypeVar
from uuid import UUID

from attrs import define, evolve, field, frozen

from class_core.errors import ClassArchivedError

T = TypeVar("T")

PLACEHOLDER_FIRST_NAME = "UNKNOWN"
PLACEHOLDER_LAST_NAME = "STUDENT"
SYSTEM_TIMEOUT_USER = "SYSTEM_TIMEOUT"
ERASED_FIRST_NAME = "ERASED"
ERASED_LAST_NAME = "STUDENT"
PSEUDONYM_FIRST_NAME = "Protected"


class Unset(Enum):
    UNSET = "UNSET"


UNSET: Final = Unset.UNSET
"""Marks an optional field that was not given (as opposed to an explicit ``None``)."""


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


class ClassStatus(StrEnum):
    """A class's lifecycle (contract §9.2): archived classes are read-only."""

    ACTIVE = "active"
    ARCHIVED = "archived"


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
    version: int = 1  # contract §8: 1 at create, +1 per committed change of the class itself
    external_id: str | None = None  # the school system's id (§9.1), unique per owner
    status: ClassStatus = ClassStatus.ACTIVE
    archived_at: datetime | None = None

    @property
    def is_archived(self) -> bool:
        return self.status is ClassStatus.ARCHIVED

    def ensure_writable(self) -> None:
        """Refuse a change of an archived class, or a student joining it (§9.2). Removing
        students, deleting it, its batches, suggestions (the placeholder joining) and
        decisions stay allowed: callers of those do not ask."""
        if self.is_archived:
            raise ClassArchivedError()

    def archive(self, at: datetime) -> bool:
        """Become archived; whether anything changed (archiving twice changes nothing)."""
        if self.is_archived:
            return False
        self.status, self.archived_at = ClassStatus.ARCHIVED, at
        return True

    def unarchive(self) -> bool:
        """Become active again; whether anything changed."""
        if not self.is_archived:
            return False
        self.status, self.archived_at = ClassStatus.ACTIVE, None
        return True


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
    version: int = 1  # contract §8: 1 at create, +1 per committed change (memberships too)
    aliases: tuple[str, ...] = ()  # other names the student goes by (§11), as given
    protected_identity: bool = False
    erased_at: datetime | None = None
    external_id: str | None = None  # the school system's id (§9.1), unique per owner; personal

    @property
    def full_name(self) -> str:
        return self.legal_full_name or f"{self.first_name} {self.last_name}"

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    def personal_values(self) -> tuple[str, ...]:
        """Every personal value the student holds now (names, legal name, email, external id,
        aliases), for erasure to hunt down copies of (contract §10)."""
        values = (
            self.first_name,
            self.last_name,
            self.legal_full_name,
            self.email,
            self.external_id,
            *self.aliases,
        )
        return tuple(dict.fromkeys(v for v in (*values, self.full_name) if v))

    def outside_view(self) -> Student:
        """The student as everything outside the owner's own reads shows it (events,
        notifications, internal routes): a pseudonym for a protected identity (§10)."""
        if not self.protected_identity:
            return self
        return evolve(
            self,
            first_name=PSEUDONYM_FIRST_NAME,
            last_name=f"Student {self.id.hex[:8]}",
            legal_full_name=None,
            email=None,
            aliases=(),
            external_id=None,
        )

    def erase(self, at: datetime) -> list[UUID]:
        """Become an anonymous record (§10): names ``ERASED``/``STUDENT``, nothing else
        personal, no memberships; returns the classes left."""
        left = list(self.class_ids)
        self.first_name, self.last_name = ERASED_FIRST_NAME, ERASED_LAST_NAME
        self.legal_full_name = self.email = self.external_id = None
        self.aliases = ()
        self.protected_identity = False
        self.class_ids = ()
        self.erased_at = self.updated_at = at
        return left

    def rename(
        self,
        first_name: str | Unset,
        last_name: str | Unset,
        legal_full_name: str | Unset | None,
    ) -> bool:
        """Take the names given (``UNSET``: keep; a ``None`` legal name: clear it); whether
        any changed. Values are already clean (``class_core.text``)."""
        old = (self.first_name, self.last_name, self.legal_full_name)
        if not isinstance(first_name, Unset):
            self.first_name = first_name
        if not isinstance(last_name, Unset):
            self.last_name = last_name
        if not isinstance(legal_full_name, Unset):
            self.legal_full_name = legal_full_name
        return (self.first_name, self.last_name, self.legal_full_name) != old

    def changes_aliases(self, aliases: Sequence[str] | Unset) -> bool:
        """Take the aliases given (``UNSET``: keep; values already clean); whether they
        changed."""
        if isinstance(aliases, Unset) or tuple(aliases) == self.aliases:
            return False
        self.aliases = tuple(aliases)
        return True

    def changes_email(self, email: str | Unset | None) -> bool:
        """Whether ``email`` (``UNSET``: keep; ``None``: clear) differs from the stored one."""
        return not isinstance(email, Unset) and email != self.email

    def join(self, class_ids: Sequence[UUID]) -> list[UUID]:
        """Become a member of these classes; returns those it was not in yet (in order)."""
        added = [c for c in dict.fromkeys(class_ids) if c not in self.class_ids]
        self.class_ids = tuple(sorted((*self.class_ids, *added)))
        return added

    def leave(self, class_ids: Sequence[UUID]) -> list[UUID]:
        """Stop being a member of these classes; returns those it was in (in order)."""
        removed = [c for c in dict.fromkeys(class_ids) if c in self.class_ids]
        self.class_ids = tuple(c for c in self.class_ids if c not in removed)
        return removed


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

    def move_deadline(self, deadline: datetime, at: datetime) -> None:
        """The owner's new deadline (checked by the use case); the sweep honours it."""
        self.deadline = deadline
        self.updated_at = at

    def finalize(self, at: datetime, *, timeout_triggered: bool) -> None:
        """Close the batch: no decision changes after this."""
        self.status = BatchStatus.FINALIZED
        self.finalized_at = at
        self.updated_at = at
        self.timeout_triggered = timeout_triggered


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
    # The best confidence among the essay's other suggestions of members of the class, as
    # ingested (contract §11); ``None``: none, or stored before v2.
    runner_up_confidence: float | None = None

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


class HistoryAction(StrEnum):
    """What happened to a student (the export's history, contract §10)."""

    CREATED = "created"
    UPDATED = "updated"
    ADDED_TO_CLASS = "added_to_class"
    REMOVED_FROM_CLASS = "removed_from_class"
    ASSOCIATION_DECIDED = "association_decided"
    ERASED = "erased"


@frozen
class HistoryEntry:
    """One action on a student, recorded when it is written: ids only, no personal data.
    ``subject_id`` is the class (membership) or essay (decision) concerned, if any."""

    student_id: UUID
    owner_id: str
    at: datetime
    action: HistoryAction
    by: str
    subject_id: UUID | None = None


@frozen
class BatchSummary:
    """One entry of a teacher's batch queue (contract §11); ``confirmed`` includes
    ``timeout_confirmed``."""

    batch_id: UUID
    class_id: UUID
    class_name: str
    course_code: str
    status: BatchStatus
    deadline: datetime
    essay_count: int
    pending: int
    confirmed: int
    rejected: int
    created_at: datetime


@frozen
class Page(Generic[T]):
    """One page of a list plus the total number of matches."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int
