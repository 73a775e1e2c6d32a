"""The roster import's ``external_id`` column and archived classes (contract §9.1, §9.2)."""

from __future__ import annotations

import pytest

from class_core.events import STUDENT_UPDATED
from class_core.use_cases.classes import set_class_archived
from class_core.use_cases.imports import RosterRow
from class_core.use_cases.students import CreateStudent, PersonName, create_student

from .test_imports import OWNER, Env, counts


@pytest.fixture
def env() -> Env:
    return Env()


def row(line: int, email: str, external_id: str | None, class_name: str | None = None) -> RosterRow:
    return RosterRow(
        line,
        "Ada",
        f"L{line}",
        email,
        class_name=class_name,
        course_code="ENG5" if class_name else None,
        external_id=external_id,
    )


async def test_external_ids_are_set_on_create_and_on_a_differing_update(env: Env) -> None:
    summary = await env.run(
        [row(2, "a@s.se", " SIS-1 "), row(3, "b@s.se", ""), row(4, "c@s.se", None)]
    )
    assert counts(summary) == (3, 0, 0, 0)
    stored = env.students()
    assert stored["a@s.se"].external_id == "SIS-1"
    assert stored["b@s.se"].external_id is None
    again = await env.run([row(2, "a@s.se", "SIS-1"), row(3, "b@s.se", "")])
    assert counts(again) == (0, 0, 2, 0)  # same value, or an empty cell: unchanged
    changed = await env.run([row(2, "a@s.se", "SIS-9"), row(3, "b@s.se", "SIS-2")])
    assert counts(changed) == (0, 2, 0, 0)
    stored = env.students()
    assert (stored["a@s.se"].external_id, stored["b@s.se"].external_id) == ("SIS-9", "SIS-2")
    assert {d["external_id"] for d in env.data(STUDENT_UPDATED)} == {"SIS-9", "SIS-2"}


async def test_a_duplicate_external_id_is_a_row_error_for_that_row(env: Env) -> None:
    other = await create_student(
        env.rt, env.ctx(), CreateStudent(PersonName("Bo", "Ek"), "bo@s.se", external_id="TAKEN")
    )
    summary = await env.run(
        [
            row(2, "a@s.se", "X"),
            row(3, "b@s.se", "X"),  # twice in the file
            row(4, "c@s.se", "TAKEN"),  # another student's
            row(5, "bo@s.se", "TAKEN"),  # the holder itself: fine
            row(6, "d@s.se", "bad\x00id"),
        ]
    )
    assert counts(summary) == (1, 1, 0, 3)  # Bo's last name differs: updated
    by_row = {e.row: e.errors for e in summary.errors}
    assert set(by_row) == {3, 4, 6}
    assert "DUPLICATE_EXTERNAL_ID" in by_row[3][0]
    assert "line 2" in by_row[3][0]
    assert "DUPLICATE_EXTERNAL_ID" in by_row[4][0]
    assert by_row[6][0].startswith("external_id:")
    stored = env.students()
    assert set(stored) == {"a@s.se", "bo@s.se"}
    assert stored["a@s.se"].external_id == "X"
    assert env.store.tables.students[other.id].external_id == "TAKEN"


async def test_rows_joining_an_archived_class_are_row_errors(env: Env) -> None:
    await env.run([row(2, "a@s.se", None, class_name="9A")])
    (cls,) = env.classes()
    await set_class_archived(env.rt, env.ctx(), cls.id, True)
    before = env.topics()
    summary = await env.run(
        [row(2, "a@s.se", None, class_name="9A"), row(3, "b@s.se", None, class_name="9A")]
    )
    assert counts(summary) == (0, 0, 1, 1)  # a member already stays one
    [error] = summary.errors
    assert error.row == 3
    assert "CLASS_ARCHIVED" in error.errors[0]
    fixed = await env.run([row(4, "c@s.se", None)], class_id=cls.id)
    assert counts(fixed) == (0, 0, 0, 1)
    assert "CLASS_ARCHIVED" in fixed.errors[0].errors[0]
    assert env.topics() == before
    assert set(env.students(OWNER)) == {"a@s.se"}
