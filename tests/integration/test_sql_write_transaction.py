"""A write unit of work on PostgreSQL is one asyncpg transaction (``adapters_sql.transaction``):
statements sent straight to the driver and statements through SQLAlchemy share it, leaving
without a commit undoes both, an error at ``COMMIT`` is translated like a statement's, and a
connection whose transaction could not be ended (a failed or cancelled ``ROLLBACK``, a failed
``BEGIN``) is closed and replaced, never handed to the next unit of work."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters_sql import build_sql_runtime
from adapters_sql.schema import classes as classes_table
from class_core.errors import DependencyUnavailableError, DuplicateStudentEmailError
from class_core.model import SchoolClass
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class, get_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student

OWNER = "teacher-writes"


@pytest.fixture
def engine(two_connections: AsyncEngine) -> AsyncEngine:
    return two_connections


async def _class_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(classes_table.c.name))
        return {r[0] for r in rows}


async def _open_transactions(engine: AsyncEngine) -> int:
    """Sessions of this database left inside a transaction (other than the asking one)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
        return int(found.scalar_one())


async def test_driver_and_sqlalchemy_statements_share_the_transaction(engine: AsyncEngine) -> None:
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Shared 1", ["ENG5"]))
    kept, dropped = f"kept-{uuid4()}", f"dropped-{uuid4()}"
    for name, commit in ((kept, True), (dropped, False)):
        async with rt.uow() as uow:
            now = rt.now()
            new = SchoolClass(uuid4(), OWNER, name, "SV1", now, now)
            await uow.classes.add(new)  # through SQLAlchemy
            found = await uow.classes.get_many(OWNER, [cls.id], lock=True)  # the driver
            assert cls.id in found
            async with engine.connect() as other:  # not visible outside before the commit
                seen = await other.execute(
                    select(classes_table.c.id).where(classes_table.c.name == name)
                )
                assert seen.first() is None
            if commit:
                await uow.commit()
    names = await _class_names(engine)
    assert kept in names
    assert dropped not in names
    assert await _open_transactions(engine) == 0


async def test_a_refused_write_rolls_back_everything_before_it(engine: AsyncEngine) -> None:
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Refused 1", ["ENG6"]))
    email = f"taken-{uuid4()}@example.org"
    person = PersonName("Ada", "Taken")
    await create_student(rt, ctx, CreateStudent(person, email, (cls.id,)))
    with pytest.raises(DuplicateStudentEmailError):
        await create_student(rt, ctx, CreateStudent(person, email, (cls.id,)))
    assert (await get_class(rt, ctx, cls.id)).student_count == 1
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0
    assert await _open_transactions(engine) == 0


async def test_an_error_at_commit_is_translated(engine: AsyncEngine) -> None:
    """A deferred constraint fails at ``COMMIT``, not at its statement: translated all the
    same (a deferred unique constraint made for the test, in a schema of its own, named like
    the email rule's so that the translation is visible)."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS t_commit"))
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS t_commit.deferred (k int, "
                "CONSTRAINT uq_cms_students_owner_email UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    rt = build_sql_runtime(engine)
    twice = text("INSERT INTO t_commit.deferred (k) VALUES (1), (1)")

    async def write_twice_and_commit() -> None:
        async with rt.uow() as uow:
            await uow._tx.write(twice, {})  # type: ignore[attr-defined]  # accepted until COMMIT
            await uow.commit()

    with pytest.raises(DuplicateStudentEmailError):
        await write_twice_and_commit()
    assert await _open_transactions(engine) == 0
    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM t_commit.deferred"))
        ).scalar_one() == 0


@pytest.mark.parametrize("failure", [OSError("cut"), asyncio.CancelledError()])
async def test_a_rollback_that_fails_closes_the_connection(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Rollback 1", ["SV2"]))
    original = asyncpg.transaction.Transaction.rollback
    drivers: list[Any] = []

    async def failing(self: Any) -> None:
        drivers.append(self._connection)
        raise failure

    async def lock_then_fail() -> None:
        async with rt.uow() as uow:
            await uow.classes.get_many(OWNER, [cls.id], lock=True)
            raise RuntimeError("the use case failed")  # the unit of work rolls back

    monkeypatch.setattr(asyncpg.transaction.Transaction, "rollback", failing)
    with pytest.raises(RuntimeError if isinstance(failure, Exception) else type(failure)):
        await lock_then_fail()
    monkeypatch.setattr(asyncpg.transaction.Transaction, "rollback", original)
    assert len(drivers) == 1
    assert drivers[0].is_closed()  # never pooled as it was
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0
    for _ in range(4):  # whichever connection the pool hands out, it works
        assert (await get_class(rt, ctx, cls.id)).name == "Rollback 1"
        await create_class(rt, ctx, CreateClass(f"After {uuid4()}", ["SV2"]))
    assert await _open_transactions(engine) == 0


async def test_a_pooled_connection_left_in_a_transaction_is_replaced(engine: AsyncEngine) -> None:
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Left open 1", ["ENG7"]))
    async with engine.connect() as conn:  # a connection returned inside a raw transaction
        raw = await conn.get_raw_connection()
        left: Any = raw.driver_connection
        await left.execute("BEGIN")
    for _ in range(4):
        assert (await get_class(rt, ctx, cls.id)).name == "Left open 1"
        await create_class(rt, ctx, CreateClass(f"Next {uuid4()}", ["ENG7"]))
    assert left.is_closed() or not left.is_in_transaction()
    assert await _open_transactions(engine) == 0


async def test_a_failed_begin_is_unavailable_and_discards_the_connection(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Begin 1", ["SV3"]))
    original = asyncpg.transaction.Transaction.start

    async def failing(self: Any) -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("gone")

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", failing)
    with pytest.raises(DependencyUnavailableError):
        await create_class(rt, ctx, CreateClass("Never", ["SV3"]))
    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", original)
    pool: Any = engine.sync_engine.pool
    assert pool.checkedout() == 0
    assert "Never" not in await _class_names(engine)
    assert (await get_class(rt, ctx, cls.id)).name == "Begin 1"
    await create_class(rt, ctx, CreateClass(f"Works {uuid4()}", ["SV3"]))


async def test_creating_a_student_in_a_class_goes_through_the_driver_only(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's hottest write (docs/performance.md): ``BEGIN``, the class's share lock, the
    student's insert, the commit's rows and ``COMMIT`` without SQLAlchemy executing anything
    (no greenlet, no execution context)."""
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Driver only 1", ["ENG5"]))
    calls: list[str] = []
    for name in ("execute", "commit", "rollback", "execution_options"):
        original = getattr(AsyncConnection, name)

        def counted(self: Any, *args: Any, _n: str = name, _o: Any = original, **kw: Any) -> Any:
            calls.append(_n)
            return _o(self, *args, **kw)

        monkeypatch.setattr(AsyncConnection, name, counted)
    person = PersonName("Grace", "Driver")
    student = await create_student(rt, ctx, CreateStudent(person, None, (cls.id,)))
    assert calls == []
    monkeypatch.undo()
    assert (await get_class(rt, ctx, cls.id)).student_count == 1
    assert list(student.class_ids) == [cls.id]
