"""One contract for every storage adapter: the in-memory fakes and PostgreSQL.

Each test body runs on both (the ``backend`` fixture); what only a real database can show
(concurrency, locks, NOTIFY, outages) runs on PostgreSQL below.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import attrs
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import (
    OutboxWakeups,
    SqlOutboxStore,
    SqlUnitOfWorkFactory,
    build_sql_runtime,
    create_engine,
    ping,
    upgrade,
)
from adapters_sql.envelopes import ENVELOPES
from class_core import notifications
from class_core.errors import (
    CourseNotFoundError,
    DependencyUnavailableError,
    DuplicateExternalIdError,
    DuplicateStudentEmailError,
    MultipleCourseError,
    NotFoundError,
    ResourceInUseError,
    StudentErasedError,
)
from class_core.events import (
    ASSOCIATIONS_CONFIRMED,
    CLASS_CREATED,
    CLASS_DELETED,
    CLASS_UPDATED,
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
    ClassCreatedV1,
    DomainEvent,
    OutboxMessage,
)
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.model import (
    Batch,
    BatchStatus,
    SchoolClass,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.ports import OutboxStore, UnitOfWorkFactory
from class_core.queries import BatchQuery, ClassQuery, StudentQuery
from class_core.runtime import RequestContext, Runtime
from class_core.testing import (
    FixedClock,
    InMemoryOutboxStore,
    InMemoryStore,
    RecordingNotifier,
    memory_runtime,
)
from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    delete_class,
    get_class,
    get_roster,
    list_classes,
    set_class_archived,
    update_class,
)
from class_core.use_cases.matching import (
    ConfirmItem,
    IngestOutcome,
    confirm_associations,
    expire_due_batches,
    ingest_suggestions,
    move_deadline,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    delete_student,
    erase_student,
    get_student,
    list_students,
    update_student,
)

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
T1 = "teacher-1"
T2 = "teacher-2"


@dataclass
class Backend:
    name: str
    uow: UnitOfWorkFactory
    store: OutboxStore
    clock: FixedClock
    notifier: RecordingNotifier
    rt: Runtime
    engine: AsyncEngine | None = None  # the SQL backends'

    async def messages(self) -> list[OutboxMessage]:
        """Every unpublished outbox message, in order."""
        return [m.message for m in await self.store.fetch_ready(FAR_FUTURE, 100_000)]

    async def topics(self) -> list[str]:
        return [m.topic for m in await self.messages()]


def _memory_or_pg(request: pytest.FixtureRequest, name: str) -> Backend:
    clock = FixedClock()
    notifier = RecordingNotifier()
    if name == "memory":
        store = InMemoryStore(ENVELOPES)
        rt = memory_runtime(store, clock, notifier)
        return Backend(
            "memory", store.unit_of_work, InMemoryOutboxStore(store), clock, notifier, rt
        )
    engine: AsyncEngine = request.getfixturevalue("clean_pg")
    rt = build_sql_runtime(engine, clock=clock, notifier=notifier)
    return Backend("postgres", rt.uow, SqlOutboxStore(engine), clock, notifier, rt, engine)


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return _memory_or_pg(request, request.param)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}")
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["memory", "postgres", "sqlite"])
def any_backend(request: pytest.FixtureRequest) -> Backend:
    """``backend`` plus SQLite (the embedded default), for the statements that differ by
    dialect (the sweep's bulk reads and writes)."""
    if request.param != "sqlite":
        return _memory_or_pg(request, request.param)
    engine: AsyncEngine = request.getfixturevalue("sqlite_engine")
    clock, notifier = FixedClock(), RecordingNotifier()
    rt = build_sql_runtime(engine, clock=clock, notifier=notifier)
    return Backend("sqlite", rt.uow, SqlOutboxStore(engine), clock, notifier, rt, engine)


def ctx(user: str = T1) -> RequestContext:
    return RequestContext(user)


def data(message: OutboxMessage) -> dict[str, object]:
    envelope = json.loads(message.payload)
    assert envelope["event_id"] == str(message.event_id)
    assert envelope["event_type"] == message.topic
    result: dict[str, object] = envelope["data"]
    return result


def student_at(
    owner: str,
    first: str,
    last: str,
    at: datetime,
    email: str | None = None,
    class_ids: tuple[UUID, ...] = (),
) -> Student:
    return Student(uuid4(), owner, first, last, None, email, at, at, class_ids=class_ids)


async def new_class(
    b: Backend, name: str = "9A", course: str = "ENG5", owner: str = T1
) -> SchoolClass:
    return await create_class(b.rt, ctx(owner), CreateClass(name, [course]))


async def new_student(
    b: Backend,
    first: str = "Ada",
    last: str = "Lovelace",
    email: str | None = None,
    class_ids: tuple[UUID, ...] = (),
    owner: str = T1,
) -> Student:
    return await create_student(
        b.rt, ctx(owner), CreateStudent(PersonName(first, last), email, class_ids)
    )


def suggestions(
    batch_id: UUID, class_id: UUID, *essays: tuple[UUID, UUID | None, float]
) -> SuggestionsMessage:
    return SuggestionsMessage(
        message_id=str(uuid4()),
        correlation_id=uuid4(),
        batch_id=batch_id,
        class_id=class_id,
        course_code="ENG5",
        matches=tuple(
            EssayMatch(e, (Suggestion(s, c, ("name",)),) if s is not None else ())
            for e, s, c in essays
        ),
    )


# --------------------------------------------------------------------------- classes


async def test_class_is_stored_scoped_by_owner_and_announced(backend: Backend) -> None:
    b = backend
    cls = await new_class(b, "  Åsa 9A ")

    got = await get_class(b.rt, ctx(), cls.id)
    assert (got.name, got.course_code, got.student_count) == ("Åsa 9A", "ENG5", 0)
    assert got.created_at == b.clock.now()
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    with pytest.raises(NotFoundError):
        await get_class(b.rt, ctx(T2), cls.id)
    async with b.uow() as uow:
        assert await uow.classes.get(T2, cls.id) is None
        unscoped = await uow.classes.get_unscoped(cls.id)
        assert unscoped is not None
        assert unscoped.owner_id == T1
        assert await uow.classes.get_unscoped(uuid4()) is None
        assert set(await uow.classes.get_many(T1, [cls.id, uuid4()])) == {cls.id}
        assert await uow.classes.get_many(T2, [cls.id]) == {}

    messages = await b.messages()
    assert [(m.topic, m.key) for m in messages] == [
        (CLASS_CREATED, str(cls.id)),
        (TEACHER_NOTIFICATION, T1),
    ]
    created = data(messages[0])
    assert created["class_designation"] == "Åsa 9A"
    assert created["course_codes"] == ["ENG5"]
    assert messages[0].created_at == b.clock.now()
    assert dict(messages[0].headers)["event_id"] == str(messages[0].event_id)
    assert [n.notification_type for n in b.notifier.sent] == ["class_created"]


async def test_invalid_course_codes_write_nothing(backend: Backend) -> None:
    b = backend
    with pytest.raises(MultipleCourseError):
        await create_class(b.rt, ctx(), CreateClass("9A", ["ENG5", "SV1"]))
    with pytest.raises(CourseNotFoundError):
        await create_class(b.rt, ctx(), CreateClass("9A", ["XX9"]))
    page = await list_classes(b.rt, ctx(), ClassQuery.build())
    assert page.total == 0
    assert page.items == ()
    assert await b.messages() == []
    assert b.notifier.sent == []


async def test_class_list_orders_filters_and_counts(any_backend: Backend) -> None:
    b = any_backend
    first = await new_class(b, "ÅSA 9A", "ENG5")
    b.clock.advance(minutes=1)
    second = await new_class(b, "Bertil", "SV1")
    b.clock.advance(minutes=1)
    # Same created_at: the id (descending) breaks the tie.
    tie_a = await new_class(b, "åsa extra", "ENG5")
    tie_b = await new_class(b, "100% Svenska", "SV2")
    await new_class(b, "Åsa elsewhere", "ENG5", owner=T2)

    page = await list_classes(b.rt, ctx(), ClassQuery.build())
    ties = sorted([tie_a.id, tie_b.id], reverse=True)
    assert [c.id for c in page.items] == [*ties, second.id, first.id]
    assert page.total == 4

    folded = await list_classes(b.rt, ctx(), ClassQuery.build(q="åsa"))
    assert {c.id for c in folded.items} == {first.id, tie_a.id}
    assert folded.total == 2
    assert (await list_classes(b.rt, ctx(), ClassQuery.build(q="ASA 9"))).total == 1
    literal = await list_classes(b.rt, ctx(), ClassQuery.build(q="0%"))
    assert [c.id for c in literal.items] == [tie_b.id]
    assert (await list_classes(b.rt, ctx(), ClassQuery.build(q="_"))).total == 0

    by_course = await list_classes(b.rt, ctx(), ClassQuery.build(course_code="ENG5"))
    assert [c.id for c in by_course.items] == [tie_a.id, first.id]

    since = await list_classes(b.rt, ctx(), ClassQuery.build(updated_since=second.updated_at))
    assert {c.id for c in since.items} == {second.id, tie_a.id, tie_b.id}

    window = await list_classes(b.rt, ctx(), ClassQuery.build(limit=2, offset=1))
    assert [c.id for c in window.items] == [ties[1], second.id]
    assert (window.total, window.limit, window.offset) == (4, 2, 1)
    beyond = await list_classes(b.rt, ctx(), ClassQuery.build(limit=2, offset=10))
    assert beyond.items == ()
    assert beyond.total == 4

    async with b.uow() as uow:
        found = await uow.classes.find_by_name(T1, "  åsa EXTRA ")
        assert [c.id for c in found] == [tie_a.id]
        assert await uow.classes.find_by_name(T2, "åsa extra") == []
        several = await uow.classes.find_by_names(T1, ["  åsa EXTRA ", "no such class"])
        assert {k: [c.id for c in v] for k, v in several.items()} == {"åsa extra": [tie_a.id]}
        assert await uow.classes.find_by_names(T2, ["åsa extra"]) == {}
        assert await uow.classes.find_by_names(T1, []) == {}


async def test_class_update_publishes_only_real_changes(backend: Backend) -> None:
    b = backend
    cls = await new_class(b)
    b.clock.advance(minutes=5)

    unchanged = await update_class(b.rt, ctx(), cls.id, UpdateClass())
    same = await update_class(b.rt, ctx(), cls.id, UpdateClass(name="9A", course_codes=["ENG5"]))
    assert unchanged.updated_at == same.updated_at == cls.updated_at
    assert len(await b.messages()) == 2

    await update_class(b.rt, ctx(), cls.id, UpdateClass(name="9B"))
    await update_class(b.rt, ctx(), cls.id, UpdateClass(course_codes=["SV3"]))
    got = await get_class(b.rt, ctx(), cls.id)
    assert (got.name, got.course_code, got.updated_at) == ("9B", "SV3", b.clock.now())
    updates = [m for m in await b.messages() if m.topic == CLASS_UPDATED]
    assert [(data(m)["class_designation"], data(m)["course_codes"]) for m in updates] == [
        ("9B", None),
        (None, ["SV3"]),
    ]
    with pytest.raises(NotFoundError):
        await update_class(b.rt, ctx(T2), cls.id, UpdateClass(name="mine"))
    assert (await list_classes(b.rt, ctx(), ClassQuery.build(q="9b"))).total == 1


async def test_class_delete_keeps_students_and_refuses_while_batches_exist(
    backend: Backend,
) -> None:
    b = backend
    cls = await new_class(b)
    kept = await new_class(b, "8C")
    student = await new_student(b, class_ids=(cls.id, kept.id))
    b.clock.advance(minutes=1)
    before = len(await b.messages())

    with pytest.raises(NotFoundError):
        await delete_class(b.rt, ctx(T2), cls.id)
    await delete_class(b.rt, ctx(), cls.id)

    with pytest.raises(NotFoundError):
        await get_class(b.rt, ctx(), cls.id)
    left = await get_student(b.rt, ctx(), student.id)
    assert left.class_ids == (kept.id,)
    assert left.updated_at == b.clock.now()
    after = (await b.messages())[before:]
    assert [(m.topic, m.key) for m in after] == [(CLASS_DELETED, str(cls.id))]

    await ingest_suggestions(b.rt, suggestions(uuid4(), kept.id, (uuid4(), student.id, 0.9)))
    with pytest.raises(ResourceInUseError):
        await delete_class(b.rt, ctx(), kept.id)
    assert (await get_class(b.rt, ctx(), kept.id)).student_count == 1


# --------------------------------------------------------------------------- students


async def test_student_with_classes_is_stored_and_announced(backend: Backend) -> None:
    b = backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B")
    before = len(await b.messages())
    student = await new_student(b, "Åke", "Öberg", " Ake@Example.COM ", (c2.id, c1.id))

    got = await get_student(b.rt, ctx(), student.id)
    assert got.email == "ake@example.com"
    assert got.class_ids == tuple(sorted([c1.id, c2.id]))
    assert (got.first_name, got.last_name, got.is_placeholder) == ("Åke", "Öberg", False)
    assert (await get_class(b.rt, ctx(), c1.id)).student_count == 1
    with pytest.raises(NotFoundError):
        await get_student(b.rt, ctx(T2), student.id)

    after = (await b.messages())[before:]
    assert [(m.topic, m.key) for m in after] == [
        (STUDENT_CREATED, str(student.id)),
        (TEACHER_NOTIFICATION, T1),
        (TEACHER_NOTIFICATION, T1),
    ]
    assert data(after[0])["class_ids"] == [str(c2.id), str(c1.id)]
    assert data(after[0])["student_email"] == "ake@example.com"
    assert [n.notification_type for n in b.notifier.sent[-2:]] == ["student_added_to_class"] * 2

    with pytest.raises(NotFoundError):
        await new_student(b, "X", "Y", class_ids=(c1.id,), owner=T2)


async def test_email_is_unique_per_owner(backend: Backend) -> None:
    b = backend
    first = await new_student(b, email="a@x.se")
    with pytest.raises(DuplicateStudentEmailError):
        await new_student(b, "Other", "Person", email=" A@X.se ")
    await new_student(b, "Other", "Owner", email="a@x.se", owner=T2)
    # Without the use case's pre-check (a concurrent insert): the adapter itself refuses.
    with pytest.raises(DuplicateStudentEmailError):
        async with b.uow() as uow:
            await uow.students.add(student_at(T1, "Race", "Condition", b.clock.now(), "a@x.se"))
    second = await new_student(b, "Bo", "Ek", email="b@x.se")
    with pytest.raises(DuplicateStudentEmailError):
        await update_student(b.rt, ctx(), second.id, UpdateStudent(email="a@x.se"))
    with pytest.raises(DuplicateStudentEmailError):  # noqa: PT012 - one transaction
        async with b.uow() as uow:
            second.email = "a@x.se"
            await uow.students.update_many([second])
    page = await list_students(b.rt, ctx(), StudentQuery.build())
    assert page.total == 2
    assert {s.email for s in page.items} == {"a@x.se", "b@x.se"}
    assert (await get_student(b.rt, ctx(), first.id)).email == "a@x.se"


async def test_student_list_orders_by_code_point_and_filters(any_backend: Backend) -> None:
    b = any_backend
    cls = await new_class(b)
    zeta = await new_student(b, "Anna", "Zeta", "zeta@x.se", (cls.id,))
    adam_b = await new_student(b, "Bo", "adam")
    adam_a = await new_student(b, "Al", "adam", class_ids=(cls.id,))
    b.clock.advance(minutes=1)
    adahl = await new_student(b, "Åsa", "Ådahl", "asa.adahl@skola.se")
    ost = await create_student(
        b.rt,
        ctx(),
        CreateStudent(PersonName("Per", "Östlund", "Per Ludvig Östlund"), None, (cls.id,)),
    )
    await new_student(b, "Zed", "Aaa", owner=T2)

    page = await list_students(b.rt, ctx(), StudentQuery.build())
    # Code-point order: "Z" < "a" < "Å" < "Ö" (no locale collation).
    assert [s.id for s in page.items] == [zeta.id, adam_a.id, adam_b.id, adahl.id, ost.id]
    assert page.total == 5
    assert page.items[0].class_ids == (cls.id,)

    def ids(p: object) -> list[UUID]:
        return [s.id for s in p.items]  # type: ignore[attr-defined]

    assert ids(await list_students(b.rt, ctx(), StudentQuery.build(q="ASA"))) == [adahl.id]
    assert ids(await list_students(b.rt, ctx(), StudentQuery.build(q="skola.se"))) == [adahl.id]
    assert ids(await list_students(b.rt, ctx(), StudentQuery.build(q="ludvig"))) == [ost.id]
    in_class = await list_students(b.rt, ctx(), StudentQuery.build(class_id=cls.id))
    assert ids(in_class) == [zeta.id, adam_a.id, ost.id]
    assert in_class.total == 3
    since = await list_students(b.rt, ctx(), StudentQuery.build(updated_since=adahl.updated_at))
    assert ids(since) == [adahl.id, ost.id]
    window = await list_students(b.rt, ctx(), StudentQuery.build(limit=2, offset=2))
    assert ids(window) == [adam_b.id, adahl.id]
    assert window.total == 5
    beyond = await list_students(b.rt, ctx(), StudentQuery.build(offset=50))
    assert beyond.items == ()
    assert beyond.total == 5
    with pytest.raises(NotFoundError):
        await list_students(b.rt, ctx(T2), StudentQuery.build(class_id=cls.id))

    roster = await get_roster(b.rt, T1, cls.id)
    assert [s.id for s in roster] == [zeta.id, adam_a.id, ost.id]
    assert [s.id for s in await get_roster(b.rt, None, cls.id)] == [s.id for s in roster]
    with pytest.raises(NotFoundError):
        await get_roster(b.rt, T2, cls.id)


async def test_student_update_applies_and_publishes_real_changes(backend: Backend) -> None:
    b = backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B")
    student = await new_student(b, email="s@x.se", class_ids=(c1.id,))
    before = len(await b.messages())
    b.clock.advance(minutes=3)

    await update_student(b.rt, ctx(), student.id, UpdateStudent(first_name="Ada"))
    await update_student(b.rt, ctx(), student.id, UpdateStudent(add_class_ids=[c1.id]))
    assert len(await b.messages()) == before

    updated = await update_student(
        b.rt,
        ctx(),
        student.id,
        UpdateStudent(last_name="King", email=None, add_class_ids=[c2.id, c1.id]),
    )
    got = await get_student(b.rt, ctx(), student.id)
    assert (got.last_name, got.email, got.updated_at) == ("King", None, b.clock.now())
    assert got.class_ids == tuple(sorted([c1.id, c2.id]))
    assert set(updated.class_ids) == set(got.class_ids)
    b.clock.advance(minutes=1)
    await update_student(b.rt, ctx(), student.id, UpdateStudent(remove_class_ids=[c1.id]))
    assert (await get_student(b.rt, ctx(), student.id)).class_ids == (c2.id,)

    after = (await b.messages())[before:]
    assert [m.topic for m in after] == [STUDENT_UPDATED, TEACHER_NOTIFICATION, STUDENT_UPDATED]
    first, second = data(after[0]), data(after[2])
    assert first["add_class_ids"] == [str(c2.id)]
    assert first["remove_class_ids"] is None
    assert first["student_email"] is None
    assert first["last_name"] == "King"
    assert second["remove_class_ids"] == [str(c1.id)]
    assert second["add_class_ids"] is None
    assert (await list_students(b.rt, ctx(), StudentQuery.build(q="king"))).total == 1
    assert (await list_students(b.rt, ctx(), StudentQuery.build(q="s@x.se"))).total == 0


async def test_student_delete_and_in_use(backend: Backend) -> None:
    b = backend
    cls = await new_class(b)
    gone = await new_student(b, "Gone", "Away", class_ids=(cls.id,))
    used = await new_student(b, "Used", "Bysuggestion", class_ids=(cls.id,))
    before = len(await b.messages())

    await delete_student(b.rt, ctx(), gone.id)
    with pytest.raises(NotFoundError):
        await get_student(b.rt, ctx(), gone.id)
    after = (await b.messages())[before:]
    assert [(m.topic, m.key) for m in after] == [(STUDENT_DELETED, str(gone.id))]
    assert data(after[0])["class_ids"] == [str(cls.id)]
    assert (await get_class(b.rt, ctx(), cls.id)).student_count == 1

    await ingest_suggestions(b.rt, suggestions(uuid4(), cls.id, (uuid4(), used.id, 0.4)))
    with pytest.raises(ResourceInUseError):
        await delete_student(b.rt, ctx(), used.id)
    with pytest.raises(NotFoundError):
        await delete_student(b.rt, ctx(T2), used.id)
    assert (await get_student(b.rt, ctx(), used.id)).class_ids == (cls.id,)


async def test_student_repository_methods(backend: Backend) -> None:
    b = backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B")
    now = b.clock.now()
    s1 = student_at(T1, "Ann", "Berg", now, "ann@x.se", (c1.id,))
    s2 = student_at(T1, "Bea", "Berg", now, "bea@x.se", (c1.id, c2.id))
    s3 = student_at(T2, "Cai", "Dahl", now, "ann@x.se")
    async with b.uow() as uow:
        await uow.students.add_many([s1, s2, s3])
        await uow.commit()

    async with b.uow() as uow:
        by_email = await uow.students.by_emails(T1, ["ann@x.se", "bea@x.se", "nobody@x.se"])
        assert {e: s.id for e, s in by_email.items()} == {"ann@x.se": s1.id, "bea@x.se": s2.id}
        assert by_email["bea@x.se"].class_ids == tuple(sorted([c1.id, c2.id]))
        assert await uow.students.by_emails(T1, []) == {}
        many = await uow.students.get_unscoped_many([s1.id, s3.id, uuid4()])
        assert set(many) == {s1.id, s3.id}
        assert many[s3.id].owner_id == T2

        await uow.students.add_memberships([(c2.id, s1.id), (c1.id, s1.id)])  # one exists
        await uow.students.remove_memberships([(c1.id, s2.id), (c2.id, s3.id)])
        later = now + timedelta(hours=1)
        await uow.students.touch([s1.id], later)
        s2.first_name, s2.updated_at = "Beata", later
        await uow.students.update_many([s2])
        assert await uow.students.members_among(c1.id, [s1.id, s2.id, s3.id]) == {s1.id}
        assert await uow.students.members_among(c1.id, []) == set()
        assert [s.id for s in await uow.students.roster(c2.id)] == [s1.id, s2.id]
        await uow.commit()

    async with b.uow() as uow:
        one = await uow.students.get(T1, s1.id)
        assert one is not None
        assert one.updated_at == now + timedelta(hours=1)
        assert one.class_ids == tuple(sorted([c1.id, c2.id]))
        two = await uow.students.get(T1, s2.id)
        assert two is not None
        assert (two.first_name, two.class_ids) == ("Beata", (c2.id,))
        assert await uow.students.get(T1, s3.id) is None
        removed = await uow.students.remove_class_memberships(c2.id)
        assert removed == sorted([s1.id, s2.id])
        assert await uow.students.remove_class_memberships(c2.id) == []
        # Not committed: rolled back on leaving.
    async with b.uow() as uow:
        assert len(await uow.students.roster(c2.id)) == 2


async def test_placeholder_is_created_once_and_hidden_from_counts(any_backend: Backend) -> None:
    b = any_backend
    cls = await new_class(b)
    member = await new_student(b, class_ids=(cls.id,))
    now = b.clock.now()
    candidate = Student(
        uuid4(), T1, "UNKNOWN", "STUDENT", None, f"unknown.{cls.id}@huleedu.system", now, now
    )
    async with b.uow() as uow:
        assert await uow.students.placeholder(cls.id) is None
        assert await uow.students.add_placeholder(candidate, cls.id) is True
        other = Student(uuid4(), T1, "UNKNOWN", "STUDENT", None, None, now, now)
        assert await uow.students.add_placeholder(other, cls.id) is False
        await uow.commit()

    async with b.uow() as uow:
        placeholder = await uow.students.placeholder(cls.id)
        assert placeholder is not None
        assert placeholder.id == candidate.id
        assert placeholder.is_placeholder
        assert placeholder.class_ids == (cls.id,)
        assert await uow.students.members_among(cls.id, [candidate.id, member.id]) == {member.id}
        assert [s.id for s in await uow.students.roster(cls.id)] == [member.id]
    assert (await get_class(b.rt, ctx(), cls.id)).student_count == 1
    assert [c.student_count for c in (await list_classes(b.rt, ctx(), ClassQuery())).items] == [1]
    async with b.uow() as uow:
        assert [c.student_count for c in await uow.classes.find_by_name(T1, cls.name)] == [1]
    listed = await list_students(b.rt, ctx(), StudentQuery.build(class_id=cls.id))
    assert {(s.id, s.is_placeholder) for s in listed.items} == {
        (member.id, False),
        (candidate.id, True),
    }
    with pytest.raises(ResourceInUseError):
        await update_student(b.rt, ctx(), candidate.id, UpdateStudent(first_name="X"))
    with pytest.raises(ResourceInUseError):
        await delete_student(b.rt, ctx(), candidate.id)


# --------------------------------------------------------------------------- transactions


async def test_failure_after_a_write_rolls_back_change_and_events(backend: Backend) -> None:
    b = backend
    now = b.clock.now()
    cls = SchoolClass(uuid4(), T1, "Doomed", "ENG5", now, now)
    event = ClassCreatedV1(cls.id, cls.name, ("ENG5",), T1, uuid4(), now)
    message = build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=now)

    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012 - one transaction
        async with b.uow() as uow:
            await uow.classes.add(cls)
            await uow.outbox.add([message])
            raise RuntimeError("boom")
    async with b.uow() as uow:  # leaving without commit rolls back too
        await uow.classes.add(cls)
        await uow.outbox.add([message])

    existing = await new_student(b, email="taken@x.se")
    with pytest.raises(DuplicateStudentEmailError):  # noqa: PT012 - one transaction
        async with b.uow() as uow:
            await uow.classes.add(cls)
            await uow.outbox.add([message])
            await uow.students.add(student_at(T1, "Dup", "Licate", now, "taken@x.se"))
            await uow.commit()

    async with b.uow() as uow:
        assert await uow.classes.get_unscoped(cls.id) is None
    assert [m.topic for m in await b.messages()] == [STUDENT_CREATED]
    assert (await list_students(b.rt, ctx(), StudentQuery.build())).items[0].id == existing.id


