"""``class-admin import students``'s overlapped driver on PostgreSQL: the next chunk is planned
(its reads and row locks) in a second transaction while the current one is written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql.classes import SqlClassRepository
from adapters_sql.students import SqlStudentRepository
from class_cli.import_pipeline import import_students_overlapped
from class_core.model import Student
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.imports import ImportOptions, RosterRow, import_students
from class_core.use_cases.students import CreateStudent, PersonName, create_student

OWNER = RequestContext("pipeline-teacher")


def _rows(n: int) -> list[RosterRow]:
    """``n`` records from line 2; the first 100 in class 9A, the others in 9B (created by the
    second chunk of 100 and joined by the later ones)."""
    return [
        RosterRow(
            line,
            "Elev",
            f"Nr{line}",
            f"pupil{line}@pipeline.example",
            None,
            "9A" if line < 102 else "9B",
            "ENG5",
        )
        for line in range(2, n + 2)
    ]


# The owner's memberships.
_MEMBERS = (
    "SELECT count(*) FROM cms_class_students m JOIN cms_classes c ON c.id = m.class_id "
    "WHERE c.owner_id = :owner"
)


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), {"owner": OWNER.user_id})).scalar_one())


async def test_a_race_lost_by_a_written_chunk_rolls_back_the_planned_one_and_replays_both(
    pg_runtime: Runtime, clean_pg: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three chunks of 100 (the COPY paths). While the second is written (the third planned
    on the other connection, counting on the class 9B the second creates), another writer
    commits a student with an email of the second: its COPY fails, the third chunk's
    transaction is rolled back unwritten, and both are planned and applied again one at a
    time — no deadlock, nothing twice, the third joins 9B as the second finally created it."""
    rt = pg_runtime
    racer_email = "pupil150@pipeline.example"
    original = SqlStudentRepository.add_many
    raced: list[bool] = []

    async def add_many(self: SqlStudentRepository, students: Sequence[Student]) -> Any:
        if not raced and any(s.email == racer_email for s in students):
            raced.append(True)  # committed by another unit of work, just before the COPY
            await create_student(
                rt, OWNER, CreateStudent(PersonName("Other", "Writer"), racer_email)
            )
        return await original(self, students)

    monkeypatch.setattr(SqlStudentRepository, "add_many", add_many)
    summary = await import_students_overlapped(rt, OWNER, _rows(300), ImportOptions(chunk_size=100))

    assert raced == [True]
    assert (summary.created, summary.updated, summary.failed) == (299, 1, 0)
    assert (summary.rows, summary.last_line) == (300, 301)
    assert summary.classes_created == ["9A", "9B"]
    owned = "SELECT count(*) FROM cms_students WHERE owner_id = :owner"
    assert await _count(clean_pg, owned) == 300
    assert await _count(clean_pg, owned + " AND last_name = 'Nr150'") == 1
    assert await _count(clean_pg, _MEMBERS) == 300
    in_9b = _MEMBERS + " AND c.name = '9B'"
    assert await _count(clean_pg, in_9b) == 200
    assert await _count(clean_pg, "SELECT count(*) FROM cms_classes WHERE owner_id = :owner") == 2
    created = (
        "SELECT count(*) FROM cms_outbox WHERE topic = 'huleedu.class.student.created.v1' "
        "AND payload LIKE '%pipeline.example%'"
    )
    assert await _count(clean_pg, created) == 300  # 299 by the import, 1 by the other writer
    items = (
        "SELECT count(*) FROM cms_import_items i JOIN cms_imports r USING (import_id) "
        "WHERE r.owner_id = :owner"
    )
    assert await _count(clean_pg, items) == 300


def _school(tag: str, n: int, classes: int) -> list[RosterRow]:
    """``n`` records of a file ``tag``, spread over the classes ``K00``, ``K01``, … (named in
    varying case and padding: one class each all the same)."""
    return [
        RosterRow(
            line,
            "Elev",
            f"{tag}{line}",
            f"{tag}{line}@race.example",
            None,
            f" k{(line * 7) % classes:02d} " if line % 2 else f"K{(line * 7) % classes:02d}",
            "ENG5",
        )
        for line in range(2, n + 2)
    ]


async def _two_imports_at_once(
    rt: Runtime, first: list[RosterRow], second: list[RosterRow]
) -> None:
    options = ImportOptions(chunk_size=100)
    summaries = await asyncio.wait_for(
        asyncio.gather(
            import_students_overlapped(rt, OWNER, first, options),
            import_students_overlapped(rt, OWNER, second, options),
        ),
        60,  # a deadlock fails here (PostgreSQL's detector would raise sooner)
    )
    for summary, rows in zip(summaries, (first, second), strict=True):
        assert (summary.created, summary.failed, summary.errors) == (len(rows), 0, [])


