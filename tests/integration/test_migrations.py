"""The shipped migrations on PostgreSQL and SQLite, and the SQL adapter's basics on SQLite."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import (
    SchemaNotAtHeadError,
    SqlOutboxStore,
    build_sql_runtime,
    create_engine,
    current,
    downgrade,
    ensure_at_head,
    head,
    is_at_head,
    load_courses,
    ping,
    upgrade,
)
from adapters_sql.schema import VERSION_TABLE, metadata
from class_core.courses import COURSES
from class_core.errors import (
    DependencyUnavailableError,
    DuplicateStudentEmailError,
    ResourceInUseError,
)
from class_core.matching import EssayMatch, SuggestionsMessage
from class_core.model import Student
from class_core.queries import ClassQuery, StudentQuery
from class_core.runtime import RequestContext
from class_core.testing import FixedClock
from class_core.use_cases.classes import CreateClass, create_class, delete_class, list_classes
from class_core.use_cases.matching import expire_due_batches, ingest_suggestions
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    create_student,
    get_student,
    list_students,
)

DatabaseFactory = Callable[..., Awaitable[str]]
CMS_TABLES = {
    "cms_alembic_version",
    "cms_batches",
    "cms_class_students",
    "cms_classes",
    "cms_courses",
    "cms_essay_associations",
    "cms_inbox",
    "cms_outbox",
    "cms_relay_leadership",
    "cms_students",
    "cms_student_history",
    "cms_imports",
    "cms_import_items",
    "cms_changes",
    "cms_change_feed_key",
}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            result = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        else:
            result = await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        return {r[0] for r in result if not r[0].startswith("sqlite_")}


async def _course_codes(engine: AsyncEngine) -> list[str]:
    return [c.code for c in await load_courses(engine)]


@pytest.fixture
async def fresh_pg(pg_database_factory: DatabaseFactory) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await pg_database_factory(), pool_size=2, max_overflow=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}")
    try:
        yield engine
    finally:
        await engine.dispose()


async def _up_down_up(engine: AsyncEngine) -> None:
    assert await current(engine) is None
    assert await is_at_head(engine) is False
    with pytest.raises(SchemaNotAtHeadError) as not_yet:
        await ensure_at_head(engine)
    message = str(not_yet.value)
    assert "class-admin db upgrade" in message
    assert "\n" not in message

    await upgrade(engine)
    assert await current(engine) == head()
    assert await is_at_head(engine)
    await ensure_at_head(engine)
    assert await _tables(engine) == CMS_TABLES
    assert await _course_codes(engine) == sorted(c.code for c in COURSES)

    await downgrade(engine)
    assert await current(engine) is None
    assert await _tables(engine) == {"cms_alembic_version"}

    await upgrade(engine)
    assert await is_at_head(engine)
    assert await _tables(engine) == CMS_TABLES


async def test_postgres_up_down_up(fresh_pg: AsyncEngine) -> None:
    await _up_down_up(fresh_pg)
    async with fresh_pg.connect() as conn:
        triggers = await conn.scalar(
            text("SELECT count(*) FROM pg_trigger WHERE tgname = 'cms_outbox_notify'")
        )
    assert triggers == 1


async def test_sqlite_up_down_up(sqlite_engine: AsyncEngine) -> None:
    await _up_down_up(sqlite_engine)


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_postgres_schema_matches_the_tables_the_code_uses(
    fresh_pg: AsyncEngine,
) -> None:
    await upgrade(fresh_pg)
    async with fresh_pg.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_upgrade_twice_is_a_no_op(fresh_pg: AsyncEngine, tmp_path: Path) -> None:
    for engine in (fresh_pg, create_engine(f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}")):
        await upgrade(engine)
        rt = build_sql_runtime(engine)
        cls = await create_class(rt, RequestContext("t"), CreateClass("9A", ["ENG5"]))
        await upgrade(engine)
        page = await list_classes(rt, RequestContext("t"), ClassQuery.build())
        assert [c.id for c in page.items] == [cls.id]
        assert len(await _course_codes(engine)) == 6
        assert await is_at_head(engine)
        if engine is not fresh_pg:
            await engine.dispose()


async def test_upgrade_accepts_a_url_and_concurrent_engines(
    pg_database_factory: DatabaseFactory,
) -> None:
    url = await pg_database_factory()
    engines = [create_engine(url, pool_size=1, max_overflow=0) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(e) for e in engines), upgrade(url))
        assert all([await is_at_head(e) for e in engines])
        assert await current(url) == head()
    finally:
        for engine in engines:
            await engine.dispose()


def _upgrade_in_processes(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    code = "import asyncio, sys, adapters_sql; asyncio.run(adapters_sql.upgrade(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


async def test_concurrent_upgrades_from_several_processes(
    pg_database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    for url in (await pg_database_factory(), f"sqlite+aiosqlite:///{tmp_path / 'many.db'}"):
        results = await asyncio.to_thread(_upgrade_in_processes, url, 3)
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
        assert await current(url) == head()
        engine = create_engine(url)
        try:
            assert len(await _course_codes(engine)) == 6
        finally:
            await engine.dispose()


async def test_sqlite_repository_basics(sqlite_engine: AsyncEngine) -> None:
    await upgrade(sqlite_engine)
    await ping(sqlite_engine)
    clock = FixedClock(datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC))
    rt = build_sql_runtime(sqlite_engine, clock=clock)
    me = RequestContext("teacher")
    cls = await create_class(rt, me, CreateClass("Åsa 9A", ["ENG5"]))
    # Several writers in one process queue up instead of failing on SQLite's lock.
    students = await asyncio.gather(
        *(
            create_student(rt, me, CreateStudent(PersonName(f"S{i}", "Berg"), None, [cls.id]))
            for i in range(10)
        )
    )
    with pytest.raises(DuplicateStudentEmailError):  # noqa: PT012 - one transaction
        async with rt.uow() as uow:
            for email in ("x@y.se", "x@y.se"):
                await uow.students.add(
                    Student(uuid4(), "teacher", "A", "B", None, email, clock.now(), clock.now())
                )

    got = await get_student(rt, me, students[0].id)
    assert got.created_at == clock.now()
    assert got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.class_ids == (cls.id,)
    page = await list_students(rt, me, StudentQuery.build(class_id=cls.id, limit=3))
    assert page.total == 10
    assert [s.first_name for s in page.items] == ["S0", "S1", "S2"]
    assert (await list_classes(rt, me, ClassQuery.build(q="åsa"))).items[0].student_count == 10

    batch_id = uuid4()
    message = SuggestionsMessage("m1", uuid4(), batch_id, cls.id, "ENG5", (EssayMatch(uuid4()),))
    await ingest_suggestions(rt, message)
    with pytest.raises(ResourceInUseError):
        await delete_class(rt, me, cls.id)
    with pytest.raises(ResourceInUseError):  # foreign keys are on: memberships refuse it
        async with rt.uow() as uow:
            await uow.classes.delete(cls.id)
    clock.advance(hours=25)
    assert [f.unknown_assigned for f in await expire_due_batches(rt)] == [1]

    store = SqlOutboxStore(sqlite_engine)
    async with store.leadership() as leader:
        assert leader is True
    ready = await store.fetch_ready(clock.now(), 1000)
    assert ready[0].message.created_at.tzinfo is not None
    status = await store.status(clock.now())
    assert status.pending == len(ready)
    assert status.oldest_pending_age_seconds == pytest.approx(25 * 3600)
    await store.mark_published([r.seq for r in ready], clock.now())
    assert await store.purge_published(clock.now() + timedelta(seconds=1)) == len(ready)


async def test_unopenable_sqlite_file_is_dependency_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        with pytest.raises(DependencyUnavailableError):
            await ping(engine)
        with pytest.raises(DependencyUnavailableError):
            await upgrade(engine)
    finally:
        await engine.dispose()


_WRITER = """
import asyncio, sys
from uuid import UUID
from adapters_sql import build_sql_runtime, create_engine
from class_core.runtime import RequestContext
from class_core.use_cases.students import CreateStudent, PersonName, create_student

