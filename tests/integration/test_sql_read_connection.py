"""The read-only unit of work's connection on PostgreSQL (issue 15): an idle pooled connection
is taken and given back without SQLAlchemy's greenlet path, the pool ends where it started,
and every other case (a read through SQLAlchemy, an error, a connection the server closed, an
empty pool) still takes the ordinary path and leaves a usable pool."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters_sql import build_sql_runtime, create_engine
from adapters_sql.schema import classes as classes_table
from adapters_sql.uow import SqlUnitOfWork
from class_core.model import SchoolClass
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class, get_class

OWNER = "teacher-reads"


def _counting_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of ``AsyncEngine.connect`` (the greenlet path)."""
    calls: list[int] = []
    original = AsyncEngine.connect

    def connect(self: AsyncEngine) -> Any:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(AsyncEngine, "connect", connect)
    return calls


async def test_reads_take_an_idle_connection_without_the_greenlet_path(
    two_connections: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = two_connections
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("7C", ["ENG7"]))  # leaves an idle connection
    pool: Any = engine.sync_engine.pool
    idle = pool.checkedin()
    assert idle >= 1
    calls = _counting_connects(monkeypatch)
    for _ in range(20):
        assert (await get_class(rt, ctx, cls.id)).name == "7C"
    assert calls == []
    assert pool.checkedout() == 0
    assert pool.checkedin() == idle  # every read gave its connection back


async def test_an_empty_pool_opens_through_the_ordinary_path(
    pg_database_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(await pg_database_factory(migrated=True), pool_size=1, max_overflow=0)
    try:
        rt = build_sql_runtime(engine)
        calls = _counting_connects(monkeypatch)
        async with rt.read() as uow:  # nothing pooled yet: the connection has to be opened
            assert await uow.classes.get(OWNER, uuid4()) is None
        assert calls == [1]
        assert engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_read_through_sqlalchemy_returns_a_transactional_connection(
    two_connections: AsyncEngine,
) -> None:
    engine = two_connections
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("8A", ["ENG7"]))
    async with rt.read() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        # A statement that goes through SQLAlchemy switches the connection to autocommit.
        rows = await uow._tx.execute(  # the path under test
            select(classes_table.c.id).where(classes_table.c.id == cls.id)
        )
        assert [r[0] for r in rows] == [cls.id]
    for _ in range(2):  # whichever pooled connection comes next is transactional again
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert raw.dbapi_connection is not None
            assert not raw.dbapi_connection.autocommit
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_an_error_inside_a_read_gives_the_connection_back(
    two_connections: AsyncEngine,
) -> None:
    engine = two_connections
    rt = build_sql_runtime(engine)

    class Boom(Exception):
        pass

    async def read_then_fail() -> None:
        async with rt.read() as uow:
            await uow.classes.get(OWNER, uuid4())
            raise Boom()

    with pytest.raises(Boom):
        await read_then_fail()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with rt.read() as uow:
        assert await uow.classes.get(OWNER, uuid4()) is None


# The synchronous checkout meets the closed connection, stops at SQLAlchemy's MissingGreenlet
# before any I/O (the driver's connect coroutine it discarded warns) and the greenlet path
# replaces the connection (docs/performance.md, "GET class: the edge").
@pytest.mark.filterwarnings("ignore:coroutine 'connect' was never awaited:RuntimeWarning")
async def test_an_idle_connection_closed_by_the_server_is_replaced(
    two_connections: AsyncEngine,
) -> None:
    engine = two_connections
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("9D", ["ENG7"]))
    async with engine.connect() as killer, engine.connect() as victim:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await victim.rollback()
        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await killer.rollback()
        driver: Any = (await victim.get_raw_connection()).driver_connection
        for _ in range(200):  # until the driver has read the server's goodbye
            if driver.is_closed():
                break
            await asyncio.sleep(0.01)
        assert driver.is_closed()
    pool: Any = engine.sync_engine.pool
    assert pool.checkedin() == 2  # one of them closed by the server, still pooled
    for _ in range(4):  # whichever connection a read is handed, it answers
        assert (await get_class(rt, ctx, cls.id)).name == "9D"
    assert pool.checkedout() == 0


def _counting_closes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of ``AsyncConnection.close`` (the greenlet path of a checkin)."""
    calls: list[int] = []
    original = AsyncConnection.close

    async def close(self: AsyncConnection) -> None:
        calls.append(1)
        await original(self)

    monkeypatch.setattr(AsyncConnection, "close", close)
    return calls


async def test_committed_writes_take_and_return_the_connection_without_the_greenlet_path(
    two_connections: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write transaction on PostgreSQL takes an idle connection directly too, and gives it
    back directly once committed (nothing to roll back); one that did not commit is rolled
    back through the ordinary path and leaves nothing behind."""
    engine = two_connections
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    await create_class(rt, ctx, CreateClass("7D", ["ENG7"]))  # leaves an idle connection
    pool: Any = engine.sync_engine.pool
    idle = pool.checkedin()
    connects, closes = _counting_connects(monkeypatch), _counting_closes(monkeypatch)
    for n in range(10):
        await create_class(rt, ctx, CreateClass(f"8{n}", ["ENG7"]))
    assert (connects, closes) == ([], [])
    assert (pool.checkedout(), pool.checkedin()) == (0, idle)
    name = f"never-{uuid4()}"
    async with rt.uow() as uow:  # written, not committed: rolled back on the ordinary path
        now = rt.now()
        await uow.classes.add(SchoolClass(uuid4(), OWNER, name, "SV1", now, now))
    assert closes == [1]
    assert (pool.checkedout(), pool.checkedin()) == (0, idle)
    async with engine.connect() as conn:
        found = await conn.scalar(select(classes_table.c.id).where(classes_table.c.name == name))
    assert found is None
