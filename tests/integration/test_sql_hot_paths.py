"""The SQL adapter's fast paths on PostgreSQL behave exactly like the plain ones.

- a unit of work is one transaction: reads, writes and outbox rows commit or roll back
  together, and a pooled connection never stays in autocommit mode;
- a new student in classes (one statement for the student and its memberships) lands exactly
  like the separate inserts;
- batch statements (column arrays): associations written and read back field for field;
- the relay's fetch: a key is held back behind a row that is not due yet, whatever its
  attempts, and statistics do not change the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_core.errors import ClassManagementError, DuplicateStudentEmailError
from class_core.events import OutboxMessage
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.runtime import RequestContext
from class_core.testing import FixedClock
from class_core.use_cases.classes import CreateClass, create_class, get_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student

OWNER = "teacher-hot"


@pytest_asyncio.fixture(loop_scope="session")
async def one_connection(pg_database_factory: object) -> AsyncIterator[AsyncEngine]:
    """An engine whose pool holds a single connection: every unit of work reuses it."""
    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_write_after_reads_is_atomic(one_connection: AsyncEngine) -> None:
    engine = one_connection
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9B", ["ENG5"]))
    student = await create_student(rt, ctx, CreateStudent(PersonName("A", "B"), None, ()))
    assert (await get_class(rt, ctx, cls.id)).id == cls.id  # a read-only unit of work
    async with engine.connect() as conn:  # the same pooled connection, transactional again
        raw = await conn.get_raw_connection()
        assert raw.dbapi_connection is not None
        assert not raw.dbapi_connection.autocommit
    students_before = await _count(engine, "cms_students")
    outbox_before = await _count(engine, "cms_outbox")

    class Boom(Exception):
        pass

    async def read_then_write_then_fail() -> None:
        async with rt.uow() as uow:
            assert await uow.classes.get_many(OWNER, [cls.id])
            assert await uow.students.get(OWNER, student.id) is not None
            await uow.students.delete(student.id)
            await uow.outbox.add([_message("k", datetime.now(UTC))])
            assert await uow.students.get(OWNER, student.id) is None  # sees its own write
            raise Boom()

    async def write_then_fail() -> None:
        async with rt.uow() as uow:
            await uow.outbox.add([_message("k", datetime.now(UTC))])
            raise Boom()

    with pytest.raises(Boom):
        await read_then_write_then_fail()
    # The delete and the outbox row were one transaction, rolled back together.
    assert await _count(engine, "cms_students") == students_before
    assert await _count(engine, "cms_outbox") == outbox_before

    # The pooled connection is back in transactional mode: a uow that writes and then fails
    # leaves nothing, on the very same connection.
    with pytest.raises(Boom):
        await write_then_fail()
    assert await _count(engine, "cms_outbox") == outbox_before


async def test_duplicate_email_is_refused_without_a_look_up(clean_pg: AsyncEngine) -> None:
    rt = build_sql_runtime(clean_pg)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9C", ["ENG5"]))
    cmd = CreateStudent(PersonName("Ada", "Lovelace"), "Ada@Example.org", (cls.id,))
    await create_student(rt, ctx, cmd)
    students, outbox = await _count(clean_pg, "cms_students"), await _count(clean_pg, "cms_outbox")
    with pytest.raises(DuplicateStudentEmailError):
        await create_student(rt, ctx, CreateStudent(PersonName("X", "Y"), "ada@example.org"))
    with pytest.raises(DuplicateStudentEmailError):
        await create_student(rt, ctx, cmd)
    assert (await _count(clean_pg, "cms_students"), await _count(clean_pg, "cms_outbox")) == (
        students,
        outbox,
    )
    assert (await get_class(rt, ctx, cls.id)).student_count == 1


async def test_associations_batch_statements_round_trip(clean_pg: AsyncEngine) -> None:
    clock = FixedClock()
    rt = build_sql_runtime(clean_pg, clock=clock)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9D", ["SV1"]))
    s1 = await create_student(rt, ctx, CreateStudent(PersonName("A", "One"), None, (cls.id,)))
    now = clock.now()
    batch = Batch(uuid4(), cls.id, OWNER, "SV1", BatchStatus.PENDING, now, now, now)
    items = [
        Association(uuid4(), batch.batch_id, cls.id, s1.id, 0.91, ("name", "email"), now, now),
        Association(uuid4(), batch.batch_id, cls.id, None, None, (), now, now),
        Association(uuid4(), batch.batch_id, cls.id, s1.id, 0.0, ('åäö "quoted"',), now, now),
    ]
    async with rt.uow() as uow:
        await uow.batches.add(batch)
        await uow.batches.add_associations(items)
        await uow.commit()
    async with rt.uow() as uow:
        stored = await uow.batches.associations_by_essay([a.essay_id for a in items])
    assert stored == {a.essay_id: a for a in items}

    later = now + timedelta(minutes=5)
    items[0].decide(ValidationStatus.CONFIRMED, s1.id, ValidationMethod.HUMAN, "t", later)
    items[1].decide(ValidationStatus.REJECTED, None, ValidationMethod.HUMAN, "t", later)
    items[2].suggested_student_id, items[2].confidence_score = None, None
    items[2].match_reasons, items[2].updated_at = (), later
    async with rt.uow() as uow:
        await uow.batches.update_associations(items)
        await uow.commit()
    async with rt.uow() as uow:
        assert await uow.batches.associations(batch.batch_id) == sorted(
            items, key=lambda a: (a.created_at, a.essay_id)
        )
        assert await uow.batches.associations_by_essay([uuid4()]) == {}


def _message(key: str, at: datetime) -> OutboxMessage:
    event_id = uuid4()
    return OutboxMessage(
        event_id, "cms.test.topic", key, '{"x": 1}', (("event_id", str(event_id)),), at
    )


async def test_fetch_holds_a_key_behind_a_row_not_yet_due(clean_pg: AsyncEngine) -> None:
    rt = build_sql_runtime(clean_pg)
    store = SqlOutboxStore(clean_pg)
    now = datetime.now(UTC)
    ahead = _message("a", now + timedelta(seconds=30))  # a writer whose clock runs ahead
    a2, b1 = _message("a", now), _message("b", now)
    async with rt.uow() as uow:
        await uow.outbox.add([ahead, a2, b1])
        await uow.commit()
    for analyzed in (False, True):
        if analyzed:
            async with clean_pg.begin() as conn:
                await conn.execute(text("ANALYZE cms_outbox"))
        ready = await store.fetch_ready(now, 100)
        assert [r.message.event_id for r in ready] == [b1.event_id]
        later = await store.fetch_ready(now + timedelta(seconds=30), 100)
        assert [r.message.event_id for r in later] == [ahead.event_id, a2.event_id, b1.event_id]


async def test_new_student_in_a_class_lands_like_separate_inserts(
    one_connection: AsyncEngine,
) -> None:
    """create_student (the student and its memberships in one statement) writes exactly what
    the separate inserts of a bulk ``add_many`` write."""
    engine = one_connection
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9H", ["SV1"]))
    outbox_before = await _count(engine, "cms_outbox")
    cmd = CreateStudent(PersonName("Åsa", "Öberg", "Åsa Maria Öberg"), "asa@example.org", (cls.id,))
    held = await create_student(rt, ctx, cmd)
    # The same kind of student written by the bulk path: separate inserts.
    plain = Student(
        uuid4(),
        OWNER,
        "Åsa",
        "Öberg",
        "Åsa Maria Öberg",
        "asa2@example.org",
        held.created_at,
        held.updated_at,
        class_ids=(cls.id,),
    )
    spare = Student(uuid4(), OWNER, "No", "Class", None, None, held.created_at, held.created_at)
    async with rt.uow() as uow:
        await uow.students.add_many([plain, spare])  # two students: separate inserts
        await uow.commit()

    async with engine.connect() as conn:
        rows = {
            r.email: r
            for r in await conn.execute(
                text(
                    "SELECT s.*, m.class_id FROM cms_students s "
                    "JOIN cms_class_students m ON m.student_id = s.id"
                )
            )
        }
        events = (
            await conn.execute(
                text("SELECT topic, key, headers FROM cms_outbox ORDER BY seq OFFSET :n"),
                {"n": outbox_before},
            )
        ).all()
    a, b = rows["asa@example.org"], rows["asa2@example.org"]
    assert a.id == held.id
    assert b.id == plain.id
    assert a.class_id == b.class_id == cls.id
    skip = {"id", "email", "search_key", "created_at", "updated_at"}
    assert {k: v for k, v in a._mapping.items() if k not in skip} == {
        k: v for k, v in b._mapping.items() if k not in skip
    }
    assert a.created_at == held.created_at
    assert a.search_key.replace("asa@", "asa2@") == (b.search_key)
    assert [(t, k) for t, k, _ in events] == [
        ("huleedu.class.student.created.v1", str(held.id)),
        ("huleedu.notification.teacher.requested.v1", OWNER),
    ]
    assert [[h[0] for h in headers] for _, _, headers in events] == [
        ["event_id", "event_type", "correlation_id", "source_service"]
    ] * 2
    assert (await get_class(rt, ctx, cls.id)).student_count == 2


async def test_writes_are_seen_by_later_statements_and_roll_back_together(
    one_connection: AsyncEngine,
) -> None:
    """A statement after an insert sees it (same transaction); leaving without commit leaves
    nothing, and the pooled connection is transactional again."""
    engine = one_connection
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9F", ["ENG6"]))
    students_before = await _count(engine, "cms_students")
    outbox_before = await _count(engine, "cms_outbox")
    now = datetime.now(UTC)

    def new_student() -> Student:
        return Student(uuid4(), OWNER, "Held", "Write", None, None, now, now, class_ids=(cls.id,))

    class Boom(Exception):
        pass

    async def read_after_held_then_fail(student: Student) -> None:
        async with rt.uow() as uow:
            await uow.students.add(student)
            await uow.outbox.add([_message("k", now)])
            found = await uow.students.get(OWNER, student.id)
            assert found is not None
            assert found.class_ids == (cls.id,)
            raise Boom()

    async def held_then_fail(student: Student) -> None:
        async with rt.uow() as uow:
            await uow.students.add(student)
            await uow.outbox.add([_message("k", now)])
            raise Boom()

    with pytest.raises(Boom):
        await read_after_held_then_fail(new_student())
    with pytest.raises(Boom):
        await held_then_fail(new_student())
    assert await _count(engine, "cms_students") == students_before
    assert await _count(engine, "cms_outbox") == outbox_before
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.dbapi_connection is not None
        assert not raw.dbapi_connection.autocommit

    # Several writes, then a commit: all of it lands.
    student = new_student()
    async with rt.uow() as uow:
        await uow.students.add(student)
        await uow.outbox.add([_message("k", now)])
        await uow.students.add_memberships([])  # nothing to send
        other = await create_class_row(uow, now)
        await uow.outbox.add([_message("k2", now)])
        await uow.commit()
    assert await _count(engine, "cms_students") == students_before + 1
    assert await _count(engine, "cms_outbox") == outbox_before + 2
    async with rt.uow() as uow:
        assert await uow.classes.get(OWNER, other) is not None


async def create_class_row(uow: Any, now: datetime) -> UUID:
    from class_core.model import SchoolClass

    cls = SchoolClass(uuid4(), OWNER, f"Other {uuid4().hex[:6]}", "SV2", now, now)
    await uow.classes.add(cls)
    return cls.id


async def test_insert_into_a_vanished_class_fails_like_the_bulk_insert(
    clean_pg: AsyncEngine,
) -> None:
    """A class deleted between the read and the commit: the one-statement insert fails with
    the same error as the separate inserts of the bulk path, and nothing is written."""
    rt = build_sql_runtime(clean_pg)
    now = datetime.now(UTC)
    errors: list[type[BaseException]] = []

    async def write(new: list[Student]) -> None:
        async with rt.uow() as uow:
            await uow.students.add_many(new)
            await uow.outbox.add([_message("k", now)])
            await uow.commit()

    for spare in (False, True):  # one student (one statement), two (separate inserts)
        student = Student(uuid4(), OWNER, "No", "Class", None, None, now, now, class_ids=(uuid4(),))
        other = Student(uuid4(), OWNER, "Sp", "Are", None, None, now, now)
        with pytest.raises(ClassManagementError) as caught:
            await write([student, other] if spare else [student])
        errors.append(type(caught.value))
    assert errors[0] is errors[1]
    assert await _count(clean_pg, "cms_students") == 0
    assert await _count(clean_pg, "cms_outbox") == 0
