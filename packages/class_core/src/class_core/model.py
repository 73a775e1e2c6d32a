"""Entities and value objects of the domain.

Never mapped by an ORM: adapters map rows explicitly. The aggregates (:class:`Student`,
:class:`SchoolClass`) change through their methods, and each change records what it publishes
(the contract's events, in order) and what the student history keeps; the unit of work that
writes the aggregate pulls both at commit (``UnitOfWork.collect``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Final, Generic, TypeVar
from uuid import UUID, uuid4

from attrs import define, evolve, field, frozen

from class_core import matching, notifications
from class_core.errors import ClassArchivedError
from class_core.events import (
    ClassCreatedV1,
    ClassDeletedV1,
    ClassUpdatedV1,
    DomainEvent,
    StudentCreatedV1,
    StudentDeletedV1,
    StudentErasedV1,
    StudentUpdatedV1,
)
from class_core.ids import uuid7

if TYPE_CHECKING:
    from class_core.matching import EssayMatch, TimeoutOutcome

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
class Aggregate:
    """What an aggregate's changes recorded and its unit of work has not pulled yet: domain
    events, in order, each with the correlation id it was recorded under, and student
    history entries. Every method that records events takes that correlation id (the
    request's, ``RequestContext.correlation_id``, or a consumed message's) and builds its
    events complete, once: they are never changed afterwards. Neither list is part of the
    aggregate's value (no ``__init__`` argument, not compared, not shown)."""

    _events: list[tuple[DomainEvent, UUID]] = field(factory=list, init=False, eq=False, repr=False)
    _history: list[HistoryEntry] = field(factory=list, init=False, eq=False, repr=False)

    def _record(self, correlation_id: UUID, *events: DomainEvent) -> None:
        """Record ``events`` (built with ``correlation_id`` where they carry one), in order,
        under ``correlation_id``: their envelope's (contract §5.1), which an event without the
        field (``StudentAssociationsConfirmedV1``) takes from here."""
        self._events += [(e, correlation_id) for e in events]

    def pull_recorded(self) -> list[tuple[DomainEvent, UUID]]:
        """The events recorded since the last pull, in order, each with its correlation id;
        forgotten here (the unit of work's pull at commit)."""
        recorded, self._events = self._events, []
        return recorded

    def pull_events(self) -> list[DomainEvent]:
        """The events recorded since the last pull, in order, without their correlation ids
        (the roster import's bulk collector records them under its one); forgotten here."""
        return [e for e, _ in self.pull_recorded()]

    def pull_history(self) -> list[HistoryEntry]:
        """The history entries recorded since the last pull, in order; forgotten here."""
        entries, self._history = self._history, []
        return entries


@define
class SchoolClass(Aggregate):
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

    @classmethod
    def create(
        cls,
        owner_id: str,
        name: str,
        course_code: str,
        *,
        external_id: str | None = None,
        at: datetime,
        correlation_id: UUID,
    ) -> SchoolClass:
        """A new class (version 1; values already clean; a time-ordered id, see
        :mod:`class_core.ids`): records ``ClassCreatedV1`` and the owner's ``class_created``
        notification, under ``correlation_id``."""
        new = cls(uuid7(at), owner_id, name, course_code, at, at, external_id=external_id)
        new.announce_created(at, correlation_id)
        return new

    def announce_created(self, at: datetime, correlation_id: UUID) -> None:
        """Record what creating the class publishes, under ``correlation_id``:
        ``ClassCreatedV1`` and the owner's ``class_created`` notification (again by an import
        that plans a chunk again after its first attempt was rolled back)."""
        self._record(
            correlation_id,
            ClassCreatedV1.of(self, self.owner_id, correlation_id, at),
            notifications.class_created(self, correlation_id, at),
        )

    def update(
        self,
        *,
        name: str | Unset = UNSET,
        course_code: str | Unset = UNSET,
        external_id: str | Unset | None = UNSET,
        by: str,
        at: datetime,
        correlation_id: UUID,
    ) -> bool:
        """Take the values given (``UNSET``: keep; a ``None`` external id: clear it; values
        already clean); whether any changed. Refused while archived (§9.2). A change is one
        more version and records ``ClassUpdatedV1`` (the new name and course when they
        changed)."""
        self.ensure_writable()
        new_name = name if not isinstance(name, Unset) and name != self.name else None
        new_course = (
            course_code
            if not isinstance(course_code, Unset) and course_code != self.course_code
            else None
        )
        new_external = not isinstance(external_id, Unset) and external_id != self.external_id
        if new_name is None and new_course is None and not new_external:
            return False
        self.name = new_name or self.name
        self.course_code = new_course or self.course_code
        if new_external and not isinstance(external_id, Unset):
            self.external_id = external_id
        self._changed(by, at, correlation_id, new_name, new_course)
        return True

    def archive(self, by: str, at: datetime, *, correlation_id: UUID) -> bool:
        """Become archived; whether anything changed (archiving twice changes nothing). A
        change is one more version and records ``ClassUpdatedV1`` with the new status."""
        if self.is_archived:
            return False
        self.status, self.archived_at = ClassStatus.ARCHIVED, at
        self._changed(by, at, correlation_id)
        return True

    def unarchive(self, by: str, at: datetime, *, correlation_id: UUID) -> bool:
        """Become active again; whether anything changed (recorded as :meth:`archive`)."""
        if not self.is_archived:
            return False
        self.status, self.archived_at = ClassStatus.ACTIVE, None
        self._changed(by, at, correlation_id)
        return True

    def delete(
        self, members: Sequence[UUID], by: str, at: datetime, *, correlation_id: UUID
    ) -> None:
        """Record the deletion: each member's history says it left the class, and
        ``ClassDeletedV1`` (the version the deletion would make) says the rest; the members
        get no event of their own."""
        self._history += [
            HistoryEntry(s, self.owner_id, at, HistoryAction.REMOVED_FROM_CLASS, by, self.id)
            for s in members
        ]
        self._record(
            correlation_id,
            ClassDeletedV1(self.id, by, correlation_id, at, aggregate_version=self.version + 1),
        )

    def _changed(
        self,
        by: str,
        at: datetime,
        correlation_id: UUID,
        new_name: str | None = None,
        new_course: str | None = None,
    ) -> None:
        """One more version of the class, recorded as ``ClassUpdatedV1``."""
        self.updated_at = at
        self.version += 1
        self._record(
            correlation_id, ClassUpdatedV1.of(self, new_name, new_course, by, correlation_id, at)
        )


