"""In-memory implementation of every storage port."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import attrs

from class_core.changes import (
    ChangeKey,
    FeedPolicy,
    FeedPosition,
    LoggedChange,
    PendingChange,
    changes_of,
    with_touched,
)
from class_core.clock import Clock, SystemClock
from class_core.errors import (
    DuplicateExternalIdError,
    DuplicateStudentEmailError,
    StudentErasedError,
)
from class_core.events import DomainEvent, OutboxMessage, TeacherNotification
from class_core.import_records import ImportItem, ImportRecord
from class_core.model import (
    Aggregate,
    Association,
    Batch,
    BatchStatus,
    BatchSummary,
    HistoryEntry,
    Page,
    SchoolClass,
    Student,
    ValidationStatus,
)
from class_core.ports import (
    EnvelopeRenderer,
    FeedRead,
    OutboxStatus,
    RealtimeNotifier,
    StoredOutboxMessage,
)
from class_core.privacy import scrub_reasons
from class_core.queries import BatchQuery, ClassQuery, StudentQuery
from class_core.recording import RecordedEvents
from class_core.runtime import MatchingPolicy, Runtime
from class_core.text import search_key

T = TypeVar("T")


@attrs.define
class _OutboxRow:
    seq: int
    message: OutboxMessage
    attempts: int = 0
    next_attempt_at: datetime | None = None
    published_at: datetime | None = None
    dead_at: datetime | None = None
    last_error: str | None = None


@attrs.define
class _Tables:
    classes: dict[UUID, SchoolClass] = attrs.field(factory=dict)
    students: dict[UUID, Student] = attrs.field(factory=dict)
    memberships: set[tuple[UUID, UUID]] = attrs.field(factory=set)
    placeholders: dict[UUID, UUID] = attrs.field(factory=dict)
    batches: dict[UUID, Batch] = attrs.field(factory=dict)
    associations: dict[UUID, Association] = attrs.field(factory=dict)
    outbox: dict[int, _OutboxRow] = attrs.field(factory=dict)
    inbox: dict[tuple[str, str], datetime] = attrs.field(factory=dict)
    """(consumer, message id) → when it was processed (wall clock, like the SQL default)."""
    history: list[HistoryEntry] = attrs.field(factory=list)
    imports: dict[UUID, ImportRecord] = attrs.field(factory=dict)
    import_items: dict[UUID, list[ImportItem]] = attrs.field(factory=dict)
    changes: dict[ChangeKey, tuple[str, LoggedChange]] = attrs.field(factory=dict)
    """The change feed's log: (entity, id) → (owner, its latest entry)."""
    last_change_seq: int = 0

    def copy(self) -> _Tables:
        return _Tables(
            dict(self.classes),
            dict(self.students),
            set(self.memberships),
            dict(self.placeholders),
            dict(self.batches),
            dict(self.associations),
            {k: attrs.evolve(v) for k, v in self.outbox.items()},
            dict(self.inbox),
            list(self.history),
            {k: attrs.evolve(v) for k, v in self.imports.items()},
            {k: list(v) for k, v in self.import_items.items()},
            dict(self.changes),
            self.last_change_seq,
        )


class _NoRenderer:
    """What an :class:`InMemoryStore` built without a renderer has: fine until an event must
    be written to (or erased from) its outbox."""

    def _missing(self) -> RuntimeError:
        return RuntimeError(
            "this InMemoryStore has no envelope renderer to write events to its outbox: "
            "build it with InMemoryStore(renderer=...), e.g. adapters_sql.envelopes.ENVELOPES"
        )

    def render(
        self,
        event: DomainEvent,
        *,
        event_id: UUID,
        correlation_id: UUID,
        at: datetime,
        metadata: Mapping[str, Any] | None = None,
    ) -> OutboxMessage:
        raise self._missing()

    def erase(self, payload: str, student_id: UUID, former: Sequence[str]) -> str | None:
        raise self._missing()


