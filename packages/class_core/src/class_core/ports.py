"""Ports: what the use cases need from the outside world, named by role.

Every owner-scoped method takes the owner id and returns ``None`` (or nothing) for another
owner's objects, so that "not yours" and "does not exist" are indistinguishable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from attrs import frozen

from class_core.changes import ChangeKey, FeedPosition, LoggedChange, PendingChange
from class_core.events import DomainEvent, OutboxMessage, TeacherNotification
from class_core.import_records import ImportItem, ImportRecord
from class_core.model import (
    Aggregate,
    Association,
    Batch,
    BatchSummary,
    HistoryEntry,
    Page,
    SchoolClass,
    Student,
)
from class_core.queries import BatchQuery, ClassQuery, StudentQuery


class ClassRepository(Protocol):
    async def add(self, cls: SchoolClass) -> None:
        """Insert the class; a taken external id of the owner raises
        :class:`~class_core.errors.DuplicateExternalIdError` (also under a race)."""
        ...

    async def get(self, owner_id: str, class_id: UUID, *, lock: bool = False) -> SchoolClass | None:
        """The owner's class with ``student_count`` (placeholder not counted). ``lock`` holds
        the row against concurrent changes until commit and reads it as it is once the lock
        is held (a class deleted meanwhile is ``None``)."""
        ...

    async def get_unscoped(self, class_id: UUID) -> SchoolClass | None:
        """Any owner's class (for consumers, sweeps and internal routes)."""
        ...

    async def get_many(
        self, owner_id: str, class_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, SchoolClass]:
        """The owner's classes among ``class_ids`` (``student_count`` may be 0). ``lock``
        holds them against deletion (a shared lock) until commit."""
        ...

    async def get_unscoped_many(self, class_ids: Collection[UUID]) -> dict[UUID, SchoolClass]:
        """Any owner's classes among ``class_ids`` (sweeps; ``student_count`` may be 0)."""
        ...

    async def search(self, owner_id: str, query: ClassQuery) -> Page[SchoolClass]:
        """Newest first (``created_at`` then ``id``, descending), filtered by the query
        (``status``: active by default, ``None`` for all; ``external_id`` exact)."""
        ...

    async def find_by_name(self, owner_id: str, name: str) -> list[SchoolClass]:
        """The owner's classes whose trimmed name equals ``name`` case-insensitively."""
        ...

    async def find_by_names(
        self, owner_id: str, names: Collection[str]
    ) -> dict[str, list[SchoolClass]]:
        """:meth:`find_by_name` of several names at once, by the trimmed, case-folded name
        (names that match no class are absent)."""
        ...

    async def lock_names(self, owner_id: str) -> None:
        """Hold the owner's class names until this unit of work ends: another unit of work
        that asks for them waits until then. Taken before creating classes by names that no
        class has yet (an import's chunk) and followed by looking those names up again, so
        that two writers at once create one class per name, not two (contract §7: several
        matches are a row error from then on)."""
        ...

    async def update(self, cls: SchoolClass) -> None:
        """Store name, course code, external id, status, ``archived_at``, ``updated_at`` and
        ``version``; a taken external id raises
        :class:`~class_core.errors.DuplicateExternalIdError`."""
        ...

    async def delete(self, class_id: UUID) -> None:
        """Delete a class that has no memberships and no batches left."""
        ...


