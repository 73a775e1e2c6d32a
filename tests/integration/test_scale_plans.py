"""A teacher's reads cost the same whatever the database holds: no hot statement reads a big
table from end to end.

A database is filled with a few hundred thousand rows of other owners (``bench.scale_seed``:
students, memberships, batches, associations, outbox rows) and ``ANALYZE``d, as a live
database is. Then each hot read runs through the real use cases and adapters while every
statement they send is recorded (``tests.support.plans``), and each is EXPLAINed with its own
parameters and as the generic plan that a cached prepared statement switches to. A sequential
scan of a table that grows with the whole service fails the test, naming the statement and its
plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio
from bench.scale_seed import ScaleSize, seed, seeded_owner

from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_core.changes import FeedPosition, encode_cursor
from class_core.queries import BatchQuery, ClassQuery, StudentQuery
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.changes import read_changes
from class_core.use_cases.classes import get_class, get_roster, list_classes
from class_core.use_cases.matching import (
    batch_class_info,
    decided_student_for_essay,
    decided_students,
    expire_due_batches,
    get_batch_associations,
    list_batches,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    create_student,
    get_student,
    list_students,
)
from tests.support.plans import StatementLog, plan_problems

# 1,000 owners × 3 classes × 30 students and two schools' year groups (20 classes of 3,000):
# ≈ 150,000 students and memberships, 30,000 associations, 180,000 outbox rows (seconds).
TEACHERS = ScaleSize(owners=1_000, classes_per_owner=3, students_per_class=30)
SCHOOLS = ScaleSize(
    owners=0,
    classes_per_owner=1,
    students_per_class=1,
    big_classes=20,
    big_class_students=3_000,
    tag="y",
)
SIZE = ScaleSize(
    owners=TEACHERS.owners,
    classes_per_owner=TEACHERS.classes_per_owner,
    students_per_class=TEACHERS.students_per_class,
    big_classes=SCHOOLS.big_classes,
    big_class_students=SCHOOLS.big_class_students,
)
GROWING_TABLES = frozenset(
    {
        "cms_students",
        "cms_class_students",
        "cms_batches",
        "cms_essay_associations",
        "cms_outbox",
    }
)


@dataclass(frozen=True)
class Seeded:
    statistics: str
    rt: Runtime
    log: StatementLog
    store: SqlOutboxStore
    conn: asyncpg.Connection
    owner: str
    class_id: UUID
    class_name: str
    student_id: UUID
    batch_id: UUID
    essay_id: UUID


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["fresh", "stale"])
async def seeded(
    request: pytest.FixtureRequest, pg_database_factory: object
) -> AsyncIterator[Seeded]:
    """``fresh``: everything seeded, then ``ANALYZE``. ``stale``: the statistics of a bulk
    import in progress — last analyzed when the database held only the schools' year groups
    (few, large classes), before the thousand teachers' classes arrived (autovacuum's
    ``ANALYZE`` lags behind bulk loads)."""
    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    conn = await asyncpg.connect(url)
    if request.param == "fresh":
        await seed(conn, SIZE)
    else:
        await seed(conn, SCHOOLS)
        await seed(conn, TEACHERS, analyze=False)
    # An owner in the middle of the data, with a class that has a batch and a placeholder.
    owner = seeded_owner(SIZE.owners // 2)
    row = await conn.fetchrow(
        "SELECT b.batch_id, b.class_id, c.name FROM cms_batches b "
        "JOIN cms_classes c ON c.id = b.class_id "
        "WHERE b.owner_id = $1 AND b.status = 'finalized' ORDER BY b.batch_id LIMIT 1",
        owner,
    )
    assert row is not None
    student_id = await conn.fetchval(
        "SELECT student_id FROM cms_class_students m JOIN cms_students s ON s.id = m.student_id "
        "WHERE m.class_id = $1 AND NOT s.is_placeholder LIMIT 1",
        row["class_id"],
    )
    essay_id = await conn.fetchval(
        "SELECT essay_id FROM cms_essay_associations WHERE batch_id = $1 LIMIT 1",
        row["batch_id"],
    )
    engine = create_engine(url, pool_size=2, max_overflow=0)
    log = StatementLog()
    log.attach(engine)
    try:
        yield Seeded(
            request.param,
            build_sql_runtime(engine),
            log,
            SqlOutboxStore(engine),
            conn,
            owner,
            row["class_id"],
            row["name"],
            student_id,
            row["batch_id"],
            essay_id,
        )
    finally:
        await engine.dispose()
        await conn.close()


def _hot_reads(s: Seeded) -> dict[str, Callable[[], Awaitable[object]]]:
    ctx = RequestContext(s.owner)

    async def find_class_by_name() -> object:
        async with s.rt.uow() as uow:
            return await uow.classes.find_by_name(s.owner, f"  {s.class_name.upper()} ")

    async def find_classes_by_names() -> object:
        async with s.rt.uow() as uow:
            return await uow.classes.find_by_names(s.owner, [s.class_name, "Klass 99"])

    async def change_feed_page() -> object:
        # The owner's classes and students in the log (written on the side, not recorded),
        # then a page from a cursor before them: the log's page and the data's two reads.
        for table, entity in (("cms_classes", "class"), ("cms_students", "student")):
            await s.conn.execute(
                "INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at, xid) "
                f"SELECT '{entity}', id, owner_id, 'upsert', version, now(), 1 FROM {table} "
                "WHERE owner_id = $1 ON CONFLICT DO NOTHING",
                s.owner,
            )
        snapshot = await s.conn.fetchval("SELECT pg_current_snapshot()::text")
        secret = await s.conn.fetchval("SELECT secret FROM cms_change_feed_key")
        cursor = encode_cursor(FeedPosition(0, snapshot), datetime.now(UTC), bytes.fromhex(secret))
        page = await read_changes(s.rt, ctx, cursor, 1000)
        assert page.items
        return page

    return {
        "change feed page": change_feed_page,
        "class": lambda: get_class(s.rt, ctx, s.class_id),
        "class list": lambda: list_classes(s.rt, ctx, ClassQuery.build()),
        "class list q": lambda: list_classes(s.rt, ctx, ClassQuery.build(q="klass")),
        "class list course": lambda: list_classes(s.rt, ctx, ClassQuery.build(course_code="ENG5")),
        "class list since": lambda: list_classes(
            s.rt, ctx, ClassQuery.build(updated_since=datetime(2020, 1, 1, tzinfo=UTC))
        ),
        "roster (owner)": lambda: get_roster(s.rt, s.owner, s.class_id),
        "roster (internal key)": lambda: get_roster(s.rt, None, s.class_id),
        "student": lambda: get_student(s.rt, ctx, s.student_id),
        "students": lambda: list_students(s.rt, ctx, StudentQuery.build()),
        "students of a class": lambda: list_students(
            s.rt, ctx, StudentQuery.build(class_id=s.class_id)
        ),
        "student search q": lambda: list_students(s.rt, ctx, StudentQuery.build(q="anna")),
        "student search q in a class": lambda: list_students(
            s.rt, ctx, StudentQuery.build(q="berg", class_id=s.class_id)
        ),
        "batch view": lambda: get_batch_associations(s.rt, ctx, s.batch_id),
        "batch queue": lambda: list_batches(s.rt, ctx, BatchQuery.build()),
        "batch queue all of a class": lambda: list_batches(
            s.rt, ctx, BatchQuery.build(status="all", class_id=s.class_id)
        ),
        "batch queue finalized, past the end": lambda: list_batches(
            s.rt, ctx, BatchQuery.build(status="finalized", offset=1000)
        ),
        "class-info": lambda: batch_class_info(s.rt, [s.batch_id]),
        "student-names": lambda: decided_students(s.rt, s.batch_id),
        "association by essay": lambda: decided_student_for_essay(s.rt, s.essay_id),
        "import: class by name": find_class_by_name,
        "import: classes by names": find_classes_by_names,
        "POST student": lambda: create_student(
            s.rt, ctx, CreateStudent(PersonName("Plan", "Probe"), None, (s.class_id,))
        ),
        "relay fetch": lambda: s.store.fetch_ready(datetime.now(UTC), 500),
        "timeout sweep": lambda: expire_due_batches(s.rt),
    }


HOT_READS = [
    "class",
    "class list",
    "class list q",
    "class list course",
    "class list since",
    "roster (owner)",
    "roster (internal key)",
    "student",
    "students",
    "students of a class",
    "student search q",
    "student search q in a class",
    "batch view",
    "batch queue",
    "batch queue all of a class",
    "batch queue finalized, past the end",
    "class-info",
    "student-names",
    "association by essay",
    "change feed page",
    "import: class by name",
    "import: classes by names",
    "POST student",
    "relay fetch",
    "timeout sweep",
]


# With statistics taken while the associations table was empty, the sweep's decisions UPDATE
# (50 batches' essays) still hashes the whole table: the planner's cheapest plan for a table
# it believes tiny. Not fixed (docs/performance.md, "Open").
NEEDS_FRESH_STATISTICS = frozenset({"timeout sweep"})


@pytest.mark.parametrize("name", HOT_READS)
async def test_hot_statement_plans_do_not_scan_growing_tables(
    seeded: Seeded, name: str, request: pytest.FixtureRequest
) -> None:
    if seeded.statistics == "stale" and name in NEEDS_FRESH_STATISTICS:
        # A known gap, shown as such; strict: once fixed, this marker must go.
        request.applymarker(pytest.mark.xfail(strict=True, reason="needs fresh statistics"))
    run = _hot_reads(seeded)[name]
    with seeded.log.recording() as statements:
        await run()
        await asyncio.sleep(0)  # the driver's query logger reports with call_soon
        await asyncio.sleep(0)
    assert statements, f"{name}: no statement was recorded"
    problems = await plan_problems(seeded.conn, statements, GROWING_TABLES)
    assert not problems, f"{name}:\n" + "\n\n".join(str(p) for p in problems)


async def test_every_hot_read_is_checked(seeded: Seeded) -> None:
    assert sorted(_hot_reads(seeded)) == sorted(HOT_READS)