class InMemoryStore:
    """The shared state of every in-memory unit of work (one process).

    ``renderer`` renders recorded events as the outbox stores them (the core holds no wire
    format: whoever builds the store passes the adapter's, e.g.
    ``adapters_sql.envelopes.ENVELOPES``); without one, a commit that records events fails
    and changes nothing."""

    def __init__(self, renderer: EnvelopeRenderer | None = None) -> None:
        self.renderer: EnvelopeRenderer = renderer if renderer is not None else _NoRenderer()
        self.tables = _Tables()
        self.lock = asyncio.Lock()
        self.next_seq = 1
        self.commits = 0
        self.outbox_added = asyncio.Event()
        self.cursor_key = secrets.token_bytes(32)  # this store's cursors only (§9.3)

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    def reader(self) -> InMemoryUnitOfWork:
        """A read-only unit of work (``Runtime.reads``): it cannot commit."""
        return InMemoryUnitOfWork(self, read_only=True)

    __call__ = unit_of_work


def _copy(obj: T) -> T:
    return attrs.evolve(obj)  # type: ignore[misc]


def _student_key(s: Student) -> tuple[str, str, UUID]:
    return (s.last_name, s.first_name, s.id)


class _Repo:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def t(self) -> _Tables:
        return self._uow.tables


class InMemoryClassRepository(_Repo):
    def _count(self, class_id: UUID) -> int:
        t = self.t
        return sum(
            1
            for c, s in t.memberships
            if c == class_id and s in t.students and not t.students[s].is_placeholder
        )

    def _out(self, cls: SchoolClass, with_count: bool = True) -> SchoolClass:
        out = _copy(cls)
        out.student_count = self._count(cls.id) if with_count else 0
        return out

    def _external_id_taken(self, cls: SchoolClass) -> bool:
        return cls.external_id is not None and any(
            c.owner_id == cls.owner_id and c.external_id == cls.external_id and c.id != cls.id
            for c in self.t.classes.values()
        )

    async def add(self, cls: SchoolClass) -> None:
        if self._external_id_taken(cls):
            raise DuplicateExternalIdError()
        self.t.classes[cls.id] = _copy(cls)

    async def get(self, owner_id: str, class_id: UUID, *, lock: bool = False) -> SchoolClass | None:
        # Units of work run one at a time here: every read is as good as locked.
        cls = self.t.classes.get(class_id)
        if cls is None or cls.owner_id != owner_id:
            return None
        return self._out(cls)

    async def get_unscoped(self, class_id: UUID) -> SchoolClass | None:
        cls = self.t.classes.get(class_id)
        return self._out(cls) if cls is not None else None

    async def get_many(
        self, owner_id: str, class_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, SchoolClass]:
        return {
            c: self._out(self.t.classes[c], with_count=False)
            for c in set(class_ids)
            if c in self.t.classes and self.t.classes[c].owner_id == owner_id
        }

    async def get_unscoped_many(self, class_ids: Collection[UUID]) -> dict[UUID, SchoolClass]:
        return {
            c: self._out(self.t.classes[c], with_count=False)
            for c in set(class_ids)
            if c in self.t.classes
        }

    async def search(self, owner_id: str, query: ClassQuery) -> Page[SchoolClass]:
        found = [
            c
            for c in self.t.classes.values()
            if c.owner_id == owner_id
            and (query.q is None or query.q in search_key(c.name))
            and (query.course_code is None or c.course_code == query.course_code)
            and (query.updated_since is None or c.updated_at >= query.updated_since)
            and (query.status is None or c.status.value == query.status)
            and (query.external_id is None or c.external_id == query.external_id)
        ]
        found.sort(key=lambda c: (c.created_at, c.id), reverse=True)
        window = found[query.offset : query.offset + query.limit]
        return Page(tuple(self._out(c) for c in window), len(found), query.limit, query.offset)

    async def find_by_name(self, owner_id: str, name: str) -> list[SchoolClass]:
        wanted = name.strip().casefold()
        return [
            self._out(c)
            for c in self.t.classes.values()
            if c.owner_id == owner_id and c.name.strip().casefold() == wanted
        ]

    async def find_by_names(
        self, owner_id: str, names: Collection[str]
    ) -> dict[str, list[SchoolClass]]:
        found: dict[str, list[SchoolClass]] = {}
        for name in {n.strip().casefold() for n in names}:
            classes = await self.find_by_name(owner_id, name)
            if classes:
                found[name] = classes
        return found

    async def lock_names(self, owner_id: str) -> None:
        # Units of work run one at a time here: nobody else can be creating classes.
        return None

    async def update(self, cls: SchoolClass) -> None:
        if self._external_id_taken(cls):
            raise DuplicateExternalIdError()
        stored = self.t.classes[cls.id]
        self.t.classes[cls.id] = attrs.evolve(
            stored,
            name=cls.name,
            course_code=cls.course_code,
            updated_at=cls.updated_at,
            version=cls.version,
            external_id=cls.external_id,
            status=cls.status,
            archived_at=cls.archived_at,
        )

    async def delete(self, class_id: UUID) -> None:
        if any(c == class_id for c, _ in self.t.memberships):
            raise RuntimeError("class still has memberships")  # the SQL FK would refuse too
        if any(b.class_id == class_id for b in self.t.batches.values()):
            raise RuntimeError("class still has batches")
        del self.t.classes[class_id]