async def main(url, class_id, tag):
    engine = create_engine(url)
    rt = build_sql_runtime(engine)
    for i in range(25):
        person = PersonName(f"{tag}{i}", "Writer")
        await create_student(rt, RequestContext("t"), CreateStudent(person, None, [UUID(class_id)]))
    await engine.dispose()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_sqlite_writers_in_several_processes_all_commit(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    await upgrade(sqlite_engine)
    rt = build_sql_runtime(sqlite_engine)
    cls = await create_class(rt, RequestContext("t"), CreateClass("9A", ["ENG5"]))
    url = f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}"

    def run_writers() -> list[subprocess.CompletedProcess[str]]:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, url, str(cls.id), tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for tag in ("a", "b", "c")
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results

    results = await asyncio.to_thread(run_writers)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    page = await list_students(rt, RequestContext("t"), StudentQuery.build(class_id=cls.id))
    assert page.total == 75


_CLASS_ROWS = (
    "INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at) "
    "VALUES ('class', :id, 'teacher-a', 'upsert', :v, '2026-12-06 00:00:00.000000')"
)


async def _feed_seqs(engine: AsyncEngine) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT seq, version FROM cms_changes ORDER BY seq"))
        return [(int(r[0]), int(r[1])) for r in found]


async def test_postgres_append_only_feed_migration(fresh_pg: AsyncEngine) -> None:
    await _append_only_feed_migration(fresh_pg, "postgresql")


async def test_sqlite_append_only_feed_migration(sqlite_engine: AsyncEngine) -> None:
    await _append_only_feed_migration(sqlite_engine, "sqlite")


async def _append_only_feed_migration(engine: AsyncEngine, dialect: str) -> None:
    """r0030 on a feed with rows: a ``seq`` given before it is never given again (SQLite's
    rebuilt table keeps AUTOINCREMENT and its high-water mark), a class may then have several
    rows, and the downgrade keeps each class's newest."""
    class_id = str(uuid4()) if dialect == "postgresql" else uuid4().hex
    await upgrade(engine, "r0029_feed_moved_together")
    async with engine.begin() as conn:
        await conn.execute(text(_CLASS_ROWS), {"id": class_id, "v": 1})
        top = str(uuid4()) if dialect == "postgresql" else uuid4().hex
        await conn.execute(text(_CLASS_ROWS), {"id": top, "v": 9})
        await conn.execute(text("DELETE FROM cms_changes WHERE version = 9"))
    (before,) = await _feed_seqs(engine)
    await upgrade(engine)
    if dialect == "sqlite":
        async with engine.connect() as conn:
            ddl = await conn.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = 'cms_changes'")
            )
        assert "AUTOINCREMENT" in str(ddl)
        assert "ck_cms_changes_entity" in str(ddl)
    async with engine.begin() as conn:
        await conn.execute(text(_CLASS_ROWS), {"id": class_id, "v": 2})
    first, second = await _feed_seqs(engine)
    assert first == before
    assert second[0] > before[0] + 1  # the deleted row's seq is not given again
    await downgrade(engine, "r0029_feed_moved_together")
    assert await _feed_seqs(engine) == [second]
