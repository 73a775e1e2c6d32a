"""External ids and archived classes (contract §9.1, §9.2) on the in-memory adapters."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from class_core.errors import (
    ClassArchivedError,
    DuplicateExternalIdError,
    NotFoundError,
    PreconditionFailedError,
    ResourceInUseError,
    ValidationError,
)
from class_core.events import CLASS_CREATED, CLASS_UPDATED, STUDENT_CREATED, STUDENT_UPDATED
from class_core.model import ClassStatus
from class_core.queries import ClassQuery, StudentQuery
from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    delete_class,
    get_class,
    get_roster,
    list_classes,
    set_class_archived,
    update_class,
)
from class_core.use_cases.matching import expire_due_batches
from class_core.use_cases.students import (
    UNSET,
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    erase_student,
    list_students,
    update_student,
)
from class_core.versions import IfMatch

from .world import OTHER_OWNER, START, World, essay


@pytest.fixture
def w() -> World:
    return World()


# ----------------------------------------------------------------------------- external ids


async def test_class_external_id_is_cleaned_stored_published_and_filterable(w: World) -> None:
    ctx = w.ctx()
    cls = await create_class(w.rt, ctx, CreateClass("9A", ["ENG5"], "  SIS-Cafe\u0301 "))
    assert cls.external_id == "SIS-Café"
    [created] = w.data(CLASS_CREATED)
    assert created["external_id"] == "SIS-Café"
    await w.new_class("9B")
    page = await list_classes(w.rt, ctx, ClassQuery.build(external_id="SIS-Cafe\u0301"))
    assert [c.id for c in page.items] == [cls.id]
    # Compared exactly: no case folding.
    page = await list_classes(w.rt, ctx, ClassQuery.build(external_id="sis-café"))
    assert page.items == ()


async def test_class_external_id_is_unique_per_owner_and_nothing_changes(w: World) -> None:
    ctx = w.ctx()
    first = await create_class(w.rt, ctx, CreateClass("9A", ["ENG5"], "X1"))
    before = len(w.topics())
    with pytest.raises(DuplicateExternalIdError):
        await create_class(w.rt, ctx, CreateClass("9B", ["ENG5"], "X1"))
    assert len(w.topics()) == before
    other = await create_class(w.rt, w.ctx(OTHER_OWNER), CreateClass("9A", ["ENG5"], "X1"))
    assert other.external_id == "X1"  # another owner's namespace
    second = await create_class(w.rt, ctx, CreateClass("9B", ["ENG5"], "X2"))
    with pytest.raises(DuplicateExternalIdError):
        await update_class(w.rt, ctx, second.id, UpdateClass(external_id="X1"))
    assert (await get_class(w.rt, ctx, second.id)).version == 1
    assert len(w.topics()) == before + 4  # the two creates only (event + notification each)
    assert (await get_class(w.rt, ctx, first.id)).external_id == "X1"


async def test_class_external_id_set_cleared_and_left_by_put(w: World) -> None:
    ctx = w.ctx()
    cls = await w.new_class()
    updated = await update_class(w.rt, ctx, cls.id, UpdateClass(external_id="S-1"))
    assert (updated.external_id, updated.version) == ("S-1", 2)
    [event] = w.data(CLASS_UPDATED)
    assert event["external_id"] == "S-1"
    assert (event["class_designation"], event["course_codes"]) == (None, None)
    assert event["status"] == "active"
    same = await update_class(w.rt, ctx, cls.id, UpdateClass(name="9B"))
    assert (same.external_id, same.version) == ("S-1", 3)  # absent: left as it is
    assert w.data(CLASS_UPDATED)[-1]["external_id"] == "S-1"  # current, though unchanged
    cleared = await update_class(w.rt, ctx, cls.id, UpdateClass(external_id=None))
    assert (cleared.external_id, cleared.version) == (None, 4)
    assert w.data(CLASS_UPDATED)[-1]["external_id"] is None
    again = await update_class(w.rt, ctx, cls.id, UpdateClass(external_id=None))
    assert again.version == 4
    assert len(w.data(CLASS_UPDATED)) == 3


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b", "x" * 256])
async def test_bad_external_ids_are_refused(w: World, bad: str) -> None:
    ctx = w.ctx()
    with pytest.raises(ValidationError) as caught:
        await create_class(w.rt, ctx, CreateClass("9A", ["ENG5"], bad))
    assert [e.field for e in caught.value.errors] == ["external_id"]
    with pytest.raises(ValidationError):
        await create_student(w.rt, ctx, CreateStudent(PersonName("A", "B"), external_id=bad))
    with pytest.raises(ValidationError):
        await list_students(w.rt, ctx, StudentQuery.build(external_id=bad))
    assert w.topics() == []


async def test_student_external_id_lifecycle(w: World) -> None:
    ctx = w.ctx()
    s = await create_student(
        w.rt, ctx, CreateStudent(PersonName("Ada", "Lovelace"), external_id=" P-1 ")
    )
    assert s.external_id == "P-1"
    assert w.data(STUDENT_CREATED)[0]["external_id"] == "P-1"
    with pytest.raises(DuplicateExternalIdError):
        await create_student(w.rt, ctx, CreateStudent(PersonName("B", "C"), external_id="P-1"))
    other = await create_student(w.rt, ctx, CreateStudent(PersonName("B", "C")))
    with pytest.raises(DuplicateExternalIdError):
        await update_student(w.rt, ctx, other.id, UpdateStudent(external_id="P-1"))
    renamed = await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="Augusta"))
    assert renamed.external_id == "P-1"
    assert w.data(STUDENT_UPDATED)[-1]["external_id"] == "P-1"
    changed = await update_student(w.rt, ctx, s.id, UpdateStudent(external_id="P-2"))
    assert (changed.external_id, changed.version) == ("P-2", 3)
    page = await list_students(w.rt, ctx, StudentQuery.build(external_id="P-2"))
    assert [x.id for x in page.items] == [s.id]
    cleared = await update_student(w.rt, ctx, s.id, UpdateStudent(external_id=None))
    assert cleared.external_id is None
    assert w.data(STUDENT_UPDATED)[-1]["external_id"] is None
    # Freed: another student may take it now.
    taken = await update_student(w.rt, ctx, other.id, UpdateStudent(external_id="P-2"))
    assert taken.external_id == "P-2"
    unchanged = await update_student(w.rt, ctx, other.id, UpdateStudent(external_id=UNSET))
    assert unchanged.version == taken.version


async def test_protected_identity_hides_and_erasure_clears_the_external_id(w: World) -> None:
    ctx = w.ctx()
    s = await create_student(
        w.rt,
        ctx,
        CreateStudent(PersonName("Ada", "Lovelace"), external_id="P-9", protected_identity=True),
    )
    assert s.external_id == "P-9"  # the owner's own read shows the person
    assert s.outside_view().external_id is None
    assert w.data(STUDENT_CREATED)[0]["external_id"] is None
    erased = await erase_student(w.rt, ctx, s.id)
    assert erased.external_id is None
    assert w.student(s.id).external_id is None
    assert "P-9" not in "".join(m.payload for m in w.outbox.messages())
    # The erased student's id is free again.
    again = await create_student(w.rt, ctx, CreateStudent(PersonName("X", "Y"), external_id="P-9"))
    assert again.external_id == "P-9"


# ----------------------------------------------------------------------------- archiving


async def test_archive_and_unarchive_are_idempotent_versions_with_events(w: World) -> None:
    ctx = w.ctx()
    cls = await create_class(w.rt, ctx, CreateClass("9A", ["ENG5"], "S-7"))
    w.clock.advance(hours=1)
    archived = await set_class_archived(w.rt, ctx, cls.id, True)
    at = START + timedelta(hours=1)
    assert (archived.status, archived.archived_at, archived.version) == (
        ClassStatus.ARCHIVED,
        at,
        2,
    )
    [event] = w.data(CLASS_UPDATED)
    assert (event["status"], event["external_id"]) == ("archived", "S-7")
    assert (event["class_designation"], event["course_codes"]) == (None, None)
    assert w.envelopes(CLASS_UPDATED)[0]["metadata"]["aggregate_version"] == 2
    again = await set_class_archived(w.rt, ctx, cls.id, True)
    assert (again.version, again.archived_at) == (2, at)
    assert len(w.data(CLASS_UPDATED)) == 1
    active = await set_class_archived(w.rt, ctx, cls.id, False)
    assert (active.status, active.archived_at, active.version) == (ClassStatus.ACTIVE, None, 3)
    assert w.data(CLASS_UPDATED)[-1]["status"] == "active"
    await set_class_archived(w.rt, ctx, cls.id, False)
    assert len(w.data(CLASS_UPDATED)) == 2


async def test_archive_honours_if_match_and_owner(w: World) -> None:
    ctx = w.ctx()
    cls = await w.new_class()
    with pytest.raises(PreconditionFailedError):
        await set_class_archived(w.rt, ctx, cls.id, True, IfMatch.parse('"7"'))
    with pytest.raises(ValidationError):
        await set_class_archived(w.rt, ctx, cls.id, True, IfMatch.parse("nonsense"))
    with pytest.raises(NotFoundError):
        await set_class_archived(w.rt, w.ctx(OTHER_OWNER), cls.id, True)
    with pytest.raises(NotFoundError):
        await set_class_archived(w.rt, ctx, uuid4(), True, IfMatch.parse("*"))
    assert (await get_class(w.rt, ctx, cls.id)).status is ClassStatus.ACTIVE
    done = await set_class_archived(w.rt, ctx, cls.id, True, IfMatch.parse('"1"'))
    assert done.version == 2
    assert len(w.data(CLASS_UPDATED)) == 1


async def test_an_archived_class_is_read_only(w: World) -> None:
    ctx = w.ctx()
    cls = await w.new_class()
    member = await w.new_student("Ann", "A", classes=[cls.id])
    loner = await w.new_student("Bo", "B")
    await set_class_archived(w.rt, ctx, cls.id, True)
    before = len(w.topics())
    with pytest.raises(ClassArchivedError):
        await update_class(w.rt, ctx, cls.id, UpdateClass(name="9Z"))
    with pytest.raises(ClassArchivedError):
        await update_class(w.rt, ctx, cls.id, UpdateClass(external_id="E"))
    with pytest.raises(ClassArchivedError):
        await create_student(w.rt, ctx, CreateStudent(PersonName("C", "C"), class_ids=[cls.id]))
    with pytest.raises(ClassArchivedError):
        await update_student(w.rt, ctx, loner.id, UpdateStudent(add_class_ids=[cls.id]))
    assert len(w.topics()) == before
    assert (await get_class(w.rt, ctx, cls.id)).name == "9A"
    # Still allowed: reads, roster, a member's other changes, removing students.
    assert [s.id for s in await get_roster(w.rt, ctx.user_id, cls.id)] == [member.id]
    renamed = await update_student(
        w.rt, ctx, member.id, UpdateStudent(first_name="Anna", add_class_ids=[cls.id])
    )
    assert renamed.first_name == "Anna"  # already a member: nothing joins
    left = await update_student(w.rt, ctx, member.id, UpdateStudent(remove_class_ids=[cls.id]))
    assert left.class_ids == ()
    # The order of checks: 412 before 409.
    with pytest.raises(PreconditionFailedError):
        await update_class(w.rt, ctx, cls.id, UpdateClass(name="9Z"), IfMatch.parse('"1"'))
    await delete_class(w.rt, ctx, cls.id)
    with pytest.raises(NotFoundError):
        await get_class(w.rt, ctx, cls.id)


async def test_class_list_is_active_by_default_and_filters_by_status(w: World) -> None:
    ctx = w.ctx()
    old = await w.new_class("old")
    w.clock.advance(minutes=1)
    new = await w.new_class("new")
    await set_class_archived(w.rt, ctx, old.id, True)

    async def ids(**kw: str) -> list[object]:
        page = await list_classes(w.rt, ctx, ClassQuery.build(**kw))  # type: ignore[arg-type]
        return [c.id for c in page.items]

    assert await ids() == [new.id]
    assert await ids(status="active") == [new.id]
    assert await ids(status="archived") == [old.id]
    assert await ids(status="all") == [new.id, old.id]
    with pytest.raises(ValidationError) as caught:
        ClassQuery.build(status="gone")
    assert [e.field for e in caught.value.errors] == ["status"]


async def test_suggestions_confirmation_and_the_sweep_still_work_on_an_archived_class(
    w: World,
) -> None:
    ctx = w.ctx()
    cls = await w.new_class()
    ann = await w.new_student("Ann", "A", classes=[cls.id])
    await set_class_archived(w.rt, ctx, cls.id, True)
    batch_id, e1, e2 = uuid4(), uuid4(), uuid4()
    await w.ingest(batch_id, cls.id, [essay(e1, (ann.id, 0.9)), essay(e2)])
    w.clock.advance(hours=25)
    [done] = await expire_due_batches(w.rt)
    assert done.batch_id == batch_id
    [placeholder] = w.placeholders()
    assert cls.id in placeholder.class_ids or (cls.id, placeholder.id) in w.store.tables.memberships
    assert w.association(e2).student_id == placeholder.id
    with pytest.raises(ResourceInUseError):  # the placeholder stays read-only
        await update_student(w.rt, ctx, placeholder.id, UpdateStudent(external_id="X"))
