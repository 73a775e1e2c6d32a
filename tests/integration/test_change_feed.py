"""The change feed's log (contract §9.3) on every store: in-memory, SQLite and PostgreSQL.

The property every test checks: replaying the feed from a cursor onto a copy of the lists
taken right after that cursor reproduces the current lists exactly. On PostgreSQL it is
checked under concurrent writers, one of which takes its feed sequence number early and
commits late (the outbox trap of the field notes).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlUnitOfWork, build_sql_runtime, create_engine, upgrade
from adapters_sql.changes import SqlChangeLog
from adapters_sql.envelopes import ENVELOPES
from class_api.dto import class_out, student_out
from class_cli.import_pipeline import import_students_overlapped
from class_core.changes import ChangeKey, Entity, FeedPosition, Op, PendingChange
from class_core.errors import ClassManagementError, CursorExpiredError
from class_core.events import OutboxMessage
from class_core.model import HistoryEntry, SchoolClass, Student
from class_core.queries import ClassQuery, StudentQuery
from class_core.runtime import RequestContext, Runtime
from class_core.testing import FixedClock, memory_runtime
from class_core.use_cases import (
    CreateClass,
    CreateStudent,
    PersonName,
    UpdateClass,
    UpdateStudent,
    create_class,
    create_student,
    delete_class,
    delete_student,
    erase_student,
    get_class,
    list_classes,
    list_students,
    update_class,
    update_student,
)
from class_core.use_cases.changes import read_changes
from class_core.use_cases.imports import ImportOptions, RosterRow
from class_runtime import sweep_once

OWNER = RequestContext("teacher-feed")
OTHER = RequestContext("teacher-other")
State = dict[tuple[str, str], dict[str, Any]]


def _render(obj: SchoolClass | Student) -> tuple[tuple[str, str], dict[str, Any]]:
    if isinstance(obj, SchoolClass):
        return ("class", str(obj.id)), msgspec.to_builtins(class_out(obj))
    return ("student", str(obj.id)), msgspec.to_builtins(student_out(obj))


async def lists(rt: Runtime, ctx: RequestContext = OWNER) -> State:
    found: State = {}
    offset = 0
    while True:
        classes = await list_classes(rt, ctx, ClassQuery.build(100, offset))
        found.update(_render(c) for c in classes.items)
        students = await list_students(rt, ctx, StudentQuery.build(100, offset))
        found.update(_render(s) for s in students.items)
        if len(classes.items) < 100 and len(students.items) < 100:
            return found
        offset += 100


async def start(rt: Runtime, ctx: RequestContext = OWNER) -> str:
    page = await read_changes(rt, ctx, None, 100)
    assert (page.items, page.has_more) == ((), False)
    return page.next_cursor


async def follow(
    rt: Runtime, cursor: str, state: State, limit: int = 7, ctx: RequestContext = OWNER
) -> tuple[str, int]:
    """Apply every page after ``cursor`` to ``state``; the last cursor and the entry count."""
    count = 0
    while True:
        page = await read_changes(rt, ctx, cursor, limit)
        for item in page.items:
            count += 1
            key = (item.change.entity.value, str(item.change.id))
            if item.data is None:
                state.pop(key, None)
            else:
                rendered_key, rendered = _render(item.data)
                assert rendered_key == key
                state[key] = rendered
        cursor = page.next_cursor
        if not page.has_more:
            return cursor, count


# --------------------------------------------------------------------------- stores


@pytest_asyncio.fixture(loop_scope="session")
async def feed_sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}")
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Callable[[FixedClock], Runtime]:
    """A runtime factory (given its clock) on one store."""
    if request.param == "memory":
        return lambda clock: memory_runtime(clock=clock, renderer=ENVELOPES)
    engine_fixture = "feed_sqlite_engine" if request.param == "sqlite" else "clean_pg"
    engine: AsyncEngine = request.getfixturevalue(engine_fixture)
    return lambda clock: build_sql_runtime(engine, clock=clock)


class World:
    """Random changes of one owner through the use cases (as the API and CLI make them)."""

    def __init__(self, rt: Runtime, seed: int, ctx: RequestContext = OWNER) -> None:
        self.rt, self.ctx = rt, ctx
        self.random = random.Random(seed)
        self.classes: list[UUID] = []
        self.students: list[UUID] = []
        self.outcomes: Counter[str] = Counter()

    def _some(self, ids: list[UUID], most: int) -> list[UUID]:
        return self.random.sample(ids, min(len(ids), self.random.randint(0, most)))

    async def step(self) -> None:
        r, rt, ctx = self.random, self.rt, self.ctx
        choice = r.choice(
            [
                *("class", "student", "student", "rename", "move", "move", "recourse"),
                *("erase", "drop_student", "drop_class"),
            ]
        )
        if not self.classes:
            choice = "class"
        try:
            await self._apply(choice, r, rt, ctx)
            self.outcomes[choice] += 1
        except ClassManagementError as exc:  # a stale id (another writer deleted it) etc.
            self.outcomes[f"{choice}:{exc.code}"] += 1

    async def _apply(self, choice: str, r: random.Random, rt: Runtime, ctx: RequestContext) -> None:
        if choice == "class":
            cls = await create_class(rt, ctx, CreateClass(f"C{r.randint(0, 999)}", ["ENG5"]))
            self.classes.append(cls.id)
        elif choice == "student" or not self.students:
            name = PersonName(f"F{r.randint(0, 999)}", f"L{r.randint(0, 999)}")
            cmd = CreateStudent(name, class_ids=self._some(self.classes, 2))
            self.students.append((await create_student(rt, ctx, cmd)).id)
        elif choice == "rename":
            await update_student(
                rt, ctx, r.choice(self.students), UpdateStudent(first_name=f"R{r.randint(0, 99)}")
            )
        elif choice == "move":
            add = self._some(self.classes, 1)
            remove = [c for c in self._some(self.classes, 1) if c not in add]
            await update_student(
                rt,
                ctx,
                r.choice(self.students),
                UpdateStudent(add_class_ids=add, remove_class_ids=remove),
            )
        elif choice == "recourse":
            await update_class(
                rt, ctx, r.choice(self.classes), UpdateClass(name=f"N{r.randint(0, 99)}")
            )
        elif choice == "erase":
            await erase_student(rt, ctx, r.choice(self.students))
        elif choice == "drop_student":
            await delete_student(rt, ctx, r.choice(self.students))
        else:
            await delete_class(rt, ctx, r.choice(self.classes))


@pytest.mark.parametrize("seed", [16, 17, 18])
async def test_replaying_the_feed_reproduces_the_lists(
    store: Callable[[FixedClock], Runtime], seed: int
) -> None:
    clock = FixedClock()
    rt = store(clock)
    world = World(rt, seed=seed)
    other = World(rt, seed=seed * 7, ctx=OTHER)
    for _ in range(15):
        await world.step()
    cursor = await start(rt)
    copy = await lists(rt)
    for _ in range(120):
        clock.advance(seconds=1)
        await world.step()
        await other.step()
    cursor, count = await follow(rt, cursor, copy)
    assert copy == await lists(rt)
    assert count > 0
    # Nothing new: an empty page (and a newly issued cursor).
    clock.advance(seconds=1)
    page = await read_changes(rt, OWNER, cursor, 1000)
    assert (page.items, page.has_more) == ((), False)
    assert page.next_cursor != cursor
    # Another owner's feed replays their own lists (and only them).
    other_copy: State = {}
    await follow(rt, await start(rt, OTHER), other_copy, ctx=OTHER)
    assert other_copy == {}


async def test_retention_purges_old_entries_and_expires_old_cursors(
    store: Callable[[FixedClock], Runtime],
) -> None:
    clock = FixedClock()
    rt = store(clock)
    old_cursor = await start(rt)
    old = await create_class(rt, OWNER, CreateClass("Old", ["ENG5"]))
    clock.advance(days=29)
    young_cursor = await start(rt)
    clock.advance(days=2)  # the old class's entry and the first cursor are 31 days old now
    young = await create_class(rt, OWNER, CreateClass("Young", ["ENG5"]))
    with pytest.raises(CursorExpiredError):
        await read_changes(rt, OWNER, old_cursor, 10)
    await sweep_once(rt)
    page = await read_changes(rt, OWNER, young_cursor, 10)
    assert [i.change.id for i in page.items] == [young.id]
    async with rt.read() as uow:
        everything = await uow.changes.read(OWNER.user_id, FeedPosition(0), 10)
    assert [e.id for e in everything.entries] == [young.id]
    assert old.id not in {e.id for e in everything.entries}


# --------------------------------------------------------------------------- PostgreSQL races


class _LateCommits:
    """A change log whose writer waits between taking its sequence numbers and committing."""

    def __init__(self, inner: SqlChangeLog, delay: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._delay = delay

    async def write(self, changes: Mapping[ChangeKey, PendingChange]) -> None:
        await self._inner.write(changes)
        await self._delay()

    async def write_commit(
        self,
        changes: Mapping[ChangeKey, PendingChange],
        messages: Sequence[OutboxMessage],
        history: Sequence[HistoryEntry] = (),
    ) -> None:  # what SqlUnitOfWork.commit calls (the feed's rows with the outbox's)
        await self._inner.write_commit(changes, messages, history)
        await self._delay()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_feed_under_concurrent_writers_with_late_commits(clean_pg: AsyncEngine) -> None:
    rt = build_sql_runtime(clean_pg)
    rng = random.Random(1616)

    async def late() -> None:
        await asyncio.sleep(rng.uniform(0.05, 0.3))

    def slow_uow() -> SqlUnitOfWork:
        uow = SqlUnitOfWork(clean_pg)
        uow.changes = _LateCommits(uow.changes, late)  # type: ignore[assignment]
        return uow

    slow_rt = Runtime(uow=slow_uow, reads=rt.reads, clock=rt.clock)
    seeders = World(rt, seed=7)
    for _ in range(40):
        await seeders.step()
    writers = [World(rt, seed=100 + i) for i in range(3)] + [World(slow_rt, seed=200)]
    for w in writers:  # every writer knows the seeded objects
        w.classes, w.students = list(seeders.classes), list(seeders.students)
    stop = asyncio.Event()

    async def write(world: World) -> None:
        while not stop.is_set():
            await world.step()
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(write(w)) for w in writers]
    await asyncio.sleep(0.3)  # writers in full flight, the slow one holding its numbers
    cursor = await start(rt)
    copy = await lists(rt)
    for _ in range(30):  # follow while they write
        cursor, _ = await follow(rt, cursor, copy, limit=5)
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    cursor, _ = await follow(rt, cursor, copy, limit=5)
    assert copy == await lists(rt)
    slow = writers[-1].outcomes
    assert sum(n for k, n in slow.items() if ":" not in k) >= 5, slow
    async with clean_pg.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM cms_changes"))).scalar_one()
    assert rows >= len(copy)  # one row per object (tombstones stay until purged)


async def test_a_page_does_not_walk_a_long_history_even_with_a_generic_plan(
    clean_pg: AsyncEngine,
) -> None:
    """The window of late commits is found from the snapshot's xmin, not by walking the
    owner's entries below the position: a page after the newest of 50,000 old entries reads
    a handful of index pages, in the generic plan a prepared statement switches to."""
    from adapters_sql.changes import _READ_PG

    async with clean_pg.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at, xid) "
                "SELECT 'student', gen_random_uuid(), :owner, 'upsert', 1, now(), 1 "
                "FROM generate_series(1, 50000)"
            ),
            {"owner": OWNER.user_id},
        )
    async with clean_pg.connect() as conn:
        await conn.execute(text("ANALYZE cms_changes"))
    rt = build_sql_runtime(clean_pg)
    cls = await create_class(rt, OWNER, CreateClass("New", ["ENG5"]))
    async with rt.read() as uow:
        position = await uow.changes.position(OWNER.user_id)
    assert position.snapshot
    params = {
        "owner_id": OWNER.user_id,
        "seq": position.seq - 1,  # the class's entry is after it
        "limit": 101,
        "xmin": int(position.snapshot.split(":")[0]),
        "window_after": 0,
        "snapshot": position.snapshot,
    }
    compiled = _READ_PG.compile(dialect=clean_pg.dialect)
    values = [params[name] for name in compiled.positiontup or ()]
    literals = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values)
    async with clean_pg.connect() as conn:
        await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE feed_page AS {compiled.string}")
        found = (await conn.exec_driver_sql(f"EXECUTE feed_page({literals})")).all()
        plan = (
            await conn.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE feed_page({literals})"
            )
        ).scalar_one()
    assert [row.object_id for row in found] == [cls.id]
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    blocks = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    assert blocks < 50, top


async def test_the_sweeps_placeholder_appears_as_the_student_list_shows_it(
    store: Callable[[FixedClock], Runtime],
) -> None:
    """The timeout sweep creates a class's UNKNOWN student: it is in the student list, so it
    is in the feed (and the class's count, which leaves it out, stays right)."""
    from uuid import uuid4

    from class_core.matching import EssayMatch, SuggestionsMessage
    from class_core.runtime import MatchingPolicy
    from class_core.use_cases import expire_due_batches, ingest_suggestions

    clock = FixedClock()
    rt = store(clock)
    rt.policy = MatchingPolicy(timeout_hours=0.0)
    cls = await create_class(rt, OWNER, CreateClass("9A", ["ENG5"]))
    cursor = await start(rt)
    copy = await lists(rt)
    message = SuggestionsMessage(
        str(uuid4()), uuid4(), uuid4(), cls.id, "ENG5", (EssayMatch(uuid4(), ()),)
    )
    await ingest_suggestions(rt, message)
    clock.advance(seconds=1)
    await expire_due_batches(rt)
    _, count = await follow(rt, cursor, copy)
    assert copy == await lists(rt)
    placeholders = [v for v in copy.values() if v.get("is_placeholder")]
    assert [p["class_ids"] for p in placeholders] == [[str(cls.id)]]
    assert count >= 1


async def test_an_import_chunk_of_new_students_is_in_the_feed(
    store: Callable[[FixedClock], Runtime],
) -> None:
    """Chunks large enough for the bulk paths (on PostgreSQL the new students' feed rows
    are COPYed, the class's upserted): replaying the feed reproduces the lists, and each
    new student appears once."""
    clock = FixedClock()
    rt = store(clock)
    klass = await create_class(rt, OWNER, CreateClass("9A", ["ENG5"]))
    cursor = await start(rt)
    copy = await lists(rt)
    clock.advance(seconds=1)
    rows = [RosterRow(i, "Elev", f"Nr{i}", f"feed{i}@school.example") for i in range(2, 152)]
    rows[10] = RosterRow(12, "Elev", "Nr12", "feed12@school.example", class_name="9A")
    # Chunks of 70, 70 and 10 through class-admin's driver: the second is planned while the
    # first is written; the first two take the COPY paths, the last the INSERT ones.
    summary = await import_students_overlapped(rt, OWNER, rows, ImportOptions(chunk_size=70))
    assert (summary.created, summary.failed) == (150, 0)
    clock.advance(seconds=1)
    cursor, count = await follow(rt, cursor, copy)
    assert copy == await lists(rt)
    assert count == 151  # 150 students and the class whose student_count moved
    assert ("class", str(klass.id)) in copy


async def test_a_class_logged_by_concurrent_writers_is_shown_once_in_a_page(
    clean_pg: AsyncEngine,
) -> None:
    """Two transactions that ran at the same time both log one class, so the log keeps a row
    of each (migration r0030); a page shows the class once, at its last entry, with the
    class as it is now."""
    rt = build_sql_runtime(clean_pg)
    cls = await create_class(rt, OWNER, CreateClass("Twice", ["ENG5"]))
    cursor = await start(rt)
    at = datetime.now(UTC)
    change = {(Entity.CLASS, cls.id): PendingChange(Op.UPSERT, at, OWNER.user_id, 1)}
    async with SqlUnitOfWork(clean_pg) as first, SqlUnitOfWork(clean_pg) as second:
        await first.changes.write(change)
        await second.changes.write(change)  # skips the row `first` holds: nobody waits
        await first.commit()
        await second.commit()
    async with rt.read() as uow:
        logged = await uow.changes.read(OWNER.user_id, FeedPosition(0), 10)
    assert [e.id for e in logged.entries] == [cls.id, cls.id]
    page = await read_changes(rt, OWNER, cursor, 10)
    assert [(i.change.id, i.change.seq) for i in page.items] == [(cls.id, logged.entries[-1].seq)]
    assert page.items[0].data == await get_class(rt, OWNER, cls.id)