async def test_recorded_events_reach_the_outbox_at_commit_only(backend: Backend) -> None:
    """``uow.record``: the one path from a change to the outbox. Nothing is written before
    the commit (leaving without it leaves nothing); the commit writes every recorded event in
    order, with the ids fixed when they were recorded."""
    b = backend
    now = b.clock.now()
    cls = SchoolClass(uuid4(), T1, "Recorded", "ENG5", now, now)
    corr = uuid4()
    events: list[DomainEvent] = [
        ClassCreatedV1.of(cls, T1, corr, now),
        notifications.class_created(cls, corr, now),
    ]
    async with b.uow() as uow:
        await uow.classes.add(cls)
        notes = uow.record(events, corr, now)
        assert notes == [events[1]]
    assert await b.messages() == []
    async with b.uow() as uow:
        await uow.classes.add(cls)
        uow.record(events[:1], corr, now)
        uow.record(events[1:], corr, now)
        await uow.commit()
    stored = await b.messages()
    assert [(m.topic, m.key) for m in stored] == [
        (CLASS_CREATED, str(cls.id)),
        (TEACHER_NOTIFICATION, T1),
    ]
    assert len({m.event_id for m in stored}) == 2
    assert all(f'"correlation_id":"{corr}"' in m.payload for m in stored)


