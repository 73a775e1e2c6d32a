"""The write path of a SQL unit of work on PostgreSQL (docs/performance.md, "POST student").

- A class's change-feed row is appended, and the class's older rows that no other
  transaction holds are deleted (migration r0030), so two open transactions that both log a
  change of one class never wait for each other, neither in the statement nor at COMMIT; the
  class's next change leaves it one row again.
- Hot statements go straight to asyncpg inside the transaction (``SqlTransaction.write``); a
  constraint they break is still the core's error, and the connection is fine afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from unittest.mock import ANY
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlUnitOfWork, build_sql_runtime, create_engine
from class_core.changes import ChangeKey, Entity, Op, PendingChange
from class_core.errors import DuplicateStudentEmailError
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.faultproxy import ThreadedFaultProxy


async def _scalar(engine: AsyncEngine, sql: str, **params: object) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def _feed_rows(engine: AsyncEngine, object_id: object) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT seq, version FROM cms_changes WHERE object_id = :id ORDER BY seq"),
            {"id": object_id},
        )
        return [(int(r[0]), int(r[1])) for r in found]


@pytest.mark.parametrize("many", [False, True], ids=["few", "many"])
async def test_open_transactions_log_a_change_of_one_class_without_waiting(
    clean_pg: AsyncEngine, many: bool
) -> None:
    """Two open transactions log one class (an API write's few rows, or an import chunk's
    arrays past ``_PG_FEW``), then a third holds the class's rows while committing: nobody
    waits, a row of each concurrent writer stays, and a later change leaves one."""
    owner = f"teacher-{uuid4()}"
    class_id = uuid4()
    at = datetime.now(UTC)
    others = 20 if many else 0  # more classes than _PG_FEW: the array statement

    def change(version: int) -> dict[ChangeKey, PendingChange]:
        found = {(Entity.CLASS, class_id): PendingChange(Op.UPSERT, at, owner, version)}
        found.update(
            ((Entity.CLASS, uuid4()), PendingChange(Op.UPSERT, at, owner, version))
            for _ in range(others)
        )
        return found

    student = {(Entity.STUDENT, uuid4()): PendingChange(Op.UPSERT, at, owner, 1)}
    async with SqlUnitOfWork(clean_pg) as first:
        await first.changes.write(change(1))
        await first.commit()
    async with SqlUnitOfWork(clean_pg) as second, SqlUnitOfWork(clean_pg) as third:
        await second.changes.write({**change(2), **student})
        # Holds the first row (its delete): the third skips it instead of waiting.
        await asyncio.wait_for(third.changes.write(change(3)), 5)
        assert await _feed_rows(clean_pg, class_id) == [(ANY, 1)]  # nothing committed yet
        await third.commit()
        await second.commit()
    rows = await _feed_rows(clean_pg, class_id)
    assert [version for _, version in rows] == [2, 3]  # the first went; neither saw the other
    async with SqlUnitOfWork(clean_pg) as fourth:
        await fourth.changes.write(change(4))
        await fourth.commit()
    (only,) = await _feed_rows(clean_pg, class_id)
    assert only[1] == 4
    assert only[0] > rows[-1][0]


async def test_a_transactions_changes_of_one_class_leave_its_last(clean_pg: AsyncEngine) -> None:
    """Many classes and several changes of one class in one transaction (an import's chunk),
    beside another transaction's uncommitted row: each class the chunk wrote has one row,
    with the values of its last change; the other transaction's row is its own."""
    owner = f"teacher-{uuid4()}"
    at = datetime.now(UTC)
    classes = [uuid4() for _ in range(300)]
    async with SqlUnitOfWork(clean_pg) as chunk, SqlUnitOfWork(clean_pg) as other:
        await chunk.changes.write(
            {(Entity.CLASS, c): PendingChange(Op.UPSERT, at, owner, 1) for c in classes}
        )
        lone = uuid4()
        await other.changes.write({(Entity.CLASS, lone): PendingChange(Op.UPSERT, at, owner, 7)})
        later = at.replace(microsecond=0)
        await chunk.changes.write(
            {(Entity.CLASS, c): PendingChange(Op.UPSERT, later, owner, 2) for c in classes[:50]}
        )
        await chunk.commit()
        assert await _feed_rows(clean_pg, lone) == []
        await other.commit()
    async with clean_pg.connect() as conn:
        rows = (
            await conn.execute(text("SELECT object_id, version, at, entity FROM cms_changes"))
        ).all()
    found = {r.object_id: (r.version, r.at, r.entity) for r in rows}
    assert len(rows) == len(found) == 301
    assert found[lone] == (7, at, "class")
    assert {found[c] for c in classes[:50]} == {(2, later, "class")}
    assert {found[c] for c in classes[50:]} == {(1, at, "class")}


async def test_a_class_delete_follows_its_upserts_and_students_keep_one_row(
    clean_pg: AsyncEngine,
) -> None:
    """A class's delete is appended like its upserts and leaves only the tombstone; a
    student's changes move its one row (the partial unique index is the upsert's arbiter)."""
    owner = f"teacher-{uuid4()}"
    at = datetime.now(UTC)
    class_id, student_id = uuid4(), uuid4()
    for version, op in ((1, Op.UPSERT), (2, Op.UPSERT), (3, Op.DELETE)):
        async with SqlUnitOfWork(clean_pg) as uow:
            await uow.changes.write(
                {
                    (Entity.CLASS, class_id): PendingChange(op, at, owner, version),
                    (Entity.STUDENT, student_id): PendingChange(op, at, owner, version),
                }
            )
            await uow.commit()
    async with clean_pg.connect() as conn:
        rows = (
            await conn.execute(text("SELECT entity, op, version FROM cms_changes ORDER BY entity"))
        ).all()
    assert [tuple(r) for r in rows] == [("class", "delete", 3), ("student", "delete", 3)]


async def test_a_rolled_back_transaction_logs_nothing_for_its_class(clean_pg: AsyncEngine) -> None:
    owner = f"teacher-{uuid4()}"
    class_id = uuid4()
    at = datetime.now(UTC)
    async with SqlUnitOfWork(clean_pg) as uow:
        await uow.changes.write({(Entity.CLASS, class_id): PendingChange(Op.UPSERT, at, owner, 1)})
        await uow.commit()
    async with SqlUnitOfWork(clean_pg) as uow:
        await uow.changes.write({(Entity.CLASS, class_id): PendingChange(Op.UPSERT, at, owner, 2)})
    # Neither the new row nor the delete of the old one.
    assert [v for _, v in await _feed_rows(clean_pg, class_id)] == [1]


async def test_a_taken_email_refused_on_the_direct_path_is_the_core_error(
    clean_pg: AsyncEngine,
) -> None:
    rt = build_sql_runtime(clean_pg)
    ctx = RequestContext(f"teacher-{uuid4()}")
    cls = await create_class(rt, ctx, CreateClass("Direct", ["ENG5"]))
    given = CreateStudent(PersonName("Ada", "L"), "ada@example.org", [cls.id])
    await create_student(rt, ctx, given)
    with pytest.raises(DuplicateStudentEmailError):
        await create_student(rt, ctx, given)
    # The connection went back to the pool rolled back: the next writes work.
    other = CreateStudent(PersonName("Bo", "M"), "bo@example.org", [cls.id])
    for _ in range(3):
        created = await create_student(rt, ctx, other)
        other = CreateStudent(PersonName("Bo", "M"), f"bo{created.id}@example.org", [cls.id])
    count = await _scalar(
        clean_pg, "SELECT count(*) FROM cms_class_students WHERE class_id = :id", id=cls.id
    )
    assert count == 4


async def test_creating_a_student_in_a_class_is_five_round_trips(
    pg_url: str, pg_server_url: str
) -> None:
    """BEGIN, the class read with its share lock, the student with its membership, the
    commit's history + outbox + change-feed rows in one statement, COMMIT: counted through a
    proxy that delays every packet, against one ``SELECT 1`` on the same warm connection."""
    server = make_url(pg_server_url)
    with ThreadedFaultProxy(server.host or "127.0.0.1", server.port or 5432) as proxy:
        url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
        engine = create_engine(url.render_as_string(hide_password=False), pool_size=1)
        try:
            rt = build_sql_runtime(engine)
            ctx = RequestContext(f"teacher-{uuid4()}")
            school_class = await create_class(rt, ctx, CreateClass("9A", ["ENG5"]))

            async def create(n: int) -> None:
                name = PersonName("Round", f"Trip {n}")
                await create_student(rt, ctx, CreateStudent(name, None, (school_class.id,)))

            for n in range(3):  # warm: the connection and its prepared statements
                await create(n)
            proxy.proxy.latency(60)

            async def timed(work: Callable[[], Awaitable[object]]) -> float:
                start = time.perf_counter()
                await work()
                return time.perf_counter() - start

            raw = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
            try:
                await raw.fetchval("SELECT 1")
                one = min([await timed(lambda: raw.fetchval("SELECT 1")) for _ in range(3)])
            finally:
                await raw.close()
            took = min([await timed(partial(create, 10 + n)) for n in range(2)])
        finally:
            await engine.dispose()
    round_trips = took / one
    assert 4.5 < round_trips < 5.5, (round_trips, one, took)