class InMemoryStudentRepository(_Repo):
    def _class_ids(self, student_id: UUID) -> tuple[UUID, ...]:
        return tuple(sorted(c for c, s in self.t.memberships if s == student_id))

    def _out(self, student: Student) -> Student:
        out = _copy(student)
        out.class_ids = self._class_ids(student.id)
        return out

    def _email_taken(self, student: Student) -> bool:
        return student.email is not None and any(
            s.owner_id == student.owner_id and s.email == student.email and s.id != student.id
            for s in self.t.students.values()
        )

    def _external_id_taken(self, student: Student) -> bool:
        return student.external_id is not None and any(
            s.owner_id == student.owner_id
            and s.external_id == student.external_id
            and s.id != student.id
            for s in self.t.students.values()
        )

    async def add(self, student: Student) -> None:
        await self.add_many([student])

    async def add_many(self, students: Sequence[Student]) -> None:
        for student in students:
            if self._email_taken(student):
                raise DuplicateStudentEmailError()
            if self._external_id_taken(student):
                raise DuplicateExternalIdError()
            self.t.students[student.id] = attrs.evolve(student, class_ids=())
            self.t.memberships.update((c, student.id) for c in student.class_ids)

    async def get(self, owner_id: str, student_id: UUID, *, lock: bool = False) -> Student | None:
        s = self.t.students.get(student_id)
        if s is None or s.owner_id != owner_id:
            return None
        return self._out(s)

    async def get_unscoped_many(self, student_ids: Collection[UUID]) -> dict[UUID, Student]:
        return {i: self._out(self.t.students[i]) for i in set(student_ids) if i in self.t.students}

    async def get_many(
        self, owner_id: str, student_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, Student]:
        return {
            i: self._out(self.t.students[i])
            for i in set(student_ids)
            if i in self.t.students and self.t.students[i].owner_id == owner_id
        }

    async def by_emails(
        self, owner_id: str, emails: Collection[str], *, lock: bool = False
    ) -> dict[str, Student]:
        wanted = set(emails)
        return {
            s.email: self._out(s)
            for s in self.t.students.values()
            if s.owner_id == owner_id and s.email is not None and s.email in wanted
        }

    async def by_external_ids(
        self, owner_id: str, external_ids: Collection[str]
    ) -> dict[str, Student]:
        wanted = set(external_ids)
        return {
            s.external_id: self._out(s)
            for s in self.t.students.values()
            if s.owner_id == owner_id and s.external_id is not None and s.external_id in wanted
        }

    async def search(self, owner_id: str, query: StudentQuery) -> Page[Student]:
        members = (
            {s for c, s in self.t.memberships if c == query.class_id}
            if query.class_id is not None
            else None
        )
        found = [
            s
            for s in self.t.students.values()
            if s.owner_id == owner_id
            and (members is None or s.id in members)
            and (
                query.q is None
                or query.q
                in search_key(s.first_name, s.last_name, s.legal_full_name, s.email, *s.aliases)
            )
            and (query.updated_since is None or s.updated_at >= query.updated_since)
            and (query.external_id is None or s.external_id == query.external_id)
        ]
        found.sort(key=_student_key)
        window = found[query.offset : query.offset + query.limit]
        return Page(tuple(self._out(s) for s in window), len(found), query.limit, query.offset)

    async def update(self, student: Student) -> None:
        await self.update_many([student])

    async def update_many(self, students: Sequence[Student]) -> None:
        for student in students:
            if self._email_taken(student):
                raise DuplicateStudentEmailError()
            if self._external_id_taken(student):
                raise DuplicateExternalIdError()
            stored = self.t.students[student.id]
            if stored.is_erased:
                raise StudentErasedError()
            self.t.students[student.id] = attrs.evolve(
                stored,
                first_name=student.first_name,
                last_name=student.last_name,
                legal_full_name=student.legal_full_name,
                email=student.email,
                aliases=student.aliases,
                updated_at=student.updated_at,
                version=student.version,
                protected_identity=student.protected_identity,
                erased_at=student.erased_at,
                external_id=student.external_id,
            )

    async def delete(self, student_id: UUID) -> None:
        if any(s == student_id for _, s in self.t.memberships):
            raise RuntimeError("student still has memberships")
        del self.t.students[student_id]

    async def add_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None:
        self.t.memberships.update(pairs)

    async def remove_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None:
        self.t.memberships.difference_update(pairs)

    async def remove_class_memberships(self, class_id: UUID) -> list[UUID]:
        pairs = {p for p in self.t.memberships if p[0] == class_id}
        self.t.memberships.difference_update(pairs)
        return sorted(s for _, s in pairs)

    async def touch(self, student_ids: Collection[UUID], at: datetime) -> None:
        # A version bump without an event of its own: the change feed must hear of it.
        self._uow.touched.update(dict.fromkeys(student_ids, at))
        for i in student_ids:
            stored = self.t.students[i]
            self.t.students[i] = attrs.evolve(stored, updated_at=at, version=stored.version + 1)

    async def roster(self, class_id: UUID) -> list[Student]:
        members = [
            self.t.students[s]
            for c, s in self.t.memberships
            if c == class_id and not self.t.students[s].is_placeholder
        ]
        return [self._out(s) for s in sorted(members, key=_student_key)]

    async def member_emails(self, class_id: UUID) -> dict[UUID, str]:
        found: dict[UUID, str] = {}
        for c, s in self.t.memberships:
            student = self.t.students[s]
            if c == class_id and not student.is_placeholder and student.email is not None:
                found[s] = student.email
        return found

    async def members_among(self, class_id: UUID, student_ids: Collection[UUID]) -> set[UUID]:
        return {
            s
            for s in student_ids
            if (class_id, s) in self.t.memberships and not self.t.students[s].is_placeholder
        }

    async def members_by_class(
        self, candidates: Mapping[UUID, Collection[UUID]]
    ) -> dict[UUID, set[UUID]]:
        return {c: await self.members_among(c, ids) for c, ids in candidates.items()}

    async def placeholder(self, class_id: UUID) -> Student | None:
        sid = self.t.placeholders.get(class_id)
        return self._out(self.t.students[sid]) if sid is not None else None

    async def placeholders(self, class_ids: Collection[UUID]) -> dict[UUID, Student]:
        return {
            c: self._out(self.t.students[self.t.placeholders[c]])
            for c in set(class_ids)
            if c in self.t.placeholders
        }

    async def add_placeholder(self, student: Student, class_id: UUID) -> bool:
        if class_id in self.t.placeholders:
            return False
        await self.add_many([attrs.evolve(student, class_ids=(class_id,), is_placeholder=True)])
        self.t.placeholders[class_id] = student.id
        return True