async def test_collected_aggregates_are_pulled_at_commit_only(backend: Backend) -> None:
    """``uow.collect``: what a collected aggregate recorded is pulled at commit (its events
    under the correlation id they were recorded under, in the order collected, its history
    written) and
    ``commit`` returns the notifications among them; leaving without a commit writes
    nothing."""
    b = backend
    now = b.clock.now()
    corr = uuid4()
    cls = SchoolClass.create(T1, "Collected", "ENG5", at=now, correlation_id=corr)
    async with b.uow() as uow:
        await uow.classes.add(cls)
        uow.collect(cls)
    assert await b.messages() == []
    cls = SchoolClass.create(T1, "Collected", "ENG5", at=now, correlation_id=corr)
    student = Student.create(T1, "Col", "Lected", classes=[cls], by=T1, at=now, correlation_id=corr)
    async with b.uow() as uow:
        await uow.classes.add(cls)
        await uow.students.add(student)
        uow.collect(cls)
        uow.collect(student)
        notes = await uow.commit()
    assert [n.notification_type for n in notes] == ["class_created", "student_added_to_class"]
    stored = await b.messages()
    assert [m.topic for m in stored] == [
        CLASS_CREATED,
        TEACHER_NOTIFICATION,
        STUDENT_CREATED,
        TEACHER_NOTIFICATION,
    ]
    assert all(f'"correlation_id":"{corr}"' in m.payload for m in stored)
    async with b.uow() as uow:
        history = await uow.history.of_student(student.id)
    assert [(h.action.value, h.subject_id) for h in history] == [
        ("created", None),
        ("added_to_class", cls.id),
    ]


async def test_collected_aggregates_keep_the_correlation_ids_they_recorded_under(
    backend: Backend,
) -> None:
    """Two aggregates recorded under two correlation ids, collected in one unit of work (the
    timeout sweep's batches each keep theirs): each outbox row carries its own."""
    b = backend
    now = b.clock.now()
    first, second = uuid4(), uuid4()
    cls = SchoolClass.create(T1, "Two ids", "ENG5", at=now, correlation_id=first)
    student = Student.create(T1, "Two", "Ids", by=T1, at=now, correlation_id=second)
    async with b.uow() as uow:
        await uow.classes.add(cls)
        await uow.students.add(student)
        uow.collect(cls)
        uow.collect(student)
        await uow.commit()
    stored = await b.messages()
    assert [m.topic for m in stored] == [CLASS_CREATED, TEACHER_NOTIFICATION, STUDENT_CREATED]
    assert [f'"correlation_id":"{first}"' in m.payload for m in stored] == [True, True, False]
    assert f'"correlation_id":"{second}"' in stored[2].payload


async def test_a_read_only_unit_of_work_reads_and_never_stores(backend: Backend) -> None:
    """``Runtime.read()``: the committed data, and no commit (writes are refused or lost)."""
    b = backend
    existing = await create_class(b.rt, ctx(), CreateClass("Read", ["ENG5"]))
    now = b.clock.now()
    cls = SchoolClass(uuid4(), T1, "Never", "ENG5", now, now)
    async with b.rt.read() as uow:
        found = await uow.classes.get(T1, existing.id)
        assert found is not None
        assert found.name == "Read"
    with pytest.raises(RuntimeError, match="read-only"):  # noqa: PT012 - one unit of work
        async with b.rt.read() as uow:
            await uow.classes.add(cls)
            await uow.commit()
    async with b.uow() as uow:
        assert await uow.classes.get_unscoped(cls.id) is None
        assert await uow.classes.get_unscoped(existing.id) is not None


async def test_inbox_claims_once_and_only_when_committed(backend: Backend) -> None:
    b = backend
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "m1") is True
        assert await uow.inbox.claim("consumer-a", "m1") is False
        assert await uow.inbox.claim("consumer-b", "m1") is True
        await uow.commit()
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "m1") is False
        assert await uow.inbox.claim("consumer-a", "m2") is True  # rolled back
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "m2") is True
        await uow.commit()


# --------------------------------------------------------------------------- batches


