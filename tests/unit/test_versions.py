"""Versions and If-Match on the in-memory adapters (contract §8)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from class_core.errors import (
    NotFoundError,
    PreconditionFailedError,
    ResourceInUseError,
    ValidationError,
)
from class_core.events import (
    CLASS_CREATED,
    CLASS_DELETED,
    CLASS_UPDATED,
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_UPDATED,
)
from class_core.use_cases.classes import UpdateClass, delete_class, get_class, update_class
from class_core.use_cases.imports import RosterRow, import_students
from class_core.use_cases.students import (
    PersonName,
    UpdateStudent,
    delete_student,
    get_student,
    update_student,
)
from class_core.versions import IfMatch

from .world import World, essay


@pytest.fixture
def w() -> World:
    return World()


def versions(w: World, topic: str) -> list[int]:
    return [e["metadata"]["aggregate_version"] for e in w.envelopes(topic)]


# ------------------------------------------------------------------------ the header


@pytest.mark.parametrize(
    ("header", "any_version", "found"),
    [
        ("*", True, set()),
        (" * ", True, set()),
        ('"3"', False, {3}),
        ('"3", "4"', False, {3, 4}),
        ('"3","4" ,"5"', False, {3, 4, 5}),
        ('W/"3"', False, set()),  # weak: valid syntax, never matches
        ('W/"3", "4"', False, {4}),
        ('"abc"', False, set()),  # a valid tag that is no version of ours
        ('"03"', False, {3}),
        ('"99999999999999999999999"', False, set()),
    ],
)
def test_if_match_parses_star_and_quoted_versions(
    header: str, any_version: bool, found: set[int]
) -> None:
    parsed = IfMatch.parse(header)
    assert parsed is not None
    assert parsed.syntax_error is None
    assert (parsed.any_version, set(parsed.versions)) == (any_version, found)


@pytest.mark.parametrize(
    "header", ["3", "", " ", '"3" "4"', '"3",', ',"3"', "W/3", '"3', "**", '*, "3"', 'w/"3"']
)
def test_if_match_of_any_other_syntax_is_a_validation_error(header: str) -> None:
    parsed = IfMatch.parse(header)
    assert parsed is not None
    assert parsed.syntax_error is not None
    with pytest.raises(ValidationError) as caught:
        parsed.check(1)
    assert caught.value.errors[0].field == "If-Match"


def test_if_match_compares_strongly() -> None:
    assert IfMatch.parse(None) is None
    IfMatch.parse('"2", "5"').check(5)  # type: ignore[union-attr]
    IfMatch.parse("*").check(7)  # type: ignore[union-attr]
    with pytest.raises(PreconditionFailedError):
        IfMatch.parse('W/"5"').check(5)  # type: ignore[union-attr]
    with pytest.raises(PreconditionFailedError):
        IfMatch.parse('"4"').check(5)  # type: ignore[union-attr]


# ------------------------------------------------------------------------ versions


async def test_class_version_counts_its_own_changes_only(w: World) -> None:
    ctx = w.ctx()
    cls = await w.new_class("9A")
    assert cls.version == 1
    assert (await update_class(w.rt, ctx, cls.id, UpdateClass(name="9B"))).version == 2
    assert (await update_class(w.rt, ctx, cls.id, UpdateClass(name="9B"))).version == 2  # no-op
    assert (await update_class(w.rt, ctx, cls.id, UpdateClass(course_codes=["SV1"]))).version == 3
    await w.new_student(classes=(cls.id,))  # a membership is a change of the student only
    assert (await get_class(w.rt, ctx, cls.id)).version == 3
    assert versions(w, CLASS_CREATED) == [1]
    assert versions(w, CLASS_UPDATED) == [2, 3]
    await delete_class(w.rt, ctx, cls.id)
    assert versions(w, CLASS_DELETED) == [4]


async def test_student_version_counts_changes_and_memberships(w: World) -> None:
    ctx = w.ctx()
    c1, c2 = await w.new_class("A"), await w.new_class("B")
    s = await w.new_student(classes=(c1.id,))
    assert s.version == 1
    s = await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="Ada2"))
    assert s.version == 2
    s = await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="Ada2"))  # no-op
    assert s.version == 2
    s = await update_student(w.rt, ctx, s.id, UpdateStudent(add_class_ids=[c2.id]))
    assert s.version == 3
    before = len(w.envelopes(STUDENT_UPDATED))
    # Deleting a class bumps its members without publishing student events.
    await delete_class(w.rt, ctx, c1.id)
    s = await get_student(w.rt, ctx, s.id)
    assert (s.version, s.class_ids) == (4, (c2.id,))
    assert len(w.envelopes(STUDENT_UPDATED)) == before
    await delete_student(w.rt, ctx, s.id)
    assert versions(w, STUDENT_CREATED) == [1]
    assert versions(w, STUDENT_UPDATED) == [2, 3]
    assert versions(w, STUDENT_DELETED) == [5]


async def test_import_update_bumps_the_version(w: World) -> None:
    s = await w.new_student(email="ada@example.com")
    row = RosterRow(2, "Ada", "Byron", "ada@example.com")
    await import_students(w.rt, w.ctx(), [row])
    assert (await get_student(w.rt, w.ctx(), s.id)).version == 2
    assert versions(w, STUDENT_UPDATED) == [2]
    await import_students(w.rt, w.ctx(), [row])  # unchanged: no new version
    assert (await get_student(w.rt, w.ctx(), s.id)).version == 2


# ------------------------------------------------------------------------ If-Match


def _state(w: World) -> tuple[Any, ...]:
    t = w.store.tables
    return (dict(t.classes), dict(t.students), set(t.memberships), len(w.outbox.messages()))


async def test_a_failed_precondition_changes_and_publishes_nothing(w: World) -> None:
    ctx = w.ctx()
    cls = await w.new_class()
    s = await w.new_student(classes=(cls.id,))
    stale = IfMatch.parse('"5", W/"1"')
    before = _state(w)
    with pytest.raises(PreconditionFailedError):
        await update_class(w.rt, ctx, cls.id, UpdateClass(name="X"), stale)
    with pytest.raises(PreconditionFailedError):
        await delete_class(w.rt, ctx, cls.id, stale)
    with pytest.raises(PreconditionFailedError):
        await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="X"), stale)
    with pytest.raises(PreconditionFailedError):
        await delete_student(w.rt, ctx, s.id, stale)
    assert _state(w) == before
    updated = await update_student(
        w.rt, ctx, s.id, UpdateStudent(first_name="X"), IfMatch.parse('"5", "1"')
    )
    assert updated.version == 2


async def test_checks_come_in_the_contract_order(w: World) -> None:
    ctx = w.ctx()
    bad, stale = IfMatch.parse("3"), IfMatch.parse('"9"')
    # 404 first, also for "*" and for bad syntax.
    for guard in (IfMatch.parse("*"), bad, stale):
        with pytest.raises(NotFoundError):
            await update_student(w.rt, ctx, uuid4(), UpdateStudent(first_name="X"), guard)
        with pytest.raises(NotFoundError):
            await delete_class(w.rt, ctx, uuid4(), guard)
    # A bad body is judged after the look-up too, and before the version.
    with pytest.raises(NotFoundError):
        await update_class(w.rt, ctx, uuid4(), UpdateClass(name=" "), stale)
    with pytest.raises(NotFoundError):
        await update_student(w.rt, ctx, uuid4(), UpdateStudent(first_name="\x00"), stale)
    cls = await w.new_class()
    s = await w.new_student()
    with pytest.raises(ValidationError):
        await update_class(w.rt, ctx, cls.id, UpdateClass(name=" "), stale)
    with pytest.raises(ValidationError):
        await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="\x00"), stale)
    with pytest.raises(NotFoundError):  # another owner's class is not found either
        await delete_class(w.rt, w.ctx("someone-else"), cls.id, IfMatch.parse("*"))
    # then 400 (syntax), then 412, then 409.
    await w.ingest(uuid4(), cls.id, [essay(uuid4())])
    with pytest.raises(ValidationError):
        await delete_class(w.rt, ctx, cls.id, bad)
    with pytest.raises(PreconditionFailedError):
        await delete_class(w.rt, ctx, cls.id, stale)
    with pytest.raises(ResourceInUseError):
        await delete_class(w.rt, ctx, cls.id, IfMatch.parse('"1"'))
    a = await w.new_student(email="a@example.com")
    b = await w.new_student(email="b@example.com")
    with pytest.raises(PreconditionFailedError):
        await update_student(w.rt, ctx, b.id, UpdateStudent(email="a@example.com"), stale)
    assert a.version == b.version == 1
    _ = PersonName  # the commands' name type is re-exported alongside
