"""Privacy of students (contract §10) on the in-memory adapters: erasure, export and its
history, protected identity."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters_sql.envelopes import ENVELOPES
from class_core.errors import NotFoundError, ResourceInUseError
from class_core.events import (
    STUDENT_CREATED,
    STUDENT_ERASED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
    StudentUpdatedV1,
)
from class_core.matching import EssayMatch, Suggestion
from class_core.model import HistoryAction, Student
from class_core.privacy import scrub_reasons
from class_core.use_cases.classes import get_roster
from class_core.use_cases.imports import RosterRow, validate_row
from class_core.use_cases.matching import (
    ConfirmItem,
    confirm_associations,
    decided_student_for_essay,
    decided_students,
    expire_due_batches,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    erase_student,
    export_student,
    get_student,
    update_student,
)

from .world import OTHER_OWNER, OWNER, World

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer
scrub_envelope = ENVELOPES.erase

FIRST, LAST, LEGAL, EMAIL = "Zephyrine", "Quillfeather", "Zephyrine Q. Quillfeather", "zq@x.se"


@pytest.fixture
def w() -> World:
    return World()


async def _student(w: World, classes: list[UUID], protected: bool = False) -> Student:
    return await create_student(
        w.rt,
        w.ctx(),
        CreateStudent(PersonName(FIRST, LAST, LEGAL), EMAIL, classes, protected_identity=protected),
    )


def _payloads(w: World) -> str:
    return "\n".join(m.payload for m in w.outbox.messages())


async def test_erasure_keeps_an_anonymous_record_and_publishes_updated_then_erased(
    w: World,
) -> None:
    cls, other = await w.new_class("9A"), await w.new_class("9B")
    s = await _student(w, [cls.id, other.id])
    essay_id, batch_id = uuid4(), uuid4()
    await w.ingest(batch_id, cls.id, [EssayMatch(essay_id, (Suggestion(s.id, 0.9, ("x",)),))])
    await confirm_associations(w.rt, w.ctx(), batch_id, [ConfirmItem(essay_id, True)])
    w.clock.advance(minutes=1)
    ctx = w.ctx()

    erased = await erase_student(w.rt, ctx, s.id)

    assert (erased.id, erased.first_name, erased.last_name) == (s.id, "ERASED", "STUDENT")
    assert (erased.legal_full_name, erased.email, erased.class_ids) == (None, None, ())
    assert erased.is_erased
    assert erased.erased_at == w.clock.now()
    assert not erased.protected_identity
    assert await get_student(w.rt, w.ctx(), s.id) == erased
    kept = w.association(essay_id)
    assert (kept.student_id, kept.suggested_student_id) == (s.id, s.id)
    assert kept.validation_status.value == "confirmed"
    assert w.topics()[-2:] == [STUDENT_UPDATED, STUDENT_ERASED]
    updated, gone = w.envelopes()[-2:]
    left = sorted([str(cls.id), str(other.id)])
    assert updated["data"]["first_name"] == "ERASED"
    assert updated["data"]["last_name"] == "STUDENT"
    assert updated["data"]["student_email"] is None
    assert sorted(updated["data"]["remove_class_ids"]) == left
    assert updated["data"]["add_class_ids"] is None
    assert gone["data"] == {
        "student_id": str(s.id),
        "class_ids": gone["data"]["class_ids"],
        "user_id": OWNER,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": w.clock.now().isoformat(),
        "event": "student.erased",
    }
    assert sorted(gone["data"]["class_ids"]) == left
    assert updated["correlation_id"] == gone["correlation_id"] == str(ctx.correlation_id)


async def test_erasure_is_idempotent_and_erased_students_are_read_only(w: World) -> None:
    cls = await w.new_class()
    s = await _student(w, [cls.id])
    first = await erase_student(w.rt, w.ctx(), s.id)
    published = len(w.topics())
    w.clock.advance(hours=1)
    again = await erase_student(w.rt, w.ctx(), s.id)
    assert again == first
    assert len(w.topics()) == published
    with pytest.raises(ResourceInUseError):
        await update_student(w.rt, w.ctx(), s.id, UpdateStudent(first_name="Back"))
    with pytest.raises(ResourceInUseError):
        await update_student(w.rt, w.ctx(), s.id, UpdateStudent(add_class_ids=[cls.id]))
    with pytest.raises(NotFoundError):
        await erase_student(w.rt, w.ctx(OTHER_OWNER), s.id)


async def test_the_placeholder_cannot_be_erased(w: World) -> None:
    cls = await w.new_class()
    await w.ingest(uuid4(), cls.id, [EssayMatch(uuid4(), ())])
    w.clock.advance(hours=25)
    await expire_due_batches(w.rt)
    [placeholder] = w.placeholders()
    with pytest.raises(ResourceInUseError):
        await erase_student(w.rt, w.ctx(), placeholder.id)


async def test_erasure_clears_outbox_rows_and_reasons_but_leaves_other_students(
    w: World,
) -> None:
    cls = await w.new_class()
    s = await _student(w, [cls.id])
    namesake = await w.new_student(FIRST, "Other", [cls.id], email="other@x.se")
    essay_id = uuid4()
    reasons = (f"signed {FIRST} {LAST}", "handwriting", f"mail {EMAIL}")
    await w.ingest(uuid4(), cls.id, [EssayMatch(essay_id, (Suggestion(s.id, 0.9, reasons),))])
    # Everything so far is published; then a rename waits in the outbox.
    await w.outbox.mark_published(
        [r.seq for r in await w.outbox.fetch_ready(w.clock.now(), 1000)], w.clock.now()
    )
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(last_name="Quillfeather-Ek"))
    [pending] = [m for m in w.outbox.messages() if m.topic == STUDENT_UPDATED]
    namesake_rows = [m for m in w.outbox.messages() if str(namesake.id) in m.payload]

    await erase_student(w.rt, w.ctx(), s.id)

    text = _payloads(w).casefold()
    for value in (LAST, LEGAL, EMAIL, "Quillfeather-Ek"):
        assert value.casefold() not in text
    assert w.association(essay_id).match_reasons == ("handwriting",)
    [rewritten] = [m for m in w.outbox.messages() if m.event_id == pending.event_id]
    data = json.loads(rewritten.payload)["data"]
    assert (data["first_name"], data["last_name"], data["student_email"]) == (
        "ERASED",
        "STUDENT",
        None,
    )
    # The student's published creation is gone; the namesake's rows are as they were.
    assert not [
        m for m in w.outbox.messages() if m.topic == STUDENT_CREATED and str(s.id) in m.payload
    ]
    assert [m for m in w.outbox.messages() if str(namesake.id) in m.payload] == namesake_rows


def test_scrub_envelope_leaves_events_of_other_students_alone() -> None:
    s = Student(uuid4(), OWNER, FIRST, LAST, None, EMAIL, _NOW, _NOW)
    other = Student(uuid4(), OWNER, FIRST, "Else", None, None, _NOW, _NOW)
    for student, expected in ((other, None), (s, "ERASED")):
        event = StudentUpdatedV1.of(student, (), (), OWNER, uuid4(), _NOW)
        msg = build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=_NOW)
        out = scrub_envelope(msg.payload, s.id, (FIRST, LAST, EMAIL))
        if expected is None:
            assert out is None
        else:
            assert out is not None
            assert json.loads(out)["event_id"] == str(msg.event_id)
            assert json.loads(out)["data"]["first_name"] == expected
    assert scrub_reasons(("Name: ZEPHYRINE", "style"), (FIRST,)) == ("style",)


async def test_export_lists_classes_associations_and_the_history_of_actions(w: World) -> None:
    cls, other = await w.new_class("9A"), await w.new_class("9B")
    s = await _student(w, [cls.id])
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(first_name="Zeph"))
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(add_class_ids=[other.id]))
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(remove_class_ids=[other.id]))
    decided, timed_out = uuid4(), uuid4()
    batch_id, later_batch = uuid4(), uuid4()
    # Two batches: within one, the §11 guard would send the second essay of the student a
    # teacher already chose to UNKNOWN.
    await w.ingest(batch_id, cls.id, [EssayMatch(decided, (Suggestion(s.id, 0.9, ("r",)),))])
    await w.ingest(later_batch, cls.id, [EssayMatch(timed_out, (Suggestion(s.id, 0.95, ("r",)),))])
    await confirm_associations(w.rt, w.ctx("teacher-1"), batch_id, [ConfirmItem(decided, True)])
    w.clock.advance(hours=25)
    await expire_due_batches(w.rt)

    export = await export_student(w.rt, w.ctx(), s.id)
    assert export.student.first_name == "Zeph"
    assert [c.id for c in export.classes] == [cls.id]
    assert {a.essay_id for a in export.associations} == {decided, timed_out}
    assert [(e.action, e.by) for e in export.history] == [
        (HistoryAction.CREATED, OWNER),
        (HistoryAction.ADDED_TO_CLASS, OWNER),
        (HistoryAction.UPDATED, OWNER),
        (HistoryAction.ADDED_TO_CLASS, OWNER),
        (HistoryAction.REMOVED_FROM_CLASS, OWNER),
        (HistoryAction.ASSOCIATION_DECIDED, OWNER),
        (HistoryAction.ASSOCIATION_DECIDED, "SYSTEM_TIMEOUT"),
    ]
    await erase_student(w.rt, w.ctx(), s.id)
    after = await export_student(w.rt, w.ctx(), s.id)
    assert [e.action for e in after.history][-2:] == [
        HistoryAction.REMOVED_FROM_CLASS,
        HistoryAction.ERASED,
    ]
    assert after.classes == ()
    assert len(after.associations) == 2
    with pytest.raises(NotFoundError):
        await export_student(w.rt, w.ctx(OTHER_OWNER), s.id)


async def test_a_protected_identity_is_a_pseudonym_outside_the_owners_reads(w: World) -> None:
    cls = await w.new_class()
    s = await _student(w, [cls.id], protected=True)
    pseudonym = ("Protected", f"Student {s.id.hex[:8]}")
    [created] = w.data(STUDENT_CREATED)
    assert (created["first_name"], created["last_name"]) == pseudonym
    assert created["student_email"] is None
    [note] = [n for n in w.notifier.sent if n.notification_type == "student_added_to_class"]
    assert note.payload["student_name"] == " ".join(pseudonym)
    for text in (_payloads(w), json.dumps([n.realtime_message() for n in w.notifier.sent])):
        for value in (FIRST, LAST, LEGAL, EMAIL):
            assert value not in text
    # The owner sees the person; the internal roster and routes see the pseudonym.
    assert (await get_student(w.rt, w.ctx(), s.id)).first_name == FIRST
    [own] = await get_roster(w.rt, OWNER, cls.id)
    [internal] = await get_roster(w.rt, None, cls.id)
    assert (own.first_name, own.email) == (FIRST, EMAIL)
    assert (internal.first_name, internal.last_name, internal.email) == (*pseudonym, None)
    assert internal.legal_full_name is None
    essay_id, batch_id = uuid4(), uuid4()
    await w.ingest(batch_id, cls.id, [EssayMatch(essay_id, (Suggestion(s.id, 0.9, ("r",)),))])
    await confirm_associations(w.rt, w.ctx(), batch_id, [ConfirmItem(essay_id, True)])
    [named] = await decided_students(w.rt, batch_id)
    one = await decided_student_for_essay(w.rt, essay_id)
    for found in (named.student, one.student):
        assert (found.first_name, found.last_name, found.full_name) == (
            *pseudonym,
            " ".join(pseudonym),
        )

    # Lifting the protection publishes the names now visible outside; setting it again
    # publishes the pseudonym.
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(protected_identity=False))
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(protected_identity=False))
    await update_student(w.rt, w.ctx(), s.id, UpdateStudent(protected_identity=True))
    lifted, again = w.data(STUDENT_UPDATED)
    assert (lifted["first_name"], lifted["last_name"], lifted["student_email"]) == (
        FIRST,
        LAST,
        EMAIL,
    )
    assert (again["first_name"], again["last_name"], again["student_email"]) == (
        *pseudonym,
        None,
    )
    assert TEACHER_NOTIFICATION in w.topics()


def test_the_import_column_protected_identity() -> None:
    def row(flag: str | None) -> Any:
        return validate_row(RosterRow(2, "A", "B", "a@b.se", protected_identity=flag))

    assert [getattr(row(f), "protected_identity", "error") for f in ("true", " TRUE", "")] == [
        True,
        True,
        False,
    ]
    assert row("false").protected_identity is False
    assert row(None).protected_identity is None
    assert "protected_identity" in str(row("yes").errors)


_NOW = World().clock.now()


async def test_exported_associations_carry_conflict_judged_within_their_batch(w: World) -> None:
    """§11's ``conflict`` in an export: two essays of one batch suggesting the same student
    conflict; an essay alone in its batch does not, though the student is the same."""
    cls = await w.new_class()
    s = await _student(w, [cls.id])
    twin_a, twin_b, alone = uuid4(), uuid4(), uuid4()
    await w.ingest(
        uuid4(),
        cls.id,
        [
            EssayMatch(twin_a, (Suggestion(s.id, 0.9),)),
            EssayMatch(twin_b, (Suggestion(s.id, 0.8),)),
        ],
    )
    await w.ingest(uuid4(), cls.id, [EssayMatch(alone, (Suggestion(s.id, 0.9),))])
    export = await export_student(w.rt, w.ctx(), s.id)
    flags = {a.essay_id: export.conflict(a) for a in export.associations}
    assert flags == {twin_a: True, twin_b: True, alone: False}