async def test_matching_lifecycle_through_the_repositories(backend: Backend) -> None:
    b = backend
    cls = await new_class(b)
    ann = await new_student(b, "Ann", "A", class_ids=(cls.id,))
    bo = await new_student(b, "Bo", "B", class_ids=(cls.id,))
    outsider = await new_student(b, "Out", "Sider")
    batch_id, e1, e2, e3 = uuid4(), uuid4(), uuid4(), uuid4()
    msg = suggestions(
        batch_id, cls.id, (e2, ann.id, 0.9), (e1, outsider.id, 0.99), (e3, bo.id, 0.5)
    )

    assert (await ingest_suggestions(b.rt, msg)).outcome is IngestOutcome.STORED
    assert (await ingest_suggestions(b.rt, msg)).outcome is IngestOutcome.DUPLICATE
    async with b.uow() as uow:
        batch = await uow.batches.get(batch_id, lock=True)
        assert batch is not None
        assert batch.status is BatchStatus.PENDING
        assert batch.deadline == b.clock.now() + timedelta(hours=24)
        assocs = await uow.batches.associations(batch_id)
        assert [a.essay_id for a in assocs] == sorted([e1, e2, e3])  # same created_at
        by_essay = {a.essay_id: a for a in assocs}
        assert by_essay[e1].suggested_student_id is None  # not a member: dropped
        assert by_essay[e2].confidence_score == 0.9
        assert by_essay[e2].match_reasons == ("name",)
        assert set(await uow.batches.associations_by_essay([e1, uuid4()])) == {e1}
        assert await uow.batches.class_has_batches(cls.id) is True
        assert await uow.batches.class_has_batches(uuid4()) is False
        assert await uow.batches.student_in_use(ann.id) is True
        assert await uow.batches.student_in_use(outsider.id) is False
        assert await uow.batches.class_info([batch_id, uuid4()]) == {batch_id: (cls.id, "9A")}
        assert len(await uow.batches.pending_associations(2)) == 2
        assert await uow.batches.get(uuid4()) is None

    b.clock.advance(minutes=1)
    result = await confirm_associations(
        b.rt,
        ctx(),
        batch_id,
        [ConfirmItem(e1, True, bo.id), ConfirmItem(e2, True), ConfirmItem(e3, False)],
    )
    assert (result.status, result.associations_confirmed, result.associations_rejected) == (
        BatchStatus.FINALIZED,
        2,
        1,
    )
    async with b.uow() as uow:
        batch = await uow.batches.get(batch_id)
        assert batch is not None
        assert batch.finalized_at == b.clock.now()
        decided = await uow.batches.associations_by_essay([e1, e2, e3])
        assert decided[e1].student_id == bo.id
        assert decided[e1].validated_by == T1
        assert decided[e2].validation_status is ValidationStatus.CONFIRMED
        assert decided[e3].validation_status is ValidationStatus.REJECTED
        assert decided[e2].validated_at == b.clock.now()
        assert await uow.batches.pending_associations(10) == []
        assert await uow.batches.student_in_use(bo.id) is True
    confirmed = [m for m in await b.messages() if m.key == str(batch_id)]
    assert len(confirmed) == 1


async def test_timeout_sweep_claims_due_batches_and_makes_one_placeholder(
    backend: Backend,
) -> None:
    b = backend
    cls = await new_class(b)
    ann = await new_student(b, "Ann", "A", class_ids=(cls.id,))
    first, second, later = uuid4(), uuid4(), uuid4()
    await ingest_suggestions(b.rt, suggestions(first, cls.id, (uuid4(), ann.id, 0.95)))
    await ingest_suggestions(b.rt, suggestions(second, cls.id, (uuid4(), None, 0.0)))
    b.clock.advance(hours=2)
    await ingest_suggestions(b.rt, suggestions(later, cls.id, (uuid4(), ann.id, 0.2)))

    b.clock.advance(hours=23)
    async with b.uow() as uow:
        due = await uow.batches.claim_due(b.clock.now(), 10)
        assert {d.batch_id for d in due} == {first, second}
        assert len(await uow.batches.claim_due(b.clock.now(), 1)) == 1
    finalized = await expire_due_batches(b.rt)
    assert {f.batch_id for f in finalized} == {first, second}
    b.clock.advance(hours=2)
    assert [f.batch_id for f in await expire_due_batches(b.rt)] == [later]
    assert await expire_due_batches(b.rt) == []

    placeholders = [m for m in await b.messages() if m.topic == STUDENT_CREATED]
    assert len(placeholders) == 2  # Ann, then the one placeholder
    async with b.uow() as uow:
        placeholder = await uow.students.placeholder(cls.id)
        assert placeholder is not None
        assert data(placeholders[1])["student_id"] == str(placeholder.id)
        for batch_id in (first, second, later):
            batch = await uow.batches.get(batch_id)
            assert batch is not None
            assert batch.timeout_triggered
            assert batch.is_finalized
        assert await uow.batches.claim_due(FAR_FUTURE, 10) == []


async def test_the_earliest_pending_deadline_is_the_sweeps_look_up(backend: Backend) -> None:
    b = backend
    cls = await new_class(b)
    async with b.uow() as uow:
        assert await uow.batches.earliest_pending_deadline() is None
    first, later = uuid4(), uuid4()
    await ingest_suggestions(b.rt, suggestions(first, cls.id, (uuid4(), None, 0.0)))
    b.clock.advance(hours=2)
    await ingest_suggestions(b.rt, suggestions(later, cls.id, (uuid4(), None, 0.0)))
    async with b.uow() as uow:
        first_batch, later_batch = await uow.batches.get(first), await uow.batches.get(later)
        assert first_batch is not None
        assert later_batch is not None
        assert first_batch.deadline < later_batch.deadline
        assert await uow.batches.earliest_pending_deadline() == first_batch.deadline

    b.clock.advance(hours=23)  # the first batch is due, the later one not yet
    assert [f.batch_id for f in await expire_due_batches(b.rt)] == [first]
    async with b.uow() as uow:  # finalized batches no longer count
        assert await uow.batches.earliest_pending_deadline() == later_batch.deadline
    b.clock.advance(hours=2)
    assert [f.batch_id for f in await expire_due_batches(b.rt)] == [later]
    async with b.uow() as uow:
        assert await uow.batches.earliest_pending_deadline() is None


async def test_an_owners_class_names_are_held_until_the_unit_of_work_ends(
    any_backend: Backend,
) -> None:
    """``lock_names``: a second unit of work asking for the owner's names gets them only when
    the first has ended (in memory and on SQLite units of work that write are serial anyway:
    the second waits to begin)."""
    b = any_backend
    held: list[str] = []

    async def second() -> None:
        async with b.uow() as uow:
            await uow.classes.lock_names(T1)
            held.append("second")

    async with b.uow() as first:
        await first.classes.lock_names(T1)
        held.append("first")
        task = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert held == ["first"]
        await first.commit()
    await asyncio.wait_for(task, 10)
    assert held == ["first", "second"]


async def test_bulk_reads_of_a_sweep(any_backend: Backend) -> None:
    b = any_backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B", owner=T2)
    ann = await new_student(b, "Ann", "A", class_ids=(c1.id,))
    bo = await new_student(b, "Bo", "B", class_ids=(c2.id,), owner=T2)
    both = await new_student(b, "Cy", "C", class_ids=(c1.id,))
    now = b.clock.now()
    placeholder = Student(uuid4(), T1, "UNKNOWN", "STUDENT", None, None, now, now)
    async with b.uow() as uow:
        assert await uow.students.add_placeholder(placeholder, c1.id) is True
        await uow.students.add_memberships([(c2.id, both.id)])
        await uow.commit()
    first, second, empty = uuid4(), uuid4(), uuid4()
    e1, e2, e3 = sorted(uuid4() for _ in range(3))
    await ingest_suggestions(b.rt, suggestions(first, c1.id, (e3, ann.id, 0.9), (e1, None, 0)))
    b.clock.advance(minutes=1)
    await ingest_suggestions(b.rt, suggestions(first, c1.id, (e2, both.id, 0.5)))  # later
    await ingest_suggestions(b.rt, suggestions(second, c2.id, (uuid4(), bo.id, 0.8)))
    await ingest_suggestions(b.rt, suggestions(empty, c2.id))

    async with b.uow() as uow:
        classes = await uow.classes.get_unscoped_many([c1.id, c2.id, uuid4()])
        assert {c: (k.owner_id, k.name) for c, k in classes.items()} == {
            c1.id: (T1, "9A"),
            c2.id: (T2, "9B"),
        }
        assert await uow.classes.get_unscoped_many([]) == {}

        members = await uow.students.members_by_class(
            {c1.id: [ann.id, bo.id, both.id, placeholder.id], c2.id: {ann.id, both.id}}
        )
        assert members == {c1.id: {ann.id, both.id}, c2.id: {both.id}}
        gone = uuid4()
        assert await uow.students.members_by_class({gone: [ann.id], c2.id: []}) == {
            gone: set(),
            c2.id: set(),
        }
        assert await uow.students.members_by_class({}) == {}

        placeholders = await uow.students.placeholders([c1.id, c2.id, uuid4()])
        assert list(placeholders) == [c1.id]
        assert placeholders[c1.id].id == placeholder.id
        assert placeholders[c1.id].is_placeholder
        assert placeholders[c1.id].class_ids == (c1.id,)
        assert await uow.students.placeholders([]) == {}

        found = await uow.batches.associations_of([first, second, empty, uuid4()])
        assert set(found) == {first, second}  # no associations, no entry
        assert [a.essay_id for a in found[first]] == [e1, e3, e2]  # created_at, essay_id
        for batch_id in (first, second):
            assert found[batch_id] == await uow.batches.associations(batch_id)
        assert found[first][1].match_reasons == ("name",)
        assert await uow.batches.associations_of([]) == {}


async def test_bulk_writes_of_a_sweep(any_backend: Backend) -> None:
    b = any_backend
    cls = await new_class(b)
    ann = await new_student(b, "Ann", "A", class_ids=(cls.id,))
    bo = await new_student(b, "Bo", "B", class_ids=(cls.id,))
    first, second, untouched = uuid4(), uuid4(), uuid4()
    e1, e2, e3, e4 = uuid4(), uuid4(), uuid4(), uuid4()
    await ingest_suggestions(b.rt, suggestions(first, cls.id, (e1, ann.id, 0.9), (e2, bo.id, 0.3)))
    await ingest_suggestions(b.rt, suggestions(second, cls.id, (e3, bo.id, 0.8)))
    await ingest_suggestions(b.rt, suggestions(untouched, cls.id, (e4, ann.id, 0.8)))
    b.clock.advance(hours=1)
    now, later = b.clock.now(), b.clock.now() + timedelta(minutes=5)

    async with b.uow() as uow:
        read = await uow.batches.associations_by_essay([e1, e2, e3])
        a1, a2, a3 = read[e1], read[e2], read[e3]
        timeout, method = ValidationStatus.TIMEOUT_CONFIRMED, ValidationMethod.TIMEOUT
        a1.decide(timeout, ann.id, method, "SYSTEM_TIMEOUT", now)
        a2.decide(timeout, ann.id, method, "SYSTEM_TIMEOUT", now)
        a3.decide(ValidationStatus.REJECTED, None, ValidationMethod.HUMAN, T1, later)
        a1.suggested_student_id, a1.match_reasons = bo.id, ("changed",)  # not a decision
        a2_first = attrs.evolve(a2)
        a2.decide(timeout, bo.id, method, "SYSTEM_TIMEOUT", now)  # the last one given wins
        await uow.batches.update_decisions([a1, a2_first, a3, a2])
        await uow.batches.update_decisions([])
        batches = [await uow.batches.get(x, lock=True) for x in (first, second)]
        for batch in batches:
            assert batch is not None
            batch.status, batch.finalized_at, batch.updated_at = BatchStatus.FINALIZED, now, now
            batch.timeout_triggered = True
        await uow.batches.update_many([x for x in batches if x is not None])
        await uow.batches.update_many([])
        await uow.commit()

    async with b.uow() as uow:
        stored = await uow.batches.associations_by_essay([e1, e2, e3, e4])
        assert (stored[e1].student_id, stored[e2].student_id, stored[e3].student_id) == (
            ann.id,
            bo.id,
            None,
        )
        assert (stored[e1].suggested_student_id, stored[e1].match_reasons) == (ann.id, ("name",))
        assert stored[e1].confidence_score == 0.9
        assert stored[e2].validation_status is ValidationStatus.TIMEOUT_CONFIRMED
        assert (stored[e2].validation_method, stored[e2].validated_by) == (
            ValidationMethod.TIMEOUT,
            "SYSTEM_TIMEOUT",
        )
        assert (stored[e2].validated_at, stored[e2].updated_at) == (now, now)
        assert stored[e3].validation_status is ValidationStatus.REJECTED
        assert (stored[e3].validation_method, stored[e3].validated_by) == (
            ValidationMethod.HUMAN,
            T1,
        )
        assert (stored[e3].validated_at, stored[e3].updated_at) == (later, later)
        assert stored[e4].is_pending
        for batch_id in (first, second):
            batch = await uow.batches.get(batch_id)
            assert batch is not None
            assert (batch.status, batch.finalized_at, batch.timeout_triggered) == (
                BatchStatus.FINALIZED,
                now,
                True,
            )
        other = await uow.batches.get(untouched)
        assert other is not None
        assert other.status is BatchStatus.PENDING