class StudentRepository(Protocol):
    async def add(self, student: Student) -> None:
        """Insert the student and its memberships (``student.class_ids``).

        Raises :class:`~class_core.errors.DuplicateStudentEmailError` for a taken email and
        :class:`~class_core.errors.DuplicateExternalIdError` for a taken external id (also
        when a concurrent writer took it).
        """
        ...

    async def add_many(self, students: Sequence[Student]) -> None:
        """Bulk form of :meth:`add` (imports)."""
        ...

    async def get(self, owner_id: str, student_id: UUID, *, lock: bool = False) -> Student | None:
        """The owner's student with memberships. ``lock`` holds the row against concurrent
        changes until commit and reads it (and its memberships) once the lock is held."""
        ...

    async def get_unscoped_many(self, student_ids: Collection[UUID]) -> dict[UUID, Student]:
        """Students by id whatever their owner (names for associations); memberships optional."""
        ...

    async def get_many(
        self, owner_id: str, student_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, Student]:
        """The owner's students among ``student_ids``, with memberships; ``lock`` as in
        :meth:`get` (rows locked in id order)."""
        ...

    async def by_emails(
        self, owner_id: str, emails: Collection[str], *, lock: bool = False
    ) -> dict[str, Student]:
        """The owner's students with these (normalised) emails, with memberships; ``lock``
        as in :meth:`get`."""
        ...

    async def by_external_ids(
        self, owner_id: str, external_ids: Collection[str]
    ) -> dict[str, Student]:
        """The owner's students with these (cleaned) external ids (memberships optional)."""
        ...

    async def search(self, owner_id: str, query: StudentQuery) -> Page[Student]:
        """Ordered by last name, first name, id; the placeholder included."""
        ...

    async def update(self, student: Student) -> None:
        """Store names, email, external id, aliases, ``protected_identity``, ``erased_at``,
        ``updated_at`` and ``version`` (not memberships); a taken external id raises
        :class:`~class_core.errors.DuplicateExternalIdError`. A stored student that is erased
        is never changed again: raises :class:`~class_core.errors.StudentErasedError` (also
        when a concurrent erasure committed after the student was read)."""
        ...

    async def update_many(self, students: Sequence[Student]) -> None:
        """Bulk form of :meth:`update` (the same refusal for an erased student)."""
        ...

    async def delete(self, student_id: UUID) -> None:
        """Delete a student whose memberships were removed."""
        ...

    async def add_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None:
        """Add ``(class_id, student_id)`` memberships; existing ones are left as they are."""
        ...

    async def remove_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None: ...

    async def remove_class_memberships(self, class_id: UUID) -> list[UUID]:
        """Remove every membership of a class; returns the students that were members (their
        rows locked until commit, as :meth:`get` with ``lock`` would)."""
        ...

    async def touch(self, student_ids: Collection[UUID], at: datetime) -> None:
        """Set ``updated_at`` and add 1 to ``version`` (a membership changed)."""
        ...

    async def roster(self, class_id: UUID) -> list[Student]:
        """Members of the class without the placeholder, by last name, first name, id."""
        ...

    async def member_emails(self, class_id: UUID) -> dict[UUID, str]:
        """``student_id -> email`` of the class's members that have an email, placeholder
        excluded (sync imports: ids and emails only, whatever the class's size)."""
        ...

    async def members_among(self, class_id: UUID, student_ids: Collection[UUID]) -> set[UUID]:
        """Which of ``student_ids`` are non-placeholder members of the class."""
        ...

    async def members_by_class(
        self, candidates: Mapping[UUID, Collection[UUID]]
    ) -> dict[UUID, set[UUID]]:
        """Bulk :meth:`members_among`: ``class_id -> candidates`` in, ``class_id -> members``
        out, one entry per class given (an empty set when none is a member)."""
        ...

    async def placeholder(self, class_id: UUID) -> Student | None: ...

    async def placeholders(self, class_ids: Collection[UUID]) -> dict[UUID, Student]:
        """``class_id -> UNKNOWN student`` for the classes among ``class_ids`` that have one."""
        ...

    async def add_placeholder(self, student: Student, class_id: UUID) -> bool:
        """Insert the class's UNKNOWN student and its membership unless one exists.

        Returns ``True`` when this call created it. A unique constraint guarantees one per
        class even with concurrent callers.
        """
        ...


class BatchRepository(Protocol):
    async def get(self, batch_id: UUID, *, lock: bool = False) -> Batch | None:
        """Any owner's batch; ``lock`` holds it against concurrent changes until commit."""
        ...

    async def add(self, batch: Batch) -> None: ...

    async def update(self, batch: Batch) -> None: ...

    async def update_many(self, batches: Sequence[Batch]) -> None:
        """Bulk form of :meth:`update`."""
        ...

    async def associations(self, batch_id: UUID) -> list[Association]:
        """Ordered by ``created_at`` then ``essay_id``."""
        ...

    async def associations_of(self, batch_ids: Collection[UUID]) -> dict[UUID, list[Association]]:
        """Bulk :meth:`associations`: ``batch_id -> associations`` in the same order; a batch
        without associations has no entry."""
        ...

    async def associations_by_essay(
        self, essay_ids: Collection[UUID]
    ) -> dict[UUID, Association]: ...

    async def add_associations(self, items: Sequence[Association]) -> None: ...

    async def update_associations(self, items: Sequence[Association]) -> None:
        """Store suggestion and decision fields and ``updated_at``."""
        ...

    async def update_decisions(self, items: Sequence[Association]) -> None:
        """Store the decision fields (``student_id``, status, method, by, at) and
        ``updated_at``; the stored suggestion is left as it is."""
        ...

    async def earliest_pending_deadline(self) -> datetime | None:
        """The earliest deadline of a pending batch (``None``: none is pending); read without
        a lock, so that a sweep that finds nothing due needs no write transaction."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[Batch]:
        """Pending batches past their deadline, locked; batches locked elsewhere are skipped."""
        ...

    async def associations_of_student(self, student_id: UUID) -> list[Association]:
        """Associations naming the student as suggested or chosen, by ``created_at`` then
        ``essay_id``."""
        ...

    async def class_has_batches(self, class_id: UUID) -> bool: ...

    async def student_in_use(self, student_id: UUID) -> bool:
        """Whether any association names the student as suggested or chosen."""
        ...

    async def students_in_use(self, student_ids: Collection[UUID]) -> set[UUID]:
        """Bulk :meth:`student_in_use`: those of ``student_ids`` an association names."""
        ...

    async def class_info(self, batch_ids: Collection[UUID]) -> dict[UUID, tuple[UUID, str]]:
        """``batch_id -> (class_id, class_name)`` for the batches that exist."""
        ...

    async def pending_associations(self, limit: int) -> list[Association]:
        """Pending associations of every owner (admin view)."""
        ...

    async def list_for_owner(self, owner_id: str, query: BatchQuery) -> Page[BatchSummary]:
        """The owner's batches with their counts (§11), by deadline then ``batch_id``."""
        ...