@define
class Student(Aggregate):
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

    @classmethod
    def create(
        cls,
        owner_id: str,
        first_name: str,
        last_name: str,
        *,
        legal_full_name: str | None = None,
        email: str | None = None,
        classes: Sequence[SchoolClass] = (),
        aliases: tuple[str, ...] = (),
        protected_identity: bool = False,
        external_id: str | None = None,
        by: str,
        at: datetime,
        correlation_id: UUID,
        student_id: UUID | None = None,
        announce_joins: bool = True,
        history_by: str | None = None,
    ) -> Student:
        """A new student (version 1; values already clean; ``student_id`` or a new id),
        member of ``classes`` (without repeats; joining an archived one is refused, §9.2).
        Records ``StudentCreatedV1`` (the classes in the order given), one
        ``student_added_to_class`` notification per class to its owner (unless not
        ``announce_joins``: an import tells no one, §5.2), and the history (created, then each
        class joined; by ``history_by``, default ``by``); the events under ``correlation_id``."""
        for c in classes:  # joining an archived class is refused (§9.2)
            c.ensure_writable()
        class_ids = tuple(c.id for c in classes)
        student = cls(
            student_id or uuid4(),
            owner_id,
            first_name,
            last_name,
            legal_full_name,
            email,
            at,
            at,
            class_ids=tuple(sorted(class_ids)),
            aliases=aliases,
            protected_identity=protected_identity,
            external_id=external_id,
        )
        # One event: appended as ``_record`` would, without its star-args (the import's hot path).
        student._events.append(
            (StudentCreatedV1.of(student, class_ids, by, correlation_id, at), correlation_id)
        )
        if announce_joins:
            student._record_joins(classes, at, correlation_id)
        student._history += change_history(
            student, history_by or by, at, created=True, added=class_ids
        )
        return student

    @classmethod
    def placeholder_of(
        cls, school_class: SchoolClass, at: datetime, correlation_id: UUID
    ) -> Student:
        """The class's UNKNOWN student (§4.3), a member of it: records ``StudentCreatedV1``
        (by the class's owner) and its history (created by ``SYSTEM_TIMEOUT``); written only
        if no concurrent sweep created one first."""
        placeholder = cls(
            uuid4(),
            school_class.owner_id,
            PLACEHOLDER_FIRST_NAME,
            PLACEHOLDER_LAST_NAME,
            None,
            placeholder_email(school_class.id),
            at,
            at,
            is_placeholder=True,
            class_ids=(school_class.id,),
        )
        placeholder._record(
            correlation_id,
            StudentCreatedV1.of(
                placeholder, (school_class.id,), school_class.owner_id, correlation_id, at
            ),
        )
        placeholder._history.append(
            HistoryEntry(
                placeholder.id,
                school_class.owner_id,
                at,
                HistoryAction.CREATED,
                SYSTEM_TIMEOUT_USER,
            )
        )
        return placeholder

    def check_joinable(self, classes: Sequence[SchoolClass]) -> None:
        """Refuse joining an archived class it is not in yet (§9.2); leaving one, or naming
        one it is in already, is allowed."""
        for c in classes:
            if c.id not in self.class_ids:
                c.ensure_writable()

    def update(
        self,
        *,
        first_name: str | Unset = UNSET,
        last_name: str | Unset = UNSET,
        legal_full_name: str | Unset | None = UNSET,
        email: str | Unset | None = UNSET,
        aliases: Sequence[str] | Unset = UNSET,
        protected_identity: bool | Unset = UNSET,
        external_id: str | Unset | None = UNSET,
        joining: Sequence[SchoolClass] = (),
        leaving: Sequence[UUID] = (),
        by: str,
        at: datetime,
        correlation_id: UUID,
        announce_joins: bool = True,
        history_by: str | None = None,
        always: bool = False,
    ) -> StudentChange | None:
        """Take the values given (``UNSET``: keep; ``None``: clear a nullable one; values
        already clean), join ``joining`` (:meth:`check_joinable`) and leave ``leaving``.
        ``None`` when nothing changed; otherwise one more version, recorded as one
        ``StudentUpdatedV1`` (the state after the change), one ``student_added_to_class``
        notification per class joined (unless not ``announce_joins``), and the history (by
        ``history_by``, default ``by``); the events under ``correlation_id``. ``always``: one
        more version even when nothing changed (an import's undo makes one per student it
        reverts)."""
        self.check_joinable(joining)
        changed = self._rename(first_name, last_name, legal_full_name)
        changed = self._take_aliases(aliases) or changed
        if self.changes_email(email):
            self.email, changed = None if isinstance(email, Unset) else email, True
        if not isinstance(protected_identity, Unset) and (
            protected_identity != self.protected_identity
        ):
            self.protected_identity, changed = protected_identity, True
        if not isinstance(external_id, Unset) and external_id != self.external_id:
            self.external_id, changed = external_id, True
        added, removed = self._join([c.id for c in joining]), self._leave(leaving)
        if not changed and not added and not removed and not always:
            return None
        self.updated_at = at
        self.version += 1
        self._events.append(
            (StudentUpdatedV1.of(self, added, removed, by, correlation_id, at), correlation_id)
        )
        if announce_joins and added:
            by_id = {c.id: c for c in joining}
            self._record_joins([by_id[c] for c in added], at, correlation_id)
        self._history += change_history(
            self, history_by or by, at, updated=changed, added=added, removed=removed
        )
        return StudentChange(changed, added, removed)

    def _record_joins(
        self, classes: Sequence[SchoolClass], at: datetime, correlation_id: UUID
    ) -> None:
        """Tell each class's owner that this student joined it."""
        self._record(
            correlation_id,
            *(notifications.student_added_to_class(self, c, correlation_id, at) for c in classes),
        )

    def erase(self, by: str, at: datetime, *, correlation_id: UUID) -> list[UUID]:
        """Become an anonymous record (§10): names ``ERASED``/``STUDENT``, nothing else
        personal, no memberships; one more version, recorded as ``StudentUpdatedV1`` then
        ``StudentErasedV1`` and the history (each class left, then erased). Returns the
        classes left."""
        left = list(self.class_ids)
        self.first_name, self.last_name = ERASED_FIRST_NAME, ERASED_LAST_NAME
        self.legal_full_name = self.email = self.external_id = None
        self.aliases = ()
        self.protected_identity = False
        self.class_ids = ()
        self.erased_at = self.updated_at = at
        self.version += 1
        self._record(
            correlation_id,
            StudentUpdatedV1.of(self, (), left, by, correlation_id, at),
            StudentErasedV1(
                self.id, tuple(left), by, correlation_id, at, aggregate_version=self.version
            ),
        )
        self._history += change_history(self, by, at, removed=left)
        self._history.append(HistoryEntry(self.id, self.owner_id, at, HistoryAction.ERASED, by))
        return left

    def delete(self, by: str, at: datetime, *, correlation_id: UUID) -> None:
        """Record the deletion: ``StudentDeletedV1`` with the classes it was in and the
        version the deletion would make."""
        self._record(
            correlation_id,
            StudentDeletedV1(
                self.id,
                self.class_ids,
                by,
                correlation_id,
                at,
                aggregate_version=self.version + 1,
            ),
        )

    def _rename(
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

    def _take_aliases(self, aliases: Sequence[str] | Unset) -> bool:
        """Take the aliases given (``UNSET``: keep; values already clean); whether they
        changed."""
        if isinstance(aliases, Unset) or tuple(aliases) == self.aliases:
            return False
        self.aliases = tuple(aliases)
        return True

    def changes_email(self, email: str | Unset | None) -> bool:
        """Whether ``email`` (``UNSET``: keep; ``None``: clear) differs from the stored one."""
        return not isinstance(email, Unset) and email != self.email

    def _join(self, class_ids: Sequence[UUID]) -> list[UUID]:
        """Become a member of these classes; returns those it was not in yet (in order)."""
        added = [c for c in dict.fromkeys(class_ids) if c not in self.class_ids]
        self.class_ids = tuple(sorted((*self.class_ids, *added)))
        return added

    def _leave(self, class_ids: Sequence[UUID]) -> list[UUID]:
        """Stop being a member of these classes; returns those it was in (in order)."""
        removed = [c for c in dict.fromkeys(class_ids) if c in self.class_ids]
        self.class_ids = tuple(c for c in self.class_ids if c not in removed)
        return removed


@frozen
class StudentChange:
    """What :meth:`Student.update` changed: whether any field did, and the classes joined
    and left (in order)."""

    fields: bool
    added: list[UUID]
    removed: list[UUID]


@define
class Batch(Aggregate):
    """A batch of essays whose authors are being matched; the deadline is fixed on first store.

    Its associations are read and written apart (a batch has many); its methods take them,
    change them and record the batch's events, notifications and the decisions' history. The
    rules themselves are pure functions in :mod:`class_core.matching`."""

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

    @classmethod
    def open(
        cls,
        batch_id: UUID,
        of_class: SchoolClass,
        course_code: str,
        deadline: datetime,
        at: datetime,
    ) -> Batch:
        """A new pending batch of a class, its owner's, due at ``deadline``."""
        return cls(
            batch_id=batch_id,
            class_id=of_class.id,
            owner_id=of_class.owner_id,
            course_code=course_code,
            status=BatchStatus.PENDING,
            deadline=deadline,
            created_at=at,
            updated_at=at,
        )

    def apply_suggestions(
        self,
        matches: Iterable[EssayMatch],
        existing: Mapping[UUID, Association],
        members: Collection[UUID],
        *,
        first: bool,
        at: datetime,
        correlation_id: UUID,
    ) -> AppliedSuggestions:
        """A suggestions message (contract §4.1, :func:`class_core.matching.apply_suggestions`).
        The ``first`` message of a batch: with no essay of its own it finalizes the batch at
        once (:meth:`finalize`), otherwise it tells the owner the suggestions are ready. A
        later message that changes anything touches the batch."""
        new, changed, ignored = matching.apply_suggestions(self, matches, existing, members, at)
        touched = False
        if first and not new:
            self.finalize([], at, correlation_id)
            touched = True
        elif first:
            suggested = sum(1 for a in new if a.suggested_student_id is not None)
            self._record(
                correlation_id,
                notifications.associations_suggested(
                    self.owner_id,
                    self.batch_id,
                    self.class_id,
                    essay_count=len(new),
                    suggested_count=suggested,
                    deadline=self.deadline,
                    correlation_id=correlation_id,
                    at=at,
                ),
            )
        elif new or changed:
            self.updated_at, touched = at, True
        return AppliedSuggestions(new, changed, ignored, touched)

    def move_deadline(self, deadline: datetime, at: datetime) -> None:
        """The owner's new deadline (checked by the use case); the sweep honours it."""
        self.deadline = deadline
        self.updated_at = at

    def decide(
        self,
        associations: Sequence[Association],
        decisions: Sequence[tuple[UUID, UUID | None]],
        by: str,
        at: datetime,
        *,
        correlation_id: UUID,
    ) -> list[Association]:
        """The owner's decisions (contract §3.3), checked already: essay id → the chosen
        student, ``None`` to reject. Each goes into the history of the student it names; once
        no essay of the batch is pending the batch is finalized (:meth:`finalize`), otherwise
        touched. Returns the decided associations, in order."""
        by_essay = {a.essay_id: a for a in associations}
        decided: list[Association] = []
        for essay_id, student_id in decisions:
            a = by_essay[essay_id]
            if student_id is None:
                a.decide(ValidationStatus.REJECTED, None, ValidationMethod.HUMAN, by, at)
            else:
                a.decide(ValidationStatus.CONFIRMED, student_id, ValidationMethod.HUMAN, by, at)
            decided.append(a)
        self._history += _decision_history(decided, self.owner_id)
        if matching.count(associations).pending == 0:
            self.finalize(associations, at, correlation_id)
        else:
            self.updated_at = at
        return decided

    def finalize(
        self, associations: Sequence[Association], at: datetime, correlation_id: UUID
    ) -> None:
        """Close the batch, its essays decided (or it has none): no decision changes after
        this. Records the one ``StudentAssociationsConfirmedV1`` and tells the owner, under
        ``correlation_id``."""
        self._close(at, timeout_triggered=False)
        counts = matching.count(associations)
        self._record(
            correlation_id,
            matching.confirmed_event(self, associations, False, at),
            notifications.associations_confirmed(
                self.owner_id,
                self.batch_id,
                self.class_id,
                counts.confirmed,
                counts.rejected,
                correlation_id,
                at,
            ),
        )

    def settle_by_timeout(
        self,
        associations: Sequence[Association],
        outcome: TimeoutOutcome,
        placeholder_id: UUID | None,
        timeout_hours: float,
        at: datetime,
        correlation_id: UUID,
    ) -> None:
        """Apply the timeout rule's outcome (:func:`class_core.matching.timeout_outcome`):
        the essays it keeps get their suggested student, the others the class's UNKNOWN
        placeholder (``placeholder_id``, given when any does), all ``timeout_confirmed`` by
        ``SYSTEM_TIMEOUT``, each in its student's history. The batch is finalized by timeout:
        records the one confirmed event (with how many essays the guard sent to UNKNOWN) and
        the owner's notification, under ``correlation_id``."""
        status, method = ValidationStatus.TIMEOUT_CONFIRMED, ValidationMethod.TIMEOUT
        for a in outcome.unknown:
            a.decide(status, placeholder_id, method, SYSTEM_TIMEOUT_USER, at)
        for a in outcome.keep:
            a.decide(status, a.suggested_student_id, method, SYSTEM_TIMEOUT_USER, at)
        self._close(at, timeout_triggered=True)
        self._history += _decision_history([*outcome.keep, *outcome.unknown], self.owner_id)
        self._record(
            correlation_id,
            matching.confirmed_event(self, associations, True, at, outcome.ambiguous),
            notifications.validation_timeout_processed(
                self.owner_id,
                self.batch_id,
                self.class_id,
                auto_confirmed_count=len(outcome.keep),
                unknown_assigned_count=len(outcome.unknown),
                timeout_hours=timeout_hours,
                correlation_id=correlation_id,
                at=at,
            ),
        )

    def _close(self, at: datetime, *, timeout_triggered: bool) -> None:
        self.status = BatchStatus.FINALIZED
        self.finalized_at = at
        self.updated_at = at
        self.timeout_triggered = timeout_triggered


@frozen
class AppliedSuggestions:
    """What a suggestions message did (:meth:`Batch.apply_suggestions`): the associations to
    add and to update, how many essays were ignored (another batch has them) and whether the
    batch itself changed."""

    new: list[Association]
    changed: list[Association]
    ignored: int
    batch_changed: bool


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


def change_history(
    student: Student,
    by: str,
    at: datetime,
    *,
    created: bool = False,
    updated: bool = False,
    added: Sequence[UUID] = (),
    removed: Sequence[UUID] = (),
) -> list[HistoryEntry]:
    """The history entries of one change of a student (ids only, §10 export)."""
    entries: list[HistoryEntry] = []
    if created or updated:
        action = HistoryAction.CREATED if created else HistoryAction.UPDATED
        entries.append(HistoryEntry(student.id, student.owner_id, at, action, by))
    entries += [
        HistoryEntry(student.id, student.owner_id, at, HistoryAction.ADDED_TO_CLASS, by, c)
        for c in added
    ]
    entries += [
        HistoryEntry(student.id, student.owner_id, at, HistoryAction.REMOVED_FROM_CLASS, by, c)
        for c in removed
    ]
    return entries


def _decision_history(decided: Sequence[Association], owner_id: str) -> list[HistoryEntry]:
    """``association_decided`` for the student each decision names (the chosen one, else
    the suggested one a rejection turned down), subject the essay."""
    entries: list[HistoryEntry] = []
    for a in decided:
        student = a.student_id or a.suggested_student_id
        if student is not None and a.validated_at is not None and a.validated_by is not None:
            entries.append(
                HistoryEntry(
                    student,
                    owner_id,
                    a.validated_at,
                    HistoryAction.ASSOCIATION_DECIDED,
                    a.validated_by,
                    a.essay_id,
                )
            )
    return entries


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