async def test_one_sweep_transaction_over_several_classes(any_backend: Backend) -> None:
    b = any_backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B", owner=T2)
    ann = await new_student(b, "Ann", "A", class_ids=(c1.id,))
    bo = await new_student(b, "Bo", "B", class_ids=(c2.id,), owner=T2)
    b1, b2, b3, b4, b5 = (uuid4() for _ in range(5))
    e_keep, e_stranger, e_low, e_none, e_bo, e_also = (uuid4() for _ in range(6))
    await ingest_suggestions(b.rt, suggestions(b1, c1.id, (e_keep, ann.id, 0.7)))
    b.clock.advance(minutes=1)
    await ingest_suggestions(b.rt, suggestions(b2, c2.id, (e_bo, bo.id, 0.95), (e_none, None, 0)))
    b.clock.advance(minutes=1)
    await ingest_suggestions(b.rt, suggestions(b3, c1.id, (e_low, ann.id, 0.69)))
    b.clock.advance(minutes=1)
    await ingest_suggestions(b.rt, suggestions(b5, c1.id, (e_also, None, 0)))
    b.clock.advance(minutes=1)
    await ingest_suggestions(b.rt, suggestions(b4, c2.id))  # no essays: finalized already
    # Ann was a member when suggested for class 2's essay, and is not any more.
    async with b.uow() as uow:
        await uow.students.add_memberships([(c2.id, ann.id)])
        await uow.commit()
    await ingest_suggestions(b.rt, suggestions(b2, c2.id, (e_stranger, ann.id, 0.99)))
    async with b.uow() as uow:
        await uow.students.remove_memberships([(c2.id, ann.id)])
        await uow.commit()
    before = len(await b.messages())
    b.clock.advance(hours=25)

    done = await expire_due_batches(b.rt)
    assert [(d.batch_id, d.class_id, d.auto_confirmed, d.unknown_assigned) for d in done] == [
        (b1, c1.id, 1, 0),
        (b2, c2.id, 1, 2),
        (b3, c1.id, 0, 1),
        (b5, c1.id, 0, 1),
    ]
    async with b.uow() as uow:
        placeholders = await uow.students.placeholders([c1.id, c2.id])
        stored = await uow.batches.associations_by_essay(
            [e_keep, e_stranger, e_low, e_none, e_bo, e_also]
        )
    assert {e: a.student_id for e, a in stored.items()} == {
        e_keep: ann.id,
        e_bo: bo.id,
        e_stranger: placeholders[c2.id].id,
        e_none: placeholders[c2.id].id,
        e_low: placeholders[c1.id].id,
        e_also: placeholders[c1.id].id,
    }
    assert stored[e_stranger].suggested_student_id == ann.id

    messages = (await b.messages())[before:]
    envelopes = [json.loads(m.payload) for m in messages]
    # Per batch in claim order: the placeholder's creation (first batch of a class needing
    # it), the one confirmed event, the notification; all under the batch's correlation id.
    assert [(m.topic, m.key) for m in messages] == [
        (ASSOCIATIONS_CONFIRMED, str(b1)),
        (TEACHER_NOTIFICATION, T1),
        (STUDENT_CREATED, str(placeholders[c2.id].id)),
        (ASSOCIATIONS_CONFIRMED, str(b2)),
        (TEACHER_NOTIFICATION, T2),
        (STUDENT_CREATED, str(placeholders[c1.id].id)),
        (ASSOCIATIONS_CONFIRMED, str(b3)),
        (TEACHER_NOTIFICATION, T1),
        (ASSOCIATIONS_CONFIRMED, str(b5)),
        (TEACHER_NOTIFICATION, T1),
    ]
    correlation = [e["correlation_id"] for e in envelopes]
    assert correlation[0] == correlation[1]
    assert correlation[2] == correlation[3] == correlation[4]
    assert correlation[5] == correlation[6] == correlation[7]
    assert correlation[8] == correlation[9]
    assert len({correlation[0], correlation[2], correlation[5], correlation[8]}) == 4
    assert envelopes[2]["data"]["class_ids"] == [str(c2.id)]
    assert envelopes[2]["data"]["created_by_user_id"] == T2
    confirmed = envelopes[3]["data"]
    assert [a["essay_id"] for a in confirmed["associations"]] == [
        str(e) for e in sorted([e_bo, e_none])
    ] + [str(e_stranger)]
    scores = {a["essay_id"]: a["confidence_score"] for a in confirmed["associations"]}
    assert scores == {str(e_bo): 0.95, str(e_none): 0.0, str(e_stranger): 0.0}
    assert confirmed["validation_summary"] == {
        "total_associations": 3,
        "confirmed": 3,
        "rejected": 0,
        "human_confirmed": 0,
        "timeout_confirmed": 3,
        "ambiguous": 0,  # §11: no essay went to UNKNOWN because of the guard
    }
    assert [n.batch_id for n in b.notifier.sent[-4:]] == [b1, b2, b3, b5]
    assert b.notifier.sent[-3].payload["unknown_assigned_count"] == 2
    assert await expire_due_batches(b.rt) == []


# --------------------------------------------------------------------------- outbox store


def _message(key: str, at: datetime, topic_event: str = "a") -> OutboxMessage:
    event = ClassCreatedV1(UUID(int=0), topic_event, ("ENG5",), key, uuid4(), at)
    built = build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=at)
    return OutboxMessage(built.event_id, built.topic, key, built.payload, built.headers, at)


async def test_outbox_store_keeps_order_per_key(backend: Backend) -> None:
    b = backend
    now = b.clock.now()
    a1, b1, a2, c1, b2 = (_message(k, now) for k in ("a", "b", "a", "c", "b"))
    async with b.uow() as uow:
        await uow.outbox.add([a1, b1, a2, c1, b2])
        await uow.commit()

    ready = await b.store.fetch_ready(now, 100)
    assert [r.message.event_id for r in ready] == [m.event_id for m in (a1, b1, a2, c1, b2)]
    assert [r.seq for r in ready] == sorted(r.seq for r in ready)
    assert next(r.message for r in ready) == a1
    assert [r.message.event_id for r in await b.store.fetch_ready(now, 2)] == [
        a1.event_id,
        b1.event_id,
    ]
    seq = {r.message.event_id: r.seq for r in ready}

    # a1 waits for a retry: a2 waits behind it, other keys flow.
    await b.store.record_failure(
        seq[a1.event_id], "broker said no", now + timedelta(minutes=1), False
    )
    assert [r.message.key for r in await b.store.fetch_ready(now, 100)] == ["b", "c", "b"]
    retried = await b.store.fetch_ready(now + timedelta(minutes=1), 100)
    assert [(r.message.key, r.attempts) for r in retried][:2] == [("a", 1), ("b", 0)]

    # b1 is dead: b2 is held back for good, until retry_dead.
    await b.store.record_failure(seq[b1.event_id], "poison", now, True)
    await b.store.mark_published([seq[c1.event_id]], now)
    later = now + timedelta(hours=1)
    assert [r.message.event_id for r in await b.store.fetch_ready(later, 100)] == [
        a1.event_id,
        a2.event_id,
    ]
    status = await b.store.status(later)
    assert (status.pending, status.dead, status.published) == (3, 1, 1)
    assert status.oldest_pending_age_seconds == pytest.approx(3600.0)

    assert await b.store.retry_dead(later) == 1
    assert await b.store.retry_dead(later) == 0
    back = await b.store.fetch_ready(later, 100)
    assert [(r.message.event_id, r.attempts) for r in back] == [
        (a1.event_id, 1),
        (b1.event_id, 0),
        (a2.event_id, 0),
        (b2.event_id, 0),
    ]
    await b.store.mark_published([r.seq for r in back], later)
    final = await b.store.status(later)
    assert (final.pending, final.dead, final.published, final.oldest_pending_age_seconds) == (
        0,
        0,
        5,
        None,
    )
    assert await b.store.purge_published(later) == 1  # only c1 was published before
    assert await b.store.purge_published(later + timedelta(seconds=1)) == 4
    assert await b.store.fetch_ready(FAR_FUTURE, 100) == []


async def test_id_look_ups_take_any_number_of_ids(any_backend: Backend) -> None:
    """One message may name any number of students and essays (contract §6): more ids than
    a statement takes parameters on PostgreSQL (32,767) or on SQLite (32,766 by default,
    250,000 on some builds) are looked up all the same."""
    b = any_backend
    many = 260_000
    cls = await create_class(b.rt, ctx(), CreateClass("Crowded", ["ENG5"]))
    ada = await create_student(b.rt, ctx(), CreateStudent(PersonName("Ada", "L"), None, [cls.id]))
    strangers = [uuid4() for _ in range(many)]
    async with b.uow() as uow:
        assert await uow.students.members_among(cls.id, [*strangers, ada.id]) == {ada.id}
        assert await uow.batches.associations_by_essay(strangers) == {}


async def test_inbox_entries_are_purged_after_the_retention_only(any_backend: Backend) -> None:
    b = any_backend
    start = datetime.now(UTC)
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "old") is True
        assert await uow.inbox.claim("consumer-b", "old") is True
        await uow.commit()
    # Processed just now: a cut-off a day ago keeps them (they are still being deduplicated).
    assert await b.store.purge_inbox(start - timedelta(days=1)) == 0
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "old") is False
    # A cut-off after they were processed forgets them: the same id is new again.
    assert await b.store.purge_inbox(datetime.now(UTC) + timedelta(seconds=5)) == 2
    assert await b.store.purge_inbox(datetime.now(UTC) + timedelta(seconds=5)) == 0
    async with b.uow() as uow:
        assert await uow.inbox.claim("consumer-a", "old") is True


async def test_outbox_leadership_on_a_single_store(backend: Backend) -> None:
    async with backend.store.leadership() as leader:
        assert leader is True


# --------------------------------------------------------------------------- PostgreSQL only