async def test_two_imports_naming_the_same_new_classes_at_once_create_each_class_once(
    pg_runtime: Runtime, clean_pg: AsyncEngine
) -> None:
    """Two files of one owner imported at the same time (a CLI run and an upload, say), both
    naming the same 40 classes that do not exist yet: each class is created once, by
    whichever import gets there first, and the other's students join it — not a second class
    of the same name, which would make every later row naming it ambiguous (contract §7)."""
    rt = pg_runtime
    await _two_imports_at_once(rt, _school("a", 400, 40), _school("b", 400, 40))

    names = "SELECT count(DISTINCT name) FROM cms_classes WHERE owner_id = :owner"
    assert await _count(clean_pg, "SELECT count(*) FROM cms_classes WHERE owner_id = :owner") == 40
    assert await _count(clean_pg, names) == 40
    assert await _count(clean_pg, _MEMBERS) == 800
    smallest = (
        "SELECT min(n) FROM (SELECT count(*) AS n FROM cms_class_students m "
        "JOIN cms_classes c ON c.id = m.class_id WHERE c.owner_id = :owner GROUP BY c.id) s"
    )
    assert await _count(clean_pg, smallest) == 20
    created = (
        "SELECT count(*) FROM cms_outbox WHERE topic = 'huleedu.class.created.v1' "
        "AND payload LIKE '%' || :owner || '%'"
    )
    assert await _count(clean_pg, created) == 40
    # A third file naming them still finds one class per name.
    again = await import_students_overlapped(rt, OWNER, _school("c", 40, 40))
    assert (again.created, again.failed, again.classes_created) == (40, 0, [])


async def test_two_imports_into_the_same_existing_classes_at_once_both_land(
    pg_runtime: Runtime, clean_pg: AsyncEngine
) -> None:
    """Two imports at once into the same 40 existing classes (each chunk touches all of them,
    so each commit appends a row per class and deletes the classes' older rows, migration
    r0030): no deadlock, every student in, and at most one feed row per class of each of the
    two imports' last commits."""
    rt = pg_runtime
    for k in range(40):
        await create_class(rt, OWNER, CreateClass(f"K{k:02d}", ["ENG5"]))
    await _two_imports_at_once(rt, _school("a", 400, 40), _school("b", 400, 40))

    assert await _count(clean_pg, _MEMBERS) == 800
    per_class = (
        "SELECT count(*) FROM cms_classes c WHERE c.owner_id = :owner AND (SELECT count(*) "
        "FROM cms_changes f WHERE f.object_id = c.id) NOT BETWEEN 1 AND 2"
    )
    assert await _count(clean_pg, per_class) == 0


async def test_a_chunk_planned_again_joins_the_class_another_import_created_meanwhile(
    pg_runtime: Runtime, clean_pg: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk that creates the class 9Z loses a race (an email taken just before its COPY)
    and is rolled back, letting go of the owner's names; before it is planned again another
    import creates 9Z. Planned again, the chunk joins that class instead of creating the 9Z
    it had planned (a second class of the name)."""
    rt = pg_runtime
    rows = [
        RosterRow(line, "Elev", f"Nr{line}", f"z{line}@late.example", None, "9Z", "ENG5")
        for line in range(2, 12)
    ]
    racer_email = "z5@late.example"
    add_many, lock_names = SqlStudentRepository.add_many, SqlClassRepository.lock_names
    happened: list[str] = []

    async def racing_add_many(self: SqlStudentRepository, students: Sequence[Student]) -> Any:
        if not happened and any(s.email == racer_email for s in students):
            happened.append("email taken")
            await create_student(
                rt, OWNER, CreateStudent(PersonName("Other", "Writer"), racer_email)
            )
        return await add_many(self, students)

    async def racing_lock_names(self: SqlClassRepository, owner_id: str) -> None:
        if happened == ["email taken"]:  # the chunk planned again, before it holds the names
            happened.append("9Z created")
            other = RosterRow(2, "Elev", "Other", "other@late.example", None, "9z ", "ENG5")
            assert (await import_students(rt, OWNER, [other])).classes_created == ["9z"]
        await lock_names(self, owner_id)

    monkeypatch.setattr(SqlStudentRepository, "add_many", racing_add_many)
    monkeypatch.setattr(SqlClassRepository, "lock_names", racing_lock_names)
    summary = await import_students_overlapped(rt, OWNER, rows)

    assert happened == ["email taken", "9Z created"]
    assert (summary.created, summary.updated, summary.failed) == (9, 1, 0)
    assert summary.classes_created == []
    assert await _count(clean_pg, "SELECT count(*) FROM cms_classes WHERE owner_id = :owner") == 1
    assert await _count(clean_pg, _MEMBERS) == 11