class StudentHistory(Protocol):
    """What was done to each student, when and by whom (the export's history, §10)."""

    async def add(self, entries: Sequence[HistoryEntry]) -> None: ...

    async def of_student(self, student_id: UUID) -> list[HistoryEntry]:
        """The student's entries in the order they were written."""
        ...

    async def delete_student(self, student_id: UUID) -> None:
        """Forget a deleted student's entries."""
        ...


class ImportHistory(Protocol):
    """Applied roster imports and what each did per student (§9.4 history and undo)."""

    async def add(self, record: ImportRecord) -> None: ...

    async def extend(self, import_id: UUID, created: int, updated: int, removed: int) -> None:
        """Add a later chunk's counts to a recorded import (CLI imports commit in chunks)."""
        ...

    async def add_items(self, items: Sequence[ImportItem]) -> None: ...

    async def get(
        self, owner_id: str | None, import_id: UUID, *, lock: bool = False
    ) -> ImportRecord | None:
        """The owner's import (``None``: any owner's, for the admin CLI); ``lock`` holds it
        until commit (one undo at a time)."""
        ...

    async def items(self, import_id: UUID) -> list[ImportItem]: ...

    async def search(self, owner_id: str, limit: int, offset: int) -> Page[ImportRecord]:
        """The owner's imports, newest first (``at``, then ``import_id``, descending)."""
        ...

    async def mark_undone(self, import_id: UUID, at: datetime) -> None: ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` imports recorded before ``before``, with their items;
        returns how many imports."""
        ...


class PersonalData(Protocol):
    """Copies of a student's personal data outside the student row (§10 erasure)."""

    async def forget(self, student_id: UUID, former: Sequence[str]) -> None:
        """Remove every copy of ``former`` (the student's former names and email) tied to
        the student: suggestions' reasons, import history's before-images (cleared), and
        outbox rows (published ones deleted, unpublished ones rewritten with erased values
        under the same event id)."""
        ...


@frozen
class FeedRead:
    """Entries of the change log after a position, and the reader's snapshot (taken before the
    entries were read: what the next position stands on)."""

    entries: list[LoggedChange]
    snapshot: str


class ChangeLog(Protocol):
    """The change feed's log (contract §9.3): one entry per object at its latest change,
    written in the transaction of the change (see :mod:`class_core.changes`)."""

    async def write(self, changes: Mapping[ChangeKey, PendingChange]) -> None:
        """Record the changes of the current transaction (the unit of work calls this at
        commit). An upsert's owner and version are those of the object's row."""
        ...

    async def cursor_key(self) -> bytes:
        """The key cursors are signed with (the same for every process of one store)."""
        ...

    async def position(self, owner_id: str) -> FeedPosition:
        """Where a new reader of the owner's feed starts: after everything committed now."""
        ...

    async def read(self, owner_id: str, after: FeedPosition, limit: int) -> FeedRead:
        """The owner's entries after ``after`` in ``seq`` order, at most ``limit``."""
        ...

    async def load(
        self, owner_id: str, class_ids: Collection[UUID], student_ids: Collection[UUID]
    ) -> tuple[dict[UUID, SchoolClass], dict[UUID, Student]]:
        """The owner's classes (with ``student_count``) and students (with ``class_ids``)
        among the ids, as ``GET`` reads them: one query per kind."""
        ...

    async def purge(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the oldest entries written before ``before``."""
        ...


class Outbox(Protocol):
    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        """Record events inside the current transaction."""
        ...


class EnvelopeRenderer(Protocol):
    """The outbox's wire format (implemented at the edge: ``adapters_sql.envelopes``).

    A unit of work renders each recorded event once, at commit, and stores the text: the
    event id and bytes never change across relay retries. The core holds no JSON."""

    def render(
        self,
        event: DomainEvent,
        *,
        event_id: UUID,
        correlation_id: UUID,
        at: datetime,
        metadata: Mapping[str, Any] | None = None,
    ) -> OutboxMessage:
        """The event as an outbox message: topic and key (§5.2), headers and the §5.1
        envelope's text with ``metadata`` (by default :func:`~class_core.events.
        envelope_metadata`) and the current trace context as a ``traceparent`` header."""
        ...

    def erase(self, payload: str, student_id: UUID, former: Sequence[str]) -> str | None:
        """A stored envelope rewritten for an erased student (§10, by
        :func:`~class_core.privacy.scrub_data`; same event id), or ``None`` when it carries
        none of the student's personal data."""
        ...


class Inbox(Protocol):
    async def claim(self, consumer: str, message_id: str) -> bool:
        """Record a consumed message; ``False`` when it was already processed."""
        ...


class UnitOfWork(Protocol):
    """One transaction: the repositories share it; leaving without ``commit`` rolls back."""

    @property
    def classes(self) -> ClassRepository: ...

    @property
    def students(self) -> StudentRepository: ...

    @property
    def batches(self) -> BatchRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def inbox(self) -> Inbox: ...

    @property
    def history(self) -> StudentHistory: ...

    @property
    def personal_data(self) -> PersonalData: ...

    @property
    def imports(self) -> ImportHistory: ...

    @property
    def changes(self) -> ChangeLog: ...

    def collect(self, aggregate: Aggregate) -> None:
        """Have :meth:`commit` pull what ``aggregate`` recorded (``Aggregate.pull_recorded``,
        ``pull_history``): its events, each under the correlation id it was recorded under, go
        to the outbox, its history entries to :attr:`history`, in the same transaction."""
        ...

    def record(
        self, events: Sequence[DomainEvent], correlation_id: UUID, at: datetime
    ) -> list[TeacherNotification]:
        """Record events already pulled from their aggregates (``Aggregate.pull_events``: the
        roster import's chunk, pulled as it is planned), under ``correlation_id`` (the one
        they were recorded under); ids fixed now. :meth:`commit` writes them to
        the outbox in the same transaction. Returns the teacher notifications among them."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> list[TeacherNotification]:
        """Pull what the collected aggregates recorded, write every recorded event to the
        outbox, then commit; returns the teacher notifications among the events, to be pushed
        now that they are committed."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class RealtimeNotifier(Protocol):
    """Best-effort push of teacher notifications after commit; must never block or raise."""

    def publish(self, notifications: Sequence[TeacherNotification]) -> None: ...


class NullNotifier:
    """No real-time channel configured."""

    def publish(self, notifications: Sequence[TeacherNotification]) -> None:
        return None


@frozen
class StoredOutboxMessage:
    """An unpublished outbox row as the relay sees it."""

    seq: int
    message: OutboxMessage
    attempts: int


@frozen
class OutboxStatus:
    pending: int
    dead: int
    published: int
    oldest_pending_age_seconds: float | None


class OutboxStore(Protocol):
    """What an outbox relay needs from storage (used outside any unit of work)."""

    def leadership(self) -> AbstractAsyncContextManager[bool]:
        """Hold relay leadership while inside; yields ``False`` when another relay leads."""
        ...

    async def fetch_ready(self, now: datetime, limit: int) -> list[StoredOutboxMessage]:
        """Unpublished, not dead, due rows, oldest first. A row whose key has an earlier
        unpublished row that is dead or waiting for its retry is held back (order per key)."""
        ...

    async def mark_published(self, seqs: Collection[int], at: datetime) -> None: ...

    async def record_failure(
        self, seq: int, error: str, next_attempt_at: datetime, dead: bool
    ) -> None: ...

    async def status(self, now: datetime) -> OutboxStatus: ...

    async def retry_dead(self, now: datetime) -> int:
        """Put dead rows back in line (attempts reset); returns how many."""
        ...

    async def purge_published(self, before: datetime) -> int: ...

    async def purge_inbox(self, before: datetime) -> int:
        """Forget consumed message ids processed before ``before`` (the inbox, kept for
        ``OUTBOX_RETENTION_DAYS``: a redelivery older than that is not recognised); returns
        how many."""
        ...
