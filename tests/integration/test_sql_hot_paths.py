"""The SQL adapter's fast paths on PostgreSQL behave exactly like the plain ones.

- deferred ``BEGIN``: plain reads before a unit of work's first write run outside a
  transaction; the write and everything after it are still one transaction, and a pooled
  connection never stays in autocommit mode;
- batch statements (column arrays): associations written and read back field for field;
- the relay's fetch: a key is held back behind a row that is not due yet, whatever its
  attempts, and statistics do not change the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_core.errors import DuplicateStudentEmailError
from class_core.events import OutboxMessage
from class_core.model import Association, Batch, BatchStatus, ValidationMethod, ValidationStatus
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
            assert await uow.classes.get_many(OWNER, [cls.id])  # a plain read: no BEGIN yet
            assert await uow.students.get(OWNER, student.id) is not None
            await uow.students.delete(student.id)  # the first write: BEGIN
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
