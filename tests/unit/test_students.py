"""Student use cases on the in-memory adapters (contract §3.2, §3.3, §5.2, §5.4)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from class_core.errors import (
    DuplicateStudentEmailError,
    NotFoundError,
    ResourceInUseError,
    ValidationError,
)
from class_core.events import (
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
)
from class_core.model import Student
from class_core.queries import StudentQuery
from class_core.use_cases.matching import expire_due_batches
from class_core.use_cases.students import (
    UNSET,
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    delete_student,
    get_student,
    list_students,
    update_student,
)

from .world import OTHER_OWNER, OWNER, START, World, essay


@pytest.fixture
def w() -> World:
    return World()


async def placeholder_of(w: World, class_id: UUID) -> Student:
    """Time a one-essay batch out so that the class gets its UNKNOWN student."""
    await w.ingest(uuid4(), class_id, [essay(uuid4())])
    w.clock.advance(hours=25)
    await expire_due_batches(w.rt)
    [p] = [s for s in w.placeholders() if (class_id, s.id) in w.store.tables.memberships]
    return p


# ----------------------------------------------------------------------------- create


async def test_create_student_normalises_and_publishes(w: World) -> None:
    c2 = await w.new_class("B")
    c1 = await w.new_class("A")
    before = len(w.outbox.messages())
    ctx = w.ctx()
    student = await create_student(
        w.rt,
        ctx,
        CreateStudent(
            PersonName(" A\u030ase ", " Öberg", " Åse Maria Öberg "),
            email="  Ase.Oberg@Example.COM ",
            class_ids=[c2.id, c1.id, c2.id],
        ),
    )
    assert (student.first_name, student.last_name) == ("Åse", "Öberg")
    assert student.legal_full_name == student.full_name == "Åse Maria Öberg"
    assert student.email == "ase.oberg@example.com"
    assert student.class_ids == tuple(sorted([c1.id, c2.id]))
    assert student.is_placeholder is False
    assert student.created_at == student.updated_at == START
    assert await get_student(w.rt, ctx, student.id) == student

    new = w.envelopes()[before:]
    assert [e["event_type"] for e in new] == [STUDENT_CREATED] + [TEACHER_NOTIFICATION] * 2
    assert new[0]["data"] == {
        "event": "student.created",
        "student_id": str(student.id),
        "first_name": "Åse",
        "last_name": "Öberg",
        "student_email": "ase.oberg@example.com",
        "class_ids": [str(c2.id), str(c1.id)],
        "created_by_user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": START.isoformat(),
        "aliases": [],
        "external_id": None,
    }
    notes = w.notifier.sent[-2:]
    assert {n.notification_type for n in notes} == {"student_added_to_class"}
    assert {n.class_id for n in notes} == {c1.id, c2.id}
    assert {n.payload["student_name"] for n in notes} == {"Åse Maria Öberg"}


async def test_full_name_without_legal_name_is_first_space_last(w: World) -> None:
    s = await w.new_student("Ada", "Lovelace")
    assert s.full_name == "Ada Lovelace"
    assert s.email is None
    [data] = w.data(STUDENT_CREATED)
    assert (data["student_email"], data["class_ids"]) == (None, [])


async def test_create_collects_every_bad_field(w: World) -> None:
    with pytest.raises(ValidationError) as info:
        await create_student(
            w.rt,
            w.ctx(),
            CreateStudent(PersonName("", "x" * 256, "\x00"), email="not-an-email"),
        )
    assert {e.field for e in info.value.errors} == {
        "person_name.first_name",
        "person_name.last_name",
        "person_name.legal_full_name",
        "email",
    }
    assert w.store.tables.students == {}


@pytest.mark.parametrize("email", ["unknown.x@huleedu.system", "a@b", "a@@b.se", "a\x00@b.se"])
async def test_create_refuses_bad_emails(w: World, email: str) -> None:
    with pytest.raises(ValidationError) as info:
        await w.new_student(email=email)
    assert [e.field for e in info.value.errors] == ["email"]
    assert w.outbox.messages() == []


async def test_emails_are_unique_per_owner_case_insensitively(w: World) -> None:
    await w.new_student(email="ada@example.com")
    with pytest.raises(DuplicateStudentEmailError) as info:
        await w.new_student("Other", "One", email=" ADA@example.com")
    assert info.value.code == "DUPLICATE_STUDENT_EMAIL"
    other = await w.new_student(email="ada@example.com", owner=OTHER_OWNER)
    assert other.email == "ada@example.com"
    assert len(w.store.tables.students) == 2


async def test_create_in_a_class_of_another_owner_is_not_found_and_atomic(w: World) -> None:
    mine = await w.new_class()
    theirs = await w.new_class(owner=OTHER_OWNER)
    before = len(w.outbox.messages())
    with pytest.raises(NotFoundError):
        await w.new_student(classes=[mine.id, theirs.id])
    with pytest.raises(NotFoundError):
        await w.new_student(classes=[uuid4()])
    assert w.store.tables.students == {}
    assert len(w.outbox.messages()) == before


# ----------------------------------------------------------------------------- read / list


async def test_another_owners_student_is_not_found(w: World) -> None:
    s = await w.new_student(owner=OTHER_OWNER)
    ctx = w.ctx()
    with pytest.raises(NotFoundError):
        await get_student(w.rt, ctx, s.id)
    with pytest.raises(NotFoundError):
        await update_student(w.rt, ctx, s.id, UpdateStudent(first_name="x"))
    with pytest.raises(NotFoundError):
        await delete_student(w.rt, ctx, s.id)


async def test_list_students_orders_filters_and_includes_the_placeholder(w: World) -> None:
    cls = await w.new_class()
    b = await w.new_student("Bo", "Berg", [cls.id], email="bo@school.se")
    a = await w.new_student("Ann", "Berg")
    z = await w.new_student("Zoë", "Ålund", [cls.id])
    await w.new_student("Else", "Where", owner=OTHER_OWNER)
    placeholder = await placeholder_of(w, cls.id)
    ctx = w.ctx()

    page = await list_students(w.rt, ctx, StudentQuery.build())
    # code-point order: "Berg" < "STUDENT" < "Ålund"
    assert [s.id for s in page.items] == [a.id, b.id, placeholder.id, z.id]
    assert page.total == 4
    assert page.items[2].is_placeholder

    page = await list_students(w.rt, ctx, StudentQuery.build(class_id=cls.id))
    assert [s.id for s in page.items] == [b.id, placeholder.id, z.id]

    page = await list_students(w.rt, ctx, StudentQuery.build(q="ZOE ALUND"))
    assert [s.id for s in page.items] == [z.id]
    page = await list_students(w.rt, ctx, StudentQuery.build(q="SCHOOL.SE"))
    assert [s.id for s in page.items] == [b.id]

    page = await list_students(w.rt, ctx, StudentQuery.build(limit=2, offset=1))
    assert [s.id for s in page.items] == [b.id, placeholder.id]

    theirs = await w.new_class(owner=OTHER_OWNER)
    with pytest.raises(NotFoundError):
        await list_students(w.rt, ctx, StudentQuery.build(class_id=theirs.id))


async def test_list_students_updated_since_is_inclusive(w: World) -> None:
    await w.new_student("Old", "One")
    w.clock.advance(hours=1)
    new = await w.new_student("New", "One")
    page = await list_students(w.rt, w.ctx(), StudentQuery.build(updated_since=new.updated_at))
    assert [s.id for s in page.items] == [new.id]


# ----------------------------------------------------------------------------- update


async def test_update_names_and_email_publishes_current_values(w: World) -> None:
    s = await w.new_student("Ada", "Lovelace", email="ada@example.com")
    w.clock.advance(hours=1)
    ctx = w.ctx()
    updated = await update_student(
        w.rt, ctx, s.id, UpdateStudent(first_name=" Augusta ", email=None)
    )
    assert (updated.first_name, updated.last_name, updated.email) == (
        "Augusta",
        "Lovelace",
        None,
    )
    assert updated.updated_at == START + timedelta(hours=1)
    assert await get_student(w.rt, ctx, s.id) == updated
    [data] = w.data(STUDENT_UPDATED)
    assert data == {
        "event": "student.updated",
        "student_id": str(s.id),
        "first_name": "Augusta",
        "last_name": "Lovelace",
        "student_email": None,
        "add_class_ids": None,
        "remove_class_ids": None,
        "updated_by_user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": updated.updated_at.isoformat(),
        "aliases": [],
        "external_id": None,
    }


async def test_unset_keeps_and_none_clears_the_legal_name(w: World) -> None:
    s = await create_student(
        w.rt, w.ctx(), CreateStudent(PersonName("Ada", "L", "Ada King"), email="a@b.se")
    )
    kept = await update_student(w.rt, w.ctx(), s.id, UpdateStudent(last_name="Lovelace"))
    assert (kept.legal_full_name, kept.email) == ("Ada King", "a@b.se")
    cleared = await update_student(
        w.rt, w.ctx(), s.id, UpdateStudent(legal_full_name=None, email=UNSET)
    )
    assert (cleared.legal_full_name, cleared.full_name, cleared.email) == (
        None,
        "Ada Lovelace",
        "a@b.se",
    )


async def test_update_that_changes_nothing_publishes_nothing(w: World) -> None:
    cls = await w.new_class()
    other = await w.new_class("other")
    s = await w.new_student("Ada", "Lovelace", [cls.id], email="ada@example.com")
    before = len(w.outbox.messages())
    w.clock.advance(hours=1)
    same = await update_student(
        w.rt,
        w.ctx(),
        s.id,
        UpdateStudent(
            first_name="Ada",
            last_name=" Lovelace",
            email="ADA@example.com",
            add_class_ids=[cls.id],
            remove_class_ids=[other.id],
        ),
    )
    assert same.updated_at == START
    assert len(w.outbox.messages()) == before
    assert w.student(s.id).updated_at == START


async def test_membership_changes_bump_updated_at_and_publish_applied_ids(w: World) -> None:
    a = await w.new_class("A")
    b = await w.new_class("B")
    c = await w.new_class("C")
    s = await w.new_student(classes=[a.id, b.id])
    notes_before = len(w.notifier.sent)
    w.clock.advance(minutes=5)
    updated = await update_student(
        w.rt,
        w.ctx(),
        s.id,
        UpdateStudent(add_class_ids=[c.id, a.id], remove_class_ids=[b.id]),
    )
    assert updated.class_ids == tuple(sorted([a.id, c.id]))
    assert updated.updated_at == START + timedelta(minutes=5)
    assert (await get_student(w.rt, w.ctx(), s.id)).class_ids == updated.class_ids
    [data] = w.data(STUDENT_UPDATED)
    assert data["add_class_ids"] == [str(c.id)]
    assert data["remove_class_ids"] == [str(b.id)]
    [note] = w.notifier.sent[notes_before:]
    assert (note.notification_type, note.class_id) == ("student_added_to_class", c.id)
    assert note.payload == {
        "student_id": str(s.id),
        "student_name": "Ada Lovelace",
        "class_id": str(c.id),
        "class_designation": "C",
        "message": note.payload["message"],
    }


async def test_update_refusals(w: World) -> None:
    cls = await w.new_class()
    theirs = await w.new_class(owner=OTHER_OWNER)
    await w.new_student("Taken", "Email", email="taken@example.com")
    s = await w.new_student(email="mine@example.com")
    ctx = w.ctx()
    with pytest.raises(ValidationError) as info:
        await update_student(
            w.rt, ctx, s.id, UpdateStudent(add_class_ids=[cls.id], remove_class_ids=[cls.id])
        )
    assert info.value.errors
    with pytest.raises(ValidationError) as info:
        await update_student(w.rt, ctx, s.id, UpdateStudent(first_name=" ", email="x"))
    assert {e.field for e in info.value.errors} == {"person_name.first_name", "email"}
    with pytest.raises(DuplicateStudentEmailError):
        await update_student(w.rt, ctx, s.id, UpdateStudent(email="Taken@example.com"))
    with pytest.raises(NotFoundError):
        await update_student(w.rt, ctx, s.id, UpdateStudent(add_class_ids=[theirs.id]))
    with pytest.raises(NotFoundError):
        await update_student(w.rt, ctx, uuid4(), UpdateStudent(first_name="x"))
    assert w.student(s.id).email == "mine@example.com"
    assert w.data(STUDENT_UPDATED) == []


async def test_the_placeholder_is_read_only(w: World) -> None:
    cls = await w.new_class()
    placeholder = await placeholder_of(w, cls.id)
    ctx = w.ctx()
    read = await get_student(w.rt, ctx, placeholder.id)
    assert read.is_placeholder
    with pytest.raises(ResourceInUseError) as info:
        await update_student(w.rt, ctx, placeholder.id, UpdateStudent(first_name="Known"))
    assert info.value.code == "RESOURCE_IN_USE"
    with pytest.raises(ResourceInUseError):
        await delete_student(w.rt, ctx, placeholder.id)
    assert w.student(placeholder.id).first_name == "UNKNOWN"


# ----------------------------------------------------------------------------- delete


async def test_delete_student_removes_memberships_and_publishes(w: World) -> None:
    cls = await w.new_class()
    s = await w.new_student(classes=[cls.id])
    ctx = w.ctx()
    await delete_student(w.rt, ctx, s.id)
    assert s.id not in w.store.tables.students
    assert not any(m == s.id for _, m in w.store.tables.memberships)
    [data] = w.data(STUDENT_DELETED)
    assert data == {
        "event": "student.deleted",
        "student_id": str(s.id),
        "class_ids": [str(cls.id)],
        "user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": START.isoformat(),
    }
    with pytest.raises(NotFoundError):
        await get_student(w.rt, ctx, s.id)


async def test_delete_is_refused_while_an_association_names_the_student(w: World) -> None:
    cls = await w.new_class()
    suggested = await w.new_student("Sug", "Gested", [cls.id])
    await w.ingest(uuid4(), cls.id, [essay(uuid4(), (suggested.id, 0.9))])
    with pytest.raises(ResourceInUseError):
        await delete_student(w.rt, w.ctx(), suggested.id)
    assert suggested.id in w.store.tables.students
    assert w.data(STUDENT_DELETED) == []