async def _pg_class(engine: AsyncEngine, clock: FixedClock | None = None) -> SchoolClass:
    rt = build_sql_runtime(engine, clock=clock or FixedClock())
    return await create_class(rt, ctx(), CreateClass("9A", ["ENG5"]))


async def test_pg_class_names_are_held_per_owner_and_let_go_by_a_rollback(
    clean_pg: AsyncEngine,
) -> None:
    """Another owner's names are not held by this one's; a rolled-back unit of work lets go
    of them as a committed one does (PostgreSQL's transaction-scoped advisory lock)."""
    rt = build_sql_runtime(clean_pg)
    got: list[str] = []

    async def same_owner() -> None:
        async with rt.uow() as uow:
            await uow.classes.lock_names(T1)
            got.append("same owner")

    async with rt.uow() as first:
        await first.classes.lock_names(T1)
        async with rt.uow() as other:
            await asyncio.wait_for(other.classes.lock_names(T2), 5)
        task = asyncio.create_task(same_owner())
        await asyncio.sleep(0.3)
        assert got == []
        # Left without a commit: rolled back.
    await asyncio.wait_for(task, 5)
    assert got == ["same owner"]


async def test_pg_placeholder_is_unique_under_concurrency(clean_pg: AsyncEngine) -> None:
    cls = await _pg_class(clean_pg)
    factory = SqlUnitOfWorkFactory(clean_pg)
    now = datetime.now(UTC)

    def candidate() -> Student:
        return Student(uuid4(), T1, "UNKNOWN", "STUDENT", None, None, now, now)

    async with factory() as first, factory() as second:
        assert await first.students.add_placeholder(candidate(), cls.id) is True
        waiting = asyncio.create_task(second.students.add_placeholder(candidate(), cls.id))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the unique index until the first commits
        await first.commit()
        assert await waiting is False
        await second.commit()

    results = await asyncio.gather(
        *(_add_placeholder(factory, cls2.id, candidate()) for cls2 in [cls] * 4)
    )
    assert results == [False] * 4
    async with factory() as uow:
        found = await uow.students.placeholder(cls.id)
        assert found is not None
        assert found.class_ids == (cls.id,)


_GATE = 0x63_6D_73_67  # an advisory lock key of this test only


async def test_pg_racing_first_placeholders_of_a_class_are_one_insert_and_no_error(
    clean_pg: AsyncEngine,
) -> None:
    """Sweeps of several replicas may create a class's UNKNOWN student at the same moment.
    The real placeholder has an email made from its class id, so two first inserts can meet
    in the owners' email index as well as in the class's. Each race must end with one insert
    and "already there" for the others, never a unique violation. A test-only trigger holds
    every placeholder insert at a gate until all six are waiting, then lets them go
    together (with the class's index as the only conflict target: unique violations in
    every run)."""
    factory = SqlUnitOfWorkFactory(clean_pg)
    rt = build_sql_runtime(clean_pg)
    now = datetime.now(UTC)
    async with clean_pg.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION cms_test_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"PERFORM pg_advisory_lock_shared({_GATE}); "
                f"PERFORM pg_advisory_unlock_shared({_GATE}); RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER cms_test_gate BEFORE INSERT ON cms_students FOR EACH ROW "
                "WHEN (NEW.is_placeholder) EXECUTE FUNCTION cms_test_gate()"
            )
        )

    async def insert_and_commit(cls: SchoolClass) -> bool:
        async with factory() as uow:
            created = await uow.students.add_placeholder(
                Student.placeholder_of(cls, now, uuid4()), cls.id
            )
            await uow.commit()
            return created

    try:
        async with clean_pg.connect() as gate:
            for k in range(5):
                cls = await create_class(rt, ctx(), CreateClass(f"Race {k}", ["ENG5"]))
                await gate.execute(text(f"SELECT pg_advisory_lock({_GATE})"))
                racers = asyncio.gather(*(insert_and_commit(cls) for _ in range(6)))
                await asyncio.sleep(0.3)  # all six held at the gate
                await gate.execute(text(f"SELECT pg_advisory_unlock({_GATE})"))
                assert sorted(await racers) == [False] * 5 + [True]
            await gate.rollback()
    finally:
        async with clean_pg.begin() as conn:
            await conn.execute(text("DROP TRIGGER cms_test_gate ON cms_students"))
            await conn.execute(text("DROP FUNCTION cms_test_gate()"))


async def _add_placeholder(factory: SqlUnitOfWorkFactory, class_id: UUID, s: Student) -> bool:
    async with factory() as uow:
        created = await uow.students.add_placeholder(s, class_id)
        await uow.commit()
        return created


async def test_pg_concurrent_sweeps_finalize_each_batch_once(clean_pg: AsyncEngine) -> None:
    clock = FixedClock()
    cls = await _pg_class(clean_pg, clock)
    rt = build_sql_runtime(clean_pg, clock=clock)
    batch_ids = [uuid4() for _ in range(6)]
    for batch_id in batch_ids:
        await ingest_suggestions(rt, suggestions(batch_id, cls.id, (uuid4(), None, 0.0)))
    clock.advance(hours=25)

    runs = await asyncio.gather(*(expire_due_batches(rt, per_transaction=1) for _ in range(3)))
    finalized = [f.batch_id for run in runs for f in run]
    assert sorted(finalized) == sorted(batch_ids)
    store = SqlOutboxStore(clean_pg)
    messages = [m.message for m in await store.fetch_ready(FAR_FUTURE, 1000)]
    assert sum(1 for m in messages if m.topic == STUDENT_CREATED) == 1
    assert sorted(m.key for m in messages if "associations" in m.topic) == sorted(
        str(b) for b in batch_ids
    )


@pytest.mark.parametrize("table", ["cms_essay_associations", "cms_outbox"])
async def test_pg_failed_sweep_write_changes_nothing(clean_pg: AsyncEngine, table: str) -> None:
    """A write of the sweep fails in the database (the decisions, written while the events
    are rendered, or the events): no decision, no finalization, no event, no notification."""
    clock, notifier = FixedClock(), RecordingNotifier()
    rt = build_sql_runtime(clean_pg, clock=clock, notifier=notifier)
    cls = await create_class(rt, ctx(), CreateClass("9A", ["ENG5"]))
    batch_id, essay_id = uuid4(), uuid4()
    await ingest_suggestions(rt, suggestions(batch_id, cls.id, (essay_id, None, 0.0)))
    clock.advance(hours=25)
    store = SqlOutboxStore(clean_pg)
    outbox_before = len(await store.fetch_ready(FAR_FUTURE, 1000))
    notes_before = len(notifier.sent)
    async with clean_pg.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION cms_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER cms_test_refuse BEFORE UPDATE OR INSERT ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION cms_test_refuse()"
            )
        )
    try:
        with pytest.raises(Exception, match="refused by the test"):  # the driver's error
            await expire_due_batches(rt)
    finally:
        async with clean_pg.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER cms_test_refuse ON {table}"))
            await conn.execute(text("DROP FUNCTION cms_test_refuse()"))

    async with rt.uow() as uow:
        batch = await uow.batches.get(batch_id)
        assert batch is not None
        assert batch.status is BatchStatus.PENDING
        [association] = await uow.batches.associations(batch_id)
        assert association.is_pending
        assert await uow.students.placeholder(cls.id) is None
    assert len(await store.fetch_ready(FAR_FUTURE, 1000)) == outbox_before
    assert len(notifier.sent) == notes_before
    [done] = await expire_due_batches(rt)  # the connection went back to the pool usable
    assert (done.batch_id, done.unknown_assigned) == (batch_id, 1)


async def test_pg_claim_due_skips_batches_locked_elsewhere(clean_pg: AsyncEngine) -> None:
    cls = await _pg_class(clean_pg)
    now = datetime.now(UTC)
    factory = SqlUnitOfWorkFactory(clean_pg)
    async with factory() as uow:
        for i in range(4):
            await uow.batches.add(
                Batch(
                    uuid4(),
                    cls.id,
                    T1,
                    "ENG5",
                    BatchStatus.PENDING,
                    now - timedelta(minutes=i),
                    now,
                    now,
                )
            )
        await uow.commit()

    async with factory() as first, factory() as second:
        mine = await first.batches.claim_due(now, 2)
        theirs = await asyncio.wait_for(second.batches.claim_due(now, 10), 5)
        assert len(mine) == 2
        assert len(theirs) == 2
        assert {b.batch_id for b in mine}.isdisjoint(b.batch_id for b in theirs)
        # A locked get waits for the other transaction.
        blocked = asyncio.create_task(second.batches.get(mine[0].batch_id, lock=True))
        await asyncio.sleep(0.3)
        assert not blocked.done()
        await first.commit()
        assert (await asyncio.wait_for(blocked, 5)) is not None


async def test_pg_outbox_commit_callback_and_notify_wakeups(clean_pg: AsyncEngine) -> None:
    calls: list[int] = []
    rt = build_sql_runtime(clean_pg, on_outbox_commit=lambda: calls.append(1))
    wakeups = OutboxWakeups(clean_pg)
    try:
        await wakeups.wait(0.01)  # starts listening (and looks once)
        assert wakeups.listening
        started = asyncio.get_running_loop().time()
        await wakeups.wait(0.2)
        assert asyncio.get_running_loop().time() - started >= 0.15  # nothing to see

        waiter = asyncio.create_task(wakeups.wait(10))
        await asyncio.sleep(0.1)
        await create_class(rt, ctx(), CreateClass("9A", ["ENG5"]))
        await asyncio.wait_for(waiter, 5)
        assert calls == [1]

        await list_classes(rt, ctx(), ClassQuery.build())  # read only: no call
        with pytest.raises(MultipleCourseError):
            await create_class(rt, ctx(), CreateClass("9A", ["ENG5", "SV1"]))
        assert calls == [1]

        wakeups.notify()  # in-process hint
        started = asyncio.get_running_loop().time()
        await wakeups.wait(5)
        assert asyncio.get_running_loop().time() - started < 1
    finally:
        await wakeups.close()


async def test_pg_outbox_leadership_is_exclusive(clean_pg: AsyncEngine) -> None:
    one, two = SqlOutboxStore(clean_pg), SqlOutboxStore(clean_pg)
    async with one.leadership() as leader:
        assert leader is True
        async with two.leadership() as other:
            assert other is False
    async with two.leadership() as leader_now:
        assert leader_now is True


async def test_pg_constraints_become_core_errors(clean_pg: AsyncEngine) -> None:
    rt = build_sql_runtime(clean_pg)
    cls = await _pg_class(clean_pg)
    student = await create_student(rt, ctx(), CreateStudent(PersonName("A", "B"), None, [cls.id]))
    await ingest_suggestions(rt, suggestions(uuid4(), cls.id, (uuid4(), student.id, 0.9)))
    now = datetime.now(UTC)
    factory = SqlUnitOfWorkFactory(clean_pg)
    with pytest.raises(ResourceInUseError):  # memberships and batches reference it
        async with factory() as uow:
            await uow.classes.delete(cls.id)
    with pytest.raises(ResourceInUseError):  # noqa: PT012 - an association names the student
        async with factory() as uow:
            await uow.students.remove_memberships([(cls.id, student.id)])
            await uow.students.delete(student.id)
    with pytest.raises(CourseNotFoundError):
        async with factory() as uow:
            await uow.classes.add(SchoolClass(uuid4(), T1, "X", "NOPE", now, now))
    with pytest.raises(NotFoundError):
        async with factory() as uow:
            await uow.students.add_memberships([(uuid4(), student.id)])
    assert (await get_class(rt, ctx(), cls.id)).student_count == 1


