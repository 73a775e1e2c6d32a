"""Class use cases on the in-memory adapters (contract §3.2, §3.3, §5.2, §5.4)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from class_core.errors import (
    CourseNotFoundError,
    MultipleCourseError,
    NotFoundError,
    ResourceInUseError,
    ValidationError,
)
from class_core.events import CLASS_CREATED, CLASS_DELETED, CLASS_UPDATED, TEACHER_NOTIFICATION
from class_core.queries import ClassQuery
from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    delete_class,
    get_class,
    get_roster,
    list_classes,
    update_class,
)
from class_core.use_cases.matching import expire_due_batches

from .world import OTHER_OWNER, OWNER, START, World, essay


@pytest.fixture
def w() -> World:
    return World()


# ----------------------------------------------------------------------------- create


async def test_create_class_stores_it_and_publishes_event_and_notification(w: World) -> None:
    ctx = w.ctx()
    cls = await create_class(w.rt, ctx, CreateClass("  Cafe\u0301 9A ", ["SV1"]))
    assert (cls.name, cls.course_code, cls.owner_id) == ("Café 9A", "SV1", OWNER)
    assert cls.created_at == cls.updated_at == START
    assert cls.student_count == 0
    assert await get_class(w.rt, ctx, cls.id) == cls
    assert w.topics() == [CLASS_CREATED, TEACHER_NOTIFICATION]
    [created] = w.envelopes(CLASS_CREATED)
    assert created["correlation_id"] == str(ctx.correlation_id)
    assert created["data"] == {
        "event": "class.created",
        "class_id": str(cls.id),
        "class_designation": "Café 9A",
        "course_codes": ["SV1"],
        "user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": START.isoformat(),
        "external_id": None,
    }
    [note] = w.notifier.sent
    assert note.notification_type == "class_created"
    assert note.teacher_id == OWNER
    assert note.payload["course_codes"] == ["SV1"]


@pytest.mark.parametrize(
    ("name", "codes", "error", "code"),
    [
        ("", ["ENG5"], ValidationError, "VALIDATION_ERROR"),
        ("   ", ["ENG5"], ValidationError, "VALIDATION_ERROR"),
        ("9\x00A", ["ENG5"], ValidationError, "VALIDATION_ERROR"),
        ("x" * 256, ["ENG5"], ValidationError, "VALIDATION_ERROR"),
        ("9A", [], ValidationError, "VALIDATION_ERROR"),
        ("9A", ["ENG5", "ENG6"], MultipleCourseError, "MULTIPLE_COURSE_ERROR"),
        ("9A", ["MATH"], CourseNotFoundError, "COURSE_NOT_FOUND"),
    ],
)
async def test_create_class_refuses_bad_input_and_writes_nothing(
    w: World, name: str, codes: list[str], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as info:
        await create_class(w.rt, w.ctx(), CreateClass(name, codes))
    assert getattr(info.value, "code", None) == code
    assert w.store.tables.classes == {}
    assert w.outbox.messages() == []
    assert w.notifier.sent == []


# ----------------------------------------------------------------------------- read / list


async def test_another_owners_class_is_not_found(w: World) -> None:
    cls = await w.new_class()
    with pytest.raises(NotFoundError):
        await get_class(w.rt, w.ctx(OTHER_OWNER), cls.id)
    with pytest.raises(NotFoundError):
        await update_class(w.rt, w.ctx(OTHER_OWNER), cls.id, UpdateClass(name="x"))
    with pytest.raises(NotFoundError):
        await delete_class(w.rt, w.ctx(OTHER_OWNER), cls.id)
    with pytest.raises(NotFoundError):
        await get_roster(w.rt, OTHER_OWNER, cls.id)
    with pytest.raises(NotFoundError):
        await get_class(w.rt, w.ctx(), uuid4())


async def test_list_classes_newest_first_with_pagination_and_filters(w: World) -> None:
    a = await w.new_class("Åsa's class", "ENG5")
    w.clock.advance(minutes=1)
    b = await w.new_class("Physics", "SV1")
    w.clock.advance(minutes=1)
    c = await w.new_class("asa advanced", "ENG5")
    await w.new_class("Mine not", "ENG5", owner=OTHER_OWNER)
    ctx = w.ctx()

    page = await list_classes(w.rt, ctx, ClassQuery.build())
    assert [x.id for x in page.items] == [c.id, b.id, a.id]
    assert page.total == 3

    page = await list_classes(w.rt, ctx, ClassQuery.build(limit=1, offset=1))
    assert [x.id for x in page.items] == [b.id]
    assert (page.total, page.limit, page.offset) == (3, 1, 1)

    page = await list_classes(w.rt, ctx, ClassQuery.build(q="ÅSA"))
    assert {x.id for x in page.items} == {a.id, c.id}

    page = await list_classes(w.rt, ctx, ClassQuery.build(course_code="ENG5"))
    assert [x.id for x in page.items] == [c.id, a.id]

    page = await list_classes(w.rt, ctx, ClassQuery.build(updated_since=b.updated_at))
    assert [x.id for x in page.items] == [c.id, b.id]  # inclusive

    with pytest.raises(CourseNotFoundError):
        await list_classes(w.rt, ctx, ClassQuery.build(course_code="NOPE"))


async def test_classes_created_at_the_same_instant_are_ordered_by_id_descending(
    w: World,
) -> None:
    made = [await w.new_class(f"c{i}") for i in range(5)]
    page = await list_classes(w.rt, w.ctx(), ClassQuery.build())
    assert [x.id for x in page.items] == sorted((c.id for c in made), reverse=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"offset": 1_000_001},
        {"q": "a\x00"},
        {"q": "a\x85"},
        {"q": "x" * 256},
        {"updated_since": START.replace(tzinfo=None)},
    ],
)
def test_class_query_ranges(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ClassQuery.build(**kwargs)  # type: ignore[arg-type]


def test_class_query_bounds_are_accepted() -> None:
    assert ClassQuery.build(limit=100, offset=1_000_000).limit == 100
    assert ClassQuery.build(limit=1).limit == 1
    assert ClassQuery.build().limit == 20
    assert ClassQuery.build(q="  ").q is None


# ----------------------------------------------------------------------------- update


async def test_update_nothing_changes_nothing_and_publishes_nothing(w: World) -> None:
    cls = await w.new_class("9A", "ENG5")
    before = len(w.outbox.messages())
    w.clock.advance(hours=1)
    for cmd in (UpdateClass(), UpdateClass(name=" 9A "), UpdateClass(course_codes=["ENG5"])):
        same = await update_class(w.rt, w.ctx(), cls.id, cmd)
        assert (same.name, same.course_code, same.updated_at) == ("9A", "ENG5", START)
    assert len(w.outbox.messages()) == before


async def test_update_name_only_publishes_null_course_codes(w: World) -> None:
    cls = await w.new_class("9A", "ENG5")
    w.clock.advance(hours=1)
    ctx = w.ctx()
    updated = await update_class(w.rt, ctx, cls.id, UpdateClass(name="9B"))
    assert (updated.name, updated.course_code) == ("9B", "ENG5")
    assert updated.updated_at == START + timedelta(hours=1)
    assert (await get_class(w.rt, ctx, cls.id)).name == "9B"
    [data] = w.data(CLASS_UPDATED)
    assert data == {
        "event": "class.updated",
        "class_id": str(cls.id),
        "class_designation": "9B",
        "course_codes": None,
        "user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": updated.updated_at.isoformat(),
        "external_id": None,
        "status": "active",
    }
    assert len(w.notifier.sent) == 1  # only class_created; updates notify no one


async def test_update_course_only(w: World) -> None:
    cls = await w.new_class("9A", "ENG5")
    updated = await update_class(w.rt, w.ctx(), cls.id, UpdateClass(course_codes=["SV2"]))
    assert updated.course_code == "SV2"
    [data] = w.data(CLASS_UPDATED)
    assert (data["class_designation"], data["course_codes"]) == (None, ["SV2"])


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (UpdateClass(name=""), ValidationError),
        (UpdateClass(course_codes=[]), ValidationError),
        (UpdateClass(course_codes=["ENG5", "SV1"]), MultipleCourseError),
        (UpdateClass(name="ok", course_codes=["X"]), CourseNotFoundError),
    ],
)
async def test_update_refuses_bad_input_atomically(
    w: World, cmd: UpdateClass, error: type[Exception]
) -> None:
    cls = await w.new_class("9A", "ENG5")
    with pytest.raises(error):
        await update_class(w.rt, w.ctx(), cls.id, cmd)
    assert (await get_class(w.rt, w.ctx(), cls.id)).name == "9A"
    assert w.data(CLASS_UPDATED) == []


# ----------------------------------------------------------------------------- delete / roster


async def test_delete_removes_memberships_keeps_students_and_publishes_only_deleted(
    w: World,
) -> None:
    cls = await w.new_class()
    keep = await w.new_class("other")
    s = await w.new_student(classes=[cls.id, keep.id])
    before = len(w.outbox.messages())
    w.clock.advance(hours=2)
    ctx = w.ctx()
    await delete_class(w.rt, ctx, cls.id)
    assert cls.id not in w.store.tables.classes
    student = w.student(s.id)
    assert student.updated_at == START + timedelta(hours=2)  # membership change bumps it
    assert (cls.id, s.id) not in w.store.tables.memberships
    assert (keep.id, s.id) in w.store.tables.memberships
    new = w.envelopes()[before:]
    assert [e["event_type"] for e in new] == [CLASS_DELETED]
    assert new[0]["data"] == {
        "event": "class.deleted",
        "class_id": str(cls.id),
        "user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": (START + timedelta(hours=2)).isoformat(),
    }
    with pytest.raises(NotFoundError):
        await get_class(w.rt, ctx, cls.id)


async def test_delete_is_refused_while_any_batch_belongs_to_the_class(w: World) -> None:
    cls = await w.new_class()
    await w.ingest(uuid4(), cls.id, [])  # an empty batch, finalized at once
    before = len(w.outbox.messages())
    with pytest.raises(ResourceInUseError) as info:
        await delete_class(w.rt, w.ctx(), cls.id)
    assert info.value.code == "RESOURCE_IN_USE"
    assert cls.id in w.store.tables.classes
    assert len(w.outbox.messages()) == before


async def test_roster_and_student_count_leave_out_the_placeholder(w: World) -> None:
    cls = await w.new_class()
    b = await w.new_student("Bo", "Berg", [cls.id])
    a = await w.new_student("Ann", "Berg", [cls.id])
    z = await w.new_student("Zed", "Alm", [cls.id])
    await w.new_student("Not", "Member")
    await w.ingest(uuid4(), cls.id, [essay(uuid4())])
    w.clock.advance(hours=25)
    await expire_due_batches(w.rt)
    [placeholder] = w.placeholders()
    assert (cls.id, placeholder.id) in w.store.tables.memberships

    roster = await get_roster(w.rt, OWNER, cls.id)
    assert [s.id for s in roster] == [z.id, a.id, b.id]  # last name, first name
    assert [s.id for s in await get_roster(w.rt, None, cls.id)] == [z.id, a.id, b.id]
    assert (await get_class(w.rt, w.ctx(), cls.id)).student_count == 3
    page = await list_classes(w.rt, w.ctx(), ClassQuery.build())
    assert page.items[0].student_count == 3


async def test_internal_roster_reads_any_class_but_not_unknown_ones(w: World) -> None:
    cls = await w.new_class(owner=OTHER_OWNER)
    assert await get_roster(w.rt, None, cls.id) == []
    with pytest.raises(NotFoundError):
        await get_roster(w.rt, None, uuid4())
