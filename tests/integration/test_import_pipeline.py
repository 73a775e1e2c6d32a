"""``class-admin import students``'s overlapped driver on PostgreSQL: the next chunk is planned
(its reads and row locks) in a second transaction while the current one is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql.students import SqlStudentRepository
from class_cli.import_pipeline import import_students_overlapped
from class_core.model import Student
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.imports import ImportOptions, RosterRow
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
    members = (
        "SELECT count(*) FROM cms_class_students m JOIN cms_classes c ON c.id = m.class_id "
        "WHERE c.owner_id = :owner"
    )
    assert await _count(clean_pg, members) == 300
    in_9b = members + " AND c.name = '9B'"
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