@pytest.fixture
async def dead_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/nothing")
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_unreachable_database_is_dependency_unavailable(dead_engine: AsyncEngine) -> None:
    with pytest.raises(DependencyUnavailableError):
        await ping(dead_engine)
    rt = build_sql_runtime(dead_engine)
    with pytest.raises(DependencyUnavailableError):
        await create_class(rt, ctx(), CreateClass("9A", ["ENG5"]))
    with pytest.raises(DependencyUnavailableError):
        await SqlOutboxStore(dead_engine).status(datetime.now(UTC))
    with pytest.raises(DependencyUnavailableError):
        async with SqlOutboxStore(dead_engine).leadership():
            pass
    wakeups = OutboxWakeups(dead_engine)
    await wakeups.wait(0.05)  # never raises: polling is the fallback
    assert not wakeups.listening
    await wakeups.close()


async def test_server_side_disconnect_is_dependency_unavailable(
    pg_database_factory: object, pg_server_url: str
) -> None:
    import asyncpg

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        await ping(engine)
        rt = build_sql_runtime(engine)
        # Killed while in use (a connection killed while idle in the pool is replaced at
        # checkout instead, when the driver has noticed: see test_faults_postgres.py).
        async with rt.uow() as uow:
            await uow.classes.get("teacher", uuid4())
            admin = await asyncpg.connect(pg_server_url)
            try:
                name = url.rsplit("/", 1)[1]
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
            finally:
                await admin.close()
            with pytest.raises(DependencyUnavailableError):
                await uow.classes.get("teacher", uuid4())
        await ping(engine)  # the pool recovers on its own
        await list_classes(rt, ctx(), ClassQuery.build())
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- versions (§8)


async def test_versions_are_stored_and_bumped_alike(any_backend: Backend) -> None:
    b = any_backend
    cls = await new_class(b)
    other = await new_class(b, "9B")
    s = await new_student(b, email="v@example.com", class_ids=(cls.id, other.id))
    async with b.uow() as uow:
        stored_class = await uow.classes.get(T1, cls.id, lock=True)
        stored = await uow.students.get(T1, s.id, lock=True)
        assert stored_class is not None
        assert stored is not None
        assert (stored_class.version, stored.version) == (1, 1)
        stored.version, stored_class.version = 5, 7
        stored.first_name = "Five"
        await uow.students.update(stored)
        await uow.classes.update(stored_class)
        await uow.commit()
    async with b.uow() as uow:
        assert (await uow.students.by_emails(T1, ["v@example.com"], lock=True))[
            "v@example.com"
        ].version == 5
        assert (await uow.classes.get_many(T1, [cls.id], lock=True))[cls.id].version == 7
        members = await uow.students.remove_class_memberships(cls.id)
        await uow.students.touch(members, b.clock.now())  # + 1, in the database
        await uow.commit()
    async with b.rt.read() as uow:
        after = await uow.students.get(T1, s.id)
        assert after is not None
        assert (after.version, after.first_name, after.class_ids) == (6, "Five", (other.id,))
        page = await uow.students.search(T1, StudentQuery.build(10, 0, None, None, None))
        assert [x.version for x in page.items] == [6]
        classes = await uow.classes.search(T1, ClassQuery.build(10, 0, None, None, None))
        assert sorted(c.version for c in classes.items) == [1, 7]


async def test_pg_a_locked_read_waits_and_sees_the_committed_row(clean_pg: AsyncEngine) -> None:
    """Two units of work on one student: the second locked read waits for the first to
    commit and then reads its change (the mechanism of contract §8 on PostgreSQL)."""
    rt = build_sql_runtime(clean_pg, clock=FixedClock(), notifier=RecordingNotifier())
    s = await create_student(rt, ctx(), CreateStudent(PersonName("A", "B"), "l@example.com"))
    first_locked, release = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def first() -> None:
        async with rt.uow() as uow:
            student = await uow.students.get(T1, s.id, lock=True)
            assert student is not None
            first_locked.set()
            await release.wait()
            student.first_name, student.version = "Changed", 2
            await uow.students.update(student)
            await uow.commit()

    async def second() -> None:
        await first_locked.wait()
        async with rt.uow() as uow:
            student = await uow.students.get(T1, s.id, lock=True)
            assert student is not None
            seen.append(f"{student.first_name}/{student.version}")
            await uow.commit()

    waiting = asyncio.create_task(second())
    holder = asyncio.create_task(first())
    await first_locked.wait()
    await asyncio.sleep(0.3)
    assert not waiting.done()  # blocked on the row lock
    release.set()
    await asyncio.gather(holder, waiting)
    assert seen == ["Changed/2"]


# --------------------------------------------------------------------------- §11 matching


async def test_batch_queue_runner_up_and_deadline(any_backend: Backend) -> None:
    """§11 on every adapter: the owner's queue (filters, order by deadline then id, counts,
    total past the end), the runner-up stored and replaced at ingest, a moved deadline that
    the sweep honours."""
    b = any_backend
    c1 = await new_class(b, "9A")
    c2 = await new_class(b, "9B")
    theirs = await new_class(b, "9C", owner=T2)
    ann = await new_student(b, "Ann", "A", class_ids=(c1.id,))
    bo = await new_student(b, "Bo", "B", class_ids=(c1.id,))
    e1, e2 = uuid4(), uuid4()
    first, second, third, other = (UUID(int=i) for i in (4, 3, 2, 1))
    message = SuggestionsMessage(
        str(uuid4()), uuid4(), first, c1.id, "ENG5",
        (EssayMatch(e1, (Suggestion(ann.id, 0.9), Suggestion(bo.id, 0.6))),
         EssayMatch(e2, (Suggestion(bo.id, 0.8),))),
    )  # fmt: skip
    await ingest_suggestions(b.rt, message)
    await ingest_suggestions(b.rt, suggestions(second, c2.id, (uuid4(), None, 0.0)))
    await ingest_suggestions(b.rt, suggestions(third, c1.id, (uuid4(), None, 0.0)))  # same time
    await ingest_suggestions(b.rt, suggestions(other, theirs.id, (uuid4(), None, 0.0)))
    async with b.uow() as uow:
        stored = await uow.batches.associations_by_essay([e1, e2])
        assert (stored[e1].runner_up_confidence, stored[e2].runner_up_confidence) == (0.6, None)
    # a new message for a pending essay replaces its runner-up too
    replaced = SuggestionsMessage(
        str(uuid4()), uuid4(), first, c1.id, "ENG5",
        (EssayMatch(e2, (Suggestion(bo.id, 0.8), Suggestion(ann.id, 0.75))),),
    )  # fmt: skip
    await ingest_suggestions(b.rt, replaced)
    await confirm_associations(b.rt, ctx(), first, [ConfirmItem(e1, True)])
    b.clock.advance(minutes=1)
    soon = b.clock.now() + timedelta(hours=1)
    moved = await move_deadline(b.rt, ctx(), second, soon)
    assert moved.batch.deadline == soon

    async with b.uow() as uow:
        assert (await uow.batches.associations_by_essay([e2]))[e2].runner_up_confidence == 0.75
        page = await uow.batches.list_for_owner(T1, BatchQuery.build())
        # second's deadline moved first; first and third share a deadline: by batch id
        assert [s.batch_id for s in page.items] == [second, third, first]
        assert page.total == 3
        top = page.items[2]
        assert (top.class_id, top.class_name, top.course_code) == (c1.id, "9A", "ENG5")
        assert (top.essay_count, top.pending, top.confirmed, top.rejected) == (2, 1, 1, 0)
        assert top.status is BatchStatus.PENDING
        assert page.items[0].deadline == soon
        only = await uow.batches.list_for_owner(T1, BatchQuery.build(class_id=c2.id))
        assert [s.batch_id for s in only.items] == [second]
        window = await uow.batches.list_for_owner(T1, BatchQuery.build(limit=1, offset=1))
        assert ([s.batch_id for s in window.items], window.total) == ([third], 3)
        past = await uow.batches.list_for_owner(T1, BatchQuery.build(offset=10))
        assert (past.items, past.total) == ((), 3)
        assert (
            await uow.batches.list_for_owner(T1, BatchQuery.build(status="finalized"))
        ).total == 0
        assert [
            s.batch_id for s in (await uow.batches.list_for_owner(T2, BatchQuery.build())).items
        ] == [other]

    b.clock.advance(hours=2)  # past second's new deadline, before the others' 24 h
    assert [f.batch_id for f in await expire_due_batches(b.rt)] == [second]
    async with b.uow() as uow:
        done = await uow.batches.list_for_owner(T1, BatchQuery.build(status="finalized"))
        assert [(s.batch_id, s.status, s.pending, s.confirmed) for s in done.items] == [
            (second, BatchStatus.FINALIZED, 0, 1)
        ]
        every = await uow.batches.list_for_owner(T1, BatchQuery.build(status="all"))
        assert every.total == 3


async def test_student_aliases_round_trip_and_search(any_backend: Backend) -> None:
    """§11 aliases on every adapter: stored, read (single, many, roster), searched through
    the search key written with them, replaced by an update."""
    b = any_backend
    cls = await new_class(b)
    made = await create_student(
        b.rt,
        ctx(),
        CreateStudent(PersonName("Ada", "L"), None, (cls.id,), aliases=("Addie", "Lady Ä")),
    )
    other = await new_student(b, "Bo", "B", class_ids=(cls.id,))
    assert (await get_student(b.rt, ctx(), made.id)).aliases == ("Addie", "Lady Ä")
    async with b.uow() as uow:
        many = await uow.students.get_unscoped_many([made.id, other.id])
        assert (many[made.id].aliases, many[other.id].aliases) == (("Addie", "Lady Ä"), ())
        roster = await uow.students.roster(cls.id)
        assert [s.aliases for s in roster] == [(), ("Addie", "Lady Ä")]  # Bo B, then Ada L
    found = await list_students(b.rt, ctx(), StudentQuery.build(q="lady a"))
    assert [s.id for s in found.items] == [made.id]
    await update_student(b.rt, ctx(), made.id, UpdateStudent(aliases=("Countess",)))
    assert (await get_student(b.rt, ctx(), made.id)).aliases == ("Countess",)
    assert (await list_students(b.rt, ctx(), StudentQuery.build(q="addie"))).items == ()
    found = await list_students(b.rt, ctx(), StudentQuery.build(q="COUNTESS"))
    assert [s.id for s in found.items] == [made.id]