class InMemoryBatchRepository(_Repo):
    async def get(self, batch_id: UUID, *, lock: bool = False) -> Batch | None:
        b = self.t.batches.get(batch_id)
        return _copy(b) if b is not None else None

    async def add(self, batch: Batch) -> None:
        self.t.batches[batch.batch_id] = _copy(batch)

    async def update(self, batch: Batch) -> None:
        self.t.batches[batch.batch_id] = _copy(batch)

    async def update_many(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            await self.update(batch)

    async def associations(self, batch_id: UUID) -> list[Association]:
        found = [a for a in self.t.associations.values() if a.batch_id == batch_id]
        found.sort(key=lambda a: (a.created_at, a.essay_id))
        return [_copy(a) for a in found]

    async def associations_of(self, batch_ids: Collection[UUID]) -> dict[UUID, list[Association]]:
        wanted = set(batch_ids)
        found = [a for a in self.t.associations.values() if a.batch_id in wanted]
        found.sort(key=lambda a: (a.created_at, a.essay_id))
        out: dict[UUID, list[Association]] = {}
        for a in found:
            out.setdefault(a.batch_id, []).append(_copy(a))
        return out

    async def associations_by_essay(self, essay_ids: Collection[UUID]) -> dict[UUID, Association]:
        return {
            e: _copy(self.t.associations[e]) for e in set(essay_ids) if e in self.t.associations
        }

    async def add_associations(self, items: Sequence[Association]) -> None:
        for a in items:
            if a.essay_id in self.t.associations:
                raise RuntimeError("essay already associated")  # unique in SQL too
            self.t.associations[a.essay_id] = _copy(a)

    async def update_associations(self, items: Sequence[Association]) -> None:
        for a in items:
            self.t.associations[a.essay_id] = _copy(a)

    async def update_decisions(self, items: Sequence[Association]) -> None:
        for a in items:
            stored = self.t.associations.get(a.essay_id)
            if stored is None:
                continue  # an UPDATE of no row
            self.t.associations[a.essay_id] = attrs.evolve(
                stored,
                student_id=a.student_id,
                validation_status=a.validation_status,
                validation_method=a.validation_method,
                validated_by=a.validated_by,
                validated_at=a.validated_at,
                updated_at=a.updated_at,
            )

    async def earliest_pending_deadline(self) -> datetime | None:
        pending = [b.deadline for b in self.t.batches.values() if b.status is BatchStatus.PENDING]
        return min(pending, default=None)

    async def claim_due(self, now: datetime, limit: int) -> list[Batch]:
        due = [
            b
            for b in self.t.batches.values()
            if b.status is BatchStatus.PENDING and b.deadline <= now
        ]
        due.sort(key=lambda b: (b.deadline, b.batch_id))
        return [_copy(b) for b in due[:limit]]

    async def associations_of_student(self, student_id: UUID) -> list[Association]:
        found = [
            a
            for a in self.t.associations.values()
            if student_id in (a.student_id, a.suggested_student_id)
        ]
        found.sort(key=lambda a: (a.created_at, a.essay_id))
        return [_copy(a) for a in found]

    async def class_has_batches(self, class_id: UUID) -> bool:
        return any(b.class_id == class_id for b in self.t.batches.values())

    async def student_in_use(self, student_id: UUID) -> bool:
        return any(
            student_id in (a.student_id, a.suggested_student_id)
            for a in self.t.associations.values()
        )

    async def students_in_use(self, student_ids: Collection[UUID]) -> set[UUID]:
        wanted = set(student_ids)
        named = {a.student_id for a in self.t.associations.values()} | {
            a.suggested_student_id for a in self.t.associations.values()
        }
        return {s for s in wanted if s in named}

    async def class_info(self, batch_ids: Collection[UUID]) -> dict[UUID, tuple[UUID, str]]:
        out: dict[UUID, tuple[UUID, str]] = {}
        for b in set(batch_ids):
            batch = self.t.batches.get(b)
            if batch is not None:
                out[b] = (batch.class_id, self.t.classes[batch.class_id].name)
        return out

    async def pending_associations(self, limit: int) -> list[Association]:
        found = [a for a in self.t.associations.values() if a.is_pending]
        found.sort(key=lambda a: (a.created_at, a.essay_id))
        return [_copy(a) for a in found[:limit]]

    async def list_for_owner(self, owner_id: str, query: BatchQuery) -> Page[BatchSummary]:
        found = [
            b
            for b in self.t.batches.values()
            if b.owner_id == owner_id
            and (query.status is None or b.status.value == query.status)
            and (query.class_id is None or b.class_id == query.class_id)
        ]
        found.sort(key=lambda b: (b.deadline, b.batch_id))
        window = found[query.offset : query.offset + query.limit]
        statuses: dict[UUID, list[ValidationStatus]] = {b.batch_id: [] for b in window}
        for a in self.t.associations.values():
            if a.batch_id in statuses:
                statuses[a.batch_id].append(a.validation_status)
        items = []
        for b in window:
            st = statuses[b.batch_id]
            items.append(
                BatchSummary(
                    batch_id=b.batch_id,
                    class_id=b.class_id,
                    class_name=self.t.classes[b.class_id].name,
                    course_code=b.course_code,
                    status=b.status,
                    deadline=b.deadline,
                    essay_count=len(st),
                    pending=st.count(ValidationStatus.PENDING),
                    confirmed=st.count(ValidationStatus.CONFIRMED)
                    + st.count(ValidationStatus.TIMEOUT_CONFIRMED),
                    rejected=st.count(ValidationStatus.REJECTED),
                    created_at=b.created_at,
                )
            )
        return Page(tuple(items), len(found), query.limit, query.offset)


class InMemoryOutbox(_Repo):
    async def add(self, messages: Sequence[OutboxMessage]) -> None:
        store = self._uow.store
        for m in messages:
            seq = store.next_seq
            store.next_seq += 1
            self.t.outbox[seq] = _OutboxRow(seq, m, next_attempt_at=m.created_at)
        self._uow.added_outbox = True


class InMemoryStudentHistory(_Repo):
    async def add(self, entries: Sequence[HistoryEntry]) -> None:
        self.t.history.extend(entries)

    async def of_student(self, student_id: UUID) -> list[HistoryEntry]:
        return [e for e in self.t.history if e.student_id == student_id]

    async def delete_student(self, student_id: UUID) -> None:
        self.t.history = [e for e in self.t.history if e.student_id != student_id]


class InMemoryImportHistory(_Repo):
    async def add(self, record: ImportRecord) -> None:
        self.t.imports[record.import_id] = attrs.evolve(record)

    async def extend(self, import_id: UUID, created: int, updated: int, removed: int) -> None:
        r = self.t.imports[import_id]
        self.t.imports[import_id] = attrs.evolve(
            r, created=r.created + created, updated=r.updated + updated, removed=r.removed + removed
        )

    async def add_items(self, items: Sequence[ImportItem]) -> None:
        for item in items:
            self.t.import_items.setdefault(item.import_id, []).append(item)

    async def get(
        self, owner_id: str | None, import_id: UUID, *, lock: bool = False
    ) -> ImportRecord | None:
        r = self.t.imports.get(import_id)
        if r is None or owner_id not in (None, r.owner_id):
            return None
        return attrs.evolve(r)

    async def items(self, import_id: UUID) -> list[ImportItem]:
        return list(self.t.import_items.get(import_id, []))

    async def search(self, owner_id: str, limit: int, offset: int) -> Page[ImportRecord]:
        found = [r for r in self.t.imports.values() if r.owner_id == owner_id]
        found.sort(key=lambda r: (r.at, r.import_id), reverse=True)
        window = found[offset : offset + limit]
        return Page(tuple(attrs.evolve(r) for r in window), len(found), limit, offset)

    async def mark_undone(self, import_id: UUID, at: datetime) -> None:
        self.t.imports[import_id] = attrs.evolve(self.t.imports[import_id], undone_at=at)

    async def purge(self, before: datetime, limit: int) -> int:
        old = sorted((r for r in self.t.imports.values() if r.at < before), key=lambda r: r.at)[
            :limit
        ]
        for r in old:
            del self.t.imports[r.import_id]
            self.t.import_items.pop(r.import_id, None)
        return len(old)


class InMemoryPersonalData(_Repo):
    async def forget(self, student_id: UUID, former: Sequence[str]) -> None:
        t = self.t
        for import_id, items in list(t.import_items.items()):
            if any(i.student_id == student_id and i.before is not None for i in items):
                t.import_items[import_id] = [
                    attrs.evolve(i, before=None) if i.student_id == student_id else i for i in items
                ]
        for essay_id, a in list(t.associations.items()):
            if student_id in (a.student_id, a.suggested_student_id):
                reasons = scrub_reasons(a.match_reasons, former)
                if reasons != a.match_reasons:
                    t.associations[essay_id] = attrs.evolve(a, match_reasons=reasons)
        for seq, row in list(t.outbox.items()):
            rewritten = self._uow.store.renderer.erase(row.message.payload, student_id, former)
            if rewritten is None:
                continue
            if row.published_at is not None:
                del t.outbox[seq]
            else:
                row.message = attrs.evolve(row.message, payload=rewritten)


class InMemoryChangeLog(_Repo):
    """The change feed's log (one process: writers commit one at a time, in ``seq`` order,
    so a position needs no snapshot)."""

    async def write(self, changes: Mapping[ChangeKey, PendingChange]) -> None:
        t = self.t
        for (entity, object_id), change in sorted(changes.items()):
            owner = change.owner_id
            if owner is None:  # a student touched without an event
                found = t.students.get(object_id)
                if found is None:
                    continue
                owner = found.owner_id
            t.last_change_seq += 1
            entry = LoggedChange(
                t.last_change_seq, entity, object_id, change.op, change.version, change.at
            )
            t.changes[(entity, object_id)] = (owner, entry)

    async def cursor_key(self) -> bytes:
        return self._uow.store.cursor_key

    def _owned(self, owner_id: str) -> list[LoggedChange]:
        return sorted(
            (e for owner, e in self.t.changes.values() if owner == owner_id),
            key=lambda e: e.seq,
        )

    async def position(self, owner_id: str) -> FeedPosition:
        return FeedPosition(max((e.seq for e in self._owned(owner_id)), default=0))

    async def read(self, owner_id: str, after: FeedPosition, limit: int) -> FeedRead:
        return FeedRead([e for e in self._owned(owner_id) if e.seq > after.seq][:limit], "")

    async def load(
        self, owner_id: str, class_ids: Collection[UUID], student_ids: Collection[UUID]
    ) -> tuple[dict[UUID, SchoolClass], dict[UUID, Student]]:
        return (
            {
                i: c
                for i in class_ids
                if (c := await self._uow.classes.get(owner_id, i)) is not None
            },
            {
                i: s
                for i in student_ids
                if (s := await self._uow.students.get(owner_id, i)) is not None
            },
        )

    async def purge(self, before: datetime, limit: int) -> int:
        t = self.t
        old = sorted((e.seq, key) for key, (_, e) in t.changes.items() if e.at < before)[:limit]
        for _, key in old:
            del t.changes[key]
        return len(old)


class InMemoryInbox(_Repo):
    async def claim(self, consumer: str, message_id: str) -> bool:
        key = (consumer, message_id)
        if key in self.t.inbox:
            return False
        self.t.inbox[key] = datetime.now(UTC)
        return True


class InMemoryUnitOfWork:
    """One serialised transaction over :class:`InMemoryStore`; rolls back unless committed."""

    def __init__(self, store: InMemoryStore, *, read_only: bool = False) -> None:
        self.store = store
        self.read_only = read_only
        self.tables = store.tables
        self.classes = InMemoryClassRepository(self)
        self.students = InMemoryStudentRepository(self)
        self.batches = InMemoryBatchRepository(self)
        self.outbox = InMemoryOutbox(self)
        self.inbox = InMemoryInbox(self)
        self.history = InMemoryStudentHistory(self)
        self.personal_data = InMemoryPersonalData(self)
        self.imports = InMemoryImportHistory(self)
        self.changes = InMemoryChangeLog(self)
        self.touched: dict[UUID, datetime] = {}
        self.added_outbox = False
        self._committed = False
        self._recorded = RecordedEvents(store.renderer)

    def collect(self, aggregate: Aggregate) -> None:
        self._recorded.collect(aggregate)

    def record(
        self, events: Sequence[DomainEvent], correlation_id: UUID, at: datetime
    ) -> list[TeacherNotification]:
        return self._recorded.record(events, correlation_id, at)

    async def __aenter__(self) -> Self:
        await self.store.lock.acquire()
        self.tables = self.store.tables.copy()
        self._committed = False
        self.added_outbox = False
        self.touched = {}
        self._recorded.take()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store.lock.release()
        if self._committed and self.added_outbox:
            self.store.outbox_added.set()

    async def commit(self) -> list[TeacherNotification]:
        if self.read_only:
            raise RuntimeError("a read-only unit of work does not commit")
        history = self._recorded.pull_collected()
        if history:
            await self.history.add(history)
        notes = self._recorded.notifications()
        changes = with_touched(changes_of(self._recorded.events()), self.touched)
        if changes:
            await self.changes.write(changes)
        await self._recorded.write_to(self.outbox)
        self.store.tables = self.tables
        self.store.commits += 1
        self._committed = True
        return notes


class InMemoryOutboxStore:
    """The relay's view of the in-memory outbox (one process: always the leader)."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    @asynccontextmanager
    async def leadership(self) -> AsyncIterator[bool]:
        yield True

    async def fetch_ready(self, now: datetime, limit: int) -> list[StoredOutboxMessage]:
        async with self._store.lock:
            blocked: set[tuple[str, str]] = set()
            ready: list[StoredOutboxMessage] = []
            for seq in sorted(self._store.tables.outbox):
                row = self._store.tables.outbox[seq]
                if row.published_at is not None:
                    continue
                key = (row.message.topic, row.message.key)
                waiting = row.dead_at is not None or (
                    row.next_attempt_at is not None and row.next_attempt_at > now
                )
                if key in blocked or waiting:
                    blocked.add(key)
                    continue
                ready.append(StoredOutboxMessage(seq, row.message, row.attempts))
                if len(ready) >= limit:
                    break
            return ready

    async def mark_published(self, seqs: Collection[int], at: datetime) -> None:
        async with self._store.lock:
            for seq in seqs:
                self._store.tables.outbox[seq].published_at = at

    async def record_failure(
        self, seq: int, error: str, next_attempt_at: datetime, dead: bool
    ) -> None:
        async with self._store.lock:
            row = self._store.tables.outbox[seq]
            row.attempts += 1
            row.last_error = error
            row.next_attempt_at = next_attempt_at
            if dead:
                row.dead_at = next_attempt_at

    async def status(self, now: datetime) -> OutboxStatus:
        async with self._store.lock:
            rows = list(self._store.tables.outbox.values())
        pending = [r for r in rows if r.published_at is None and r.dead_at is None]
        oldest = min((r.message.created_at for r in pending), default=None)
        return OutboxStatus(
            pending=len(pending),
            dead=sum(1 for r in rows if r.dead_at is not None and r.published_at is None),
            published=sum(1 for r in rows if r.published_at is not None),
            oldest_pending_age_seconds=(now - oldest).total_seconds() if oldest else None,
        )

    async def retry_dead(self, now: datetime) -> int:
        async with self._store.lock:
            dead = [r for r in self._store.tables.outbox.values() if r.dead_at is not None]
            for r in dead:
                r.dead_at = None
                r.attempts = 0
                r.next_attempt_at = now
            return len(dead)

    async def purge_published(self, before: datetime) -> int:
        async with self._store.lock:
            old = [
                s
                for s, r in self._store.tables.outbox.items()
                if r.published_at is not None and r.published_at < before
            ]
            for s in old:
                del self._store.tables.outbox[s]
            return len(old)

    async def purge_inbox(self, before: datetime) -> int:
        async with self._store.lock:
            inbox = self._store.tables.inbox
            old = [k for k, at in inbox.items() if at < before]
            for k in old:
                del inbox[k]
            return len(old)

    def messages(self) -> list[OutboxMessage]:
        """Every message recorded so far, in order (for tests)."""
        return [self._store.tables.outbox[s].message for s in sorted(self._store.tables.outbox)]


class RecordingNotifier:
    """Keeps what would have been pushed to the real-time channel."""

    def __init__(self) -> None:
        self.sent: list[TeacherNotification] = []

    def publish(self, notifications: Sequence[TeacherNotification]) -> None:
        self.sent.extend(notifications)


def memory_runtime(
    store: InMemoryStore | None = None,
    clock: Clock | None = None,
    notifier: RealtimeNotifier | None = None,
    policy: MatchingPolicy | None = None,
    feed: FeedPolicy | None = None,
    *,
    renderer: EnvelopeRenderer | None = None,
) -> Runtime:
    """A :class:`Runtime` on the in-memory adapters (on a new :class:`InMemoryStore` with
    ``renderer`` unless ``store`` is given)."""
    store = store or InMemoryStore(renderer)
    return Runtime(
        uow=store.unit_of_work,
        clock=clock or SystemClock(),
        notifier=notifier or RecordingNotifier(),
        policy=policy or MatchingPolicy(),
        reads=store.reader,
        feed=feed or FeedPolicy(),
    )