async def test_history_and_forgetting_personal_data(any_backend: Backend) -> None:
    """§10: the history port keeps entries in write order per student and forgets a deleted
    student's; ``personal_data.forget`` drops reasons naming the student, deletes published
    outbox rows carrying them and rewrites unpublished ones under the same event id, leaving
    other students' rows alone."""
    b = any_backend
    cls = await create_class(b.rt, ctx(), CreateClass("9P", ["ENG5"]))
    s = await create_student(
        b.rt, ctx(), CreateStudent(PersonName("Ottilie", "Brandqvist"), "ob@x.se", [cls.id])
    )
    other = await create_student(b.rt, ctx(), CreateStudent(PersonName("Ottilie", "Ek")))
    essay_id = uuid4()
    reasons = ("Ottilie Brandqvist on page 1", "style")
    await ingest_suggestions(
        b.rt,
        SuggestionsMessage(
            "m-privacy",
            uuid4(),
            uuid4(),
            cls.id,
            "ENG5",
            (EssayMatch(essay_id, (Suggestion(s.id, 0.9, reasons),)),),
        ),
    )
    ready = await b.store.fetch_ready(FAR_FUTURE, 1000)
    await b.store.mark_published([r.seq for r in ready], b.clock.now())
    b.clock.advance(minutes=1)
    await update_student(b.rt, ctx(), s.id, UpdateStudent(email="ob2@x.se"))
    [waiting] = await b.messages()
    others = [r.message for r in ready if str(other.id) in r.message.payload]

    async with b.uow() as uow:
        await uow.personal_data.forget(s.id, ("Ottilie", "Brandqvist", "ob@x.se", "ob2@x.se"))
        await uow.history.delete_student(other.id)
        await uow.commit()

    async with b.rt.read() as uow:
        [association] = await uow.batches.associations_of_student(s.id)
        history = await uow.history.of_student(s.id)
        assert await uow.history.of_student(other.id) == []
    assert association.match_reasons == ("style",)
    assert [(e.action.value, e.by, e.subject_id) for e in history] == [
        ("created", T1, None),
        ("added_to_class", T1, cls.id),
        ("updated", T1, None),
    ]
    [rewritten] = await b.messages()
    assert rewritten.event_id == waiting.event_id
    assert data(rewritten)["first_name"] == "ERASED"
    assert data(rewritten)["student_email"] is None
    store_rows = await _all_outbox_payloads(b)
    assert not [p for p in store_rows if "Brandqvist" in p or "ob@x.se" in p]
    assert all(m.payload in store_rows for m in others)


async def _all_outbox_payloads(b: Backend) -> list[str]:
    """Every outbox row's payload, published or not."""
    if isinstance(b.store, InMemoryOutboxStore):
        return [m.payload for m in b.store.messages()]
    assert b.engine is not None
    async with b.engine.connect() as conn:
        return list((await conn.execute(text("SELECT payload FROM cms_outbox"))).scalars())


async def test_an_erased_student_is_never_changed_again(any_backend: Backend) -> None:
    """A change read before an erasure committed (the stale copy here) is refused by the
    repository itself, single and bulk, and changes nothing; a repeated erasure is a no-op."""
    b = any_backend
    s = await create_student(b.rt, ctx(), CreateStudent(PersonName("Ines", "Stale"), "is@x.se"))
    other = await create_student(b.rt, ctx(), CreateStudent(PersonName("Ok", "Fine")))
    stale = attrs.evolve(s, first_name="Restored")
    erased = await erase_student(b.rt, ctx(), s.id)
    before = await b.topics()
    async with b.uow() as uow:
        with pytest.raises(StudentErasedError):
            await uow.students.update(stale)
    async with b.uow() as uow:
        with pytest.raises(StudentErasedError):
            await uow.students.update_many([attrs.evolve(other), stale])
    assert await get_student(b.rt, ctx(), s.id) == erased
    assert await erase_student(b.rt, ctx(), s.id) == erased
    assert await b.topics() == before


# ----------------------------------------------------------------------------- §9.1, §9.2


async def test_external_ids_are_unique_per_owner_and_kind(any_backend: Backend) -> None:
    """Both fakes and SQL refuse a second external id of one owner and kind, on insert, on
    update and in bulk, and find students by it; another owner or kind may reuse it."""
    b = any_backend
    now = b.clock.now()
    cls = await create_class(b.rt, ctx(), CreateClass("9A", ["ENG5"], "E-1"))
    await create_class(b.rt, ctx(T2), CreateClass("9A", ["ENG5"], "E-1"))
    s = await create_student(b.rt, ctx(), CreateStudent(PersonName("A", "B"), external_id="E-1"))
    twin = attrs.evolve(cls, id=uuid4(), name="9B")
    async with b.uow() as uow:
        with pytest.raises(DuplicateExternalIdError):
            await uow.classes.add(twin)
    loose = await create_class(b.rt, ctx(), CreateClass("9C", ["ENG5"]))
    async with b.uow() as uow:
        with pytest.raises(DuplicateExternalIdError):
            await uow.classes.update(attrs.evolve(loose, external_id="E-1"))
    clash = student_at(T1, "C", "D", now)
    clash.external_id = "E-1"
    async with b.uow() as uow:
        with pytest.raises(DuplicateExternalIdError):
            await uow.students.add_many([student_at(T1, "X", "Y", now), clash])
    other = await create_student(b.rt, ctx(), CreateStudent(PersonName("E", "F")))
    async with b.uow() as uow:
        with pytest.raises(DuplicateExternalIdError):
            await uow.students.update(attrs.evolve(other, external_id="E-1"))
    async with b.uow() as uow:
        found = await uow.students.by_external_ids(T1, ["E-1", "nope"])
        assert {k: v.id for k, v in found.items()} == {"E-1": s.id}
        assert await uow.students.by_external_ids(T2, ["E-1"]) == {}
    page = await list_students(b.rt, ctx(), StudentQuery.build(external_id="E-1"))
    assert [x.id for x in page.items] == [s.id]
    page_c = await list_classes(b.rt, ctx(), ClassQuery.build(external_id="E-1"))
    assert [c.id for c in page_c.items] == [cls.id]
    stored = await get_student(b.rt, ctx(), s.id)
    assert stored.external_id == "E-1"


async def test_class_status_round_trips_and_filters(any_backend: Backend) -> None:
    b = any_backend
    old = await new_class(b, "old")
    b.clock.advance(minutes=1)
    new = await new_class(b, "new")
    archived = await set_class_archived(b.rt, ctx(), old.id, True)
    stored = await get_class(b.rt, ctx(), old.id)
    assert stored == archived
    assert (stored.status.value, stored.archived_at) == ("archived", b.clock.now())

    async def listed(status: str) -> tuple[list[UUID], int]:
        page = await list_classes(b.rt, ctx(), ClassQuery.build(status=status))
        return [c.id for c in page.items], page.total

    assert await listed("active") == ([new.id], 1)
    assert await listed("archived") == ([old.id], 1)
    assert await listed("all") == ([new.id, old.id], 2)
    await set_class_archived(b.rt, ctx(), old.id, False)
    assert (await get_class(b.rt, ctx(), old.id)).archived_at is None
    assert await listed("active") == ([new.id, old.id], 2)


async def test_pg_concurrent_creates_with_one_external_id(clean_pg: AsyncEngine) -> None:
    """The unique index, not a look-up, decides: of simultaneous writers one wins."""
    rt = build_sql_runtime(clean_pg, clock=FixedClock(), notifier=RecordingNotifier())

    async def create(i: int) -> object:
        try:
            cmd = CreateStudent(PersonName("S", str(i)), external_id="SAME")
            return await create_student(rt, ctx(), cmd)
        except DuplicateExternalIdError as exc:
            return exc

    results = await asyncio.gather(*(create(i) for i in range(6)))
    assert sum(isinstance(r, Student) for r in results) == 1
    assert sum(isinstance(r, DuplicateExternalIdError) for r in results) == 5


# --------------------------------------------------------------------------- import history


async def test_import_history_records_items_pages_and_purges(any_backend: Backend) -> None:
    from class_core.import_records import (
        ImportAction,
        ImportItem,
        ImportRecord,
        ImportSource,
        StudentImage,
    )

    b = any_backend
    cls = await new_class(b)
    now = b.clock.now()
    first, second = uuid4(), uuid4()
    s1, s2 = uuid4(), uuid4()
    before = StudentImage("Åsa", "Öberg", "Åsa Maria Öberg", "asa@s.example", ("Åsis",), True)
    async with b.uow() as uow:
        await uow.imports.add(ImportRecord(first, T1, now, ImportSource.CLI, None, 1, 0, 0))
        await uow.imports.extend(first, 0, 1, 1)
        await uow.imports.add_items(
            [
                ImportItem(first, s1, ImportAction.CREATED, 1, cls.id),
                ImportItem(first, s2, ImportAction.UPDATED, 3, None, before),
            ]
        )
        later = now + timedelta(minutes=1)
        await uow.imports.add(ImportRecord(second, T1, later, ImportSource.HTTP, cls.id, 2))
        await uow.commit()
    async with b.uow() as uow:
        record = await uow.imports.get(T1, first, lock=True)
        assert record is not None
        assert (record.created, record.updated, record.removed) == (1, 1, 1)
        assert await uow.imports.get(T2, first) is None
        assert await uow.imports.get(None, first) == record
        items = {i.student_id: i for i in await uow.imports.items(first)}
        assert items[s1] == ImportItem(first, s1, ImportAction.CREATED, 1, cls.id)
        assert items[s2].before == before
        page = await uow.imports.search(T1, 1, 0)
        assert [r.import_id for r in page.items] == [second]
        assert page.total == 2
        assert (await uow.imports.search(T2, 10, 0)).total == 0
        await uow.imports.mark_undone(first, later)
        await uow.commit()
    async with b.uow() as uow:
        undone = await uow.imports.get(T1, first)
        assert undone is not None
        assert undone.undone_at == later
        # Erasure's clean-up clears the student's before-images.
        await uow.personal_data.forget(s2, ["Åsa"])
        assert [i.before for i in await uow.imports.items(first) if i.student_id == s2] == [None]
        assert await uow.imports.purge(later, 10) == 1
        assert await uow.imports.purge(later, 10) == 0
        assert await uow.imports.items(first) == []
        assert await uow.imports.get(T1, second) is not None
        await uow.commit()


async def test_bulk_reads_for_sync_and_undo(any_backend: Backend) -> None:
    b = any_backend
    cls = await new_class(b)
    ada = await new_student(b, "Ada", email="ada@s.example", class_ids=(cls.id,))
    bo = await new_student(b, "Bo", class_ids=(cls.id,))  # no email: not in member_emails
    other = await new_student(b, "Cy", email="cy@s.example")
    await ingest_suggestions(b.rt, suggestions(uuid4(), cls.id, (uuid4(), ada.id, 0.9)))
    async with b.uow() as uow:
        assert await uow.students.member_emails(cls.id) == {ada.id: "ada@s.example"}
        found = await uow.students.get_many(T1, [ada.id, bo.id, other.id, uuid4()], lock=True)
        assert set(found) == {ada.id, bo.id, other.id}
        assert found[ada.id].class_ids == (cls.id,)
        assert await uow.students.get_many(T2, [ada.id]) == {}
        assert await uow.batches.students_in_use([ada.id, bo.id, other.id]) == {ada.id}
