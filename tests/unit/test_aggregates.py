"""Aggregates record their own events (issue 13): what each change records (complete, under
the correlation id the method is given), and how the unit of work collects it at commit (in
order, once, each event under its own correlation id)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import attrs

from adapters_sql.envelopes import ENVELOPES
from class_core.events import (
    ClassUpdatedV1,
    StudentAssociationsConfirmedV1,
    StudentCreatedV1,
    StudentUpdatedV1,
    TeacherNotification,
)
from class_core.matching import EssayMatch, Suggestion
from class_core.model import Batch, HistoryAction, SchoolClass, Student
from class_core.testing import InMemoryStore, memory_runtime

AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
LATER = AT + timedelta(minutes=5)
CORR = uuid4()


def _class(owner: str = "t1") -> SchoolClass:
    cls = SchoolClass.create(owner, "9A", "ENG5", at=AT, correlation_id=CORR)
    cls.pull_events()
    return cls


def test_student_create_records_its_event_a_notification_per_class_and_its_history() -> None:
    a, b = _class(), _class("t2")
    student = Student.create(
        "t1", "Ada", "Lovelace", classes=[b, a], by="t1", at=AT, correlation_id=CORR
    )
    events = student.pull_events()
    assert [type(e) for e in events] == [StudentCreatedV1, TeacherNotification, TeacherNotification]
    created = events[0]
    assert isinstance(created, StudentCreatedV1)
    assert created.class_ids == (b.id, a.id)  # in the order given
    assert created.correlation_id == CORR  # built complete, under the correlation id given
    assert [e.teacher_id for e in events[1:] if isinstance(e, TeacherNotification)] == ["t2", "t1"]
    assert {e.correlation_id for e in events[1:] if isinstance(e, TeacherNotification)} == {
        str(CORR)
    }
    assert [h.action for h in student.pull_history()] == [
        HistoryAction.CREATED,
        HistoryAction.ADDED_TO_CLASS,
        HistoryAction.ADDED_TO_CLASS,
    ]
    assert student.pull_events() == []  # pulled once
    assert student.pull_history() == []


def test_an_import_creates_without_notifications_and_names_its_actor_in_the_history() -> None:
    cls = _class()
    student = Student.create(
        "t1",
        "Ada",
        "L",
        classes=[cls],
        by="t1",
        at=AT,
        correlation_id=CORR,
        announce_joins=False,
        history_by="imp",
    )
    assert [type(e) for e in student.pull_events()] == [StudentCreatedV1]
    assert {h.by for h in student.pull_history()} == {"imp"}


def test_each_student_change_is_one_version_and_one_event_with_the_state_after_it() -> None:
    student = Student.create("t1", "Ada", "Lovelace", by="t1", at=AT, correlation_id=CORR)
    student.pull_events()
    # nothing changed
    assert student.update(first_name="Ada", by="t1", at=LATER, correlation_id=CORR) is None
    assert student.pull_events() == []
    first = student.update(last_name="Byron", by="t1", at=LATER, correlation_id=CORR)
    second = student.update(email="ada@example.org", by="t1", at=LATER, correlation_id=CORR)
    assert first is not None
    assert first.fields
    assert second is not None
    events = student.pull_events()
    assert all(isinstance(e, StudentUpdatedV1) for e in events)
    assert [(e.last_name, e.student_email, e.aggregate_version) for e in events] == [  # type: ignore[union-attr]
        ("Byron", None, 2),
        ("Byron", "ada@example.org", 3),
    ]
    assert student.version == 3


def test_a_class_archived_twice_records_one_change() -> None:
    cls = _class()
    assert cls.archive("t1", LATER, correlation_id=CORR)
    assert not cls.archive("t1", LATER, correlation_id=CORR)
    [event] = cls.pull_events()
    assert isinstance(event, ClassUpdatedV1)
    assert (event.status, event.aggregate_version, event.class_designation) == ("archived", 2, None)


def test_a_batch_whose_last_essay_is_decided_records_its_finalization() -> None:
    cls = _class()
    batch = Batch.open(uuid4(), cls, "ENG5", AT + timedelta(hours=24), AT)
    student = uuid4()
    essays = [EssayMatch(uuid4(), (Suggestion(student, 0.9),)), EssayMatch(uuid4())]
    applied = batch.apply_suggestions(essays, {}, {student}, first=True, at=AT, correlation_id=CORR)
    assert len(applied.new) == 2
    assert not applied.batch_changed
    [suggested] = batch.pull_events()
    assert isinstance(suggested, TeacherNotification)
    assert suggested.notification_type == "student_associations_suggested"
    batch.decide(applied.new, [(essays[0].essay_id, student)], "t1", LATER, correlation_id=CORR)
    assert batch.pull_events() == []  # one essay still pending
    assert not batch.is_finalized
    batch.decide(applied.new, [(essays[1].essay_id, None)], "t1", LATER, correlation_id=CORR)
    confirmed, note = batch.pull_events()
    assert isinstance(confirmed, StudentAssociationsConfirmedV1)
    assert batch.finalized_at == LATER  # finalized
    assert isinstance(note, TeacherNotification)
    assert note.notification_type == "student_associations_confirmed"
    assert [h.student_id for h in batch.pull_history()] == [student]  # the rejected had none


async def test_the_unit_of_work_writes_collected_events_at_commit_and_returns_notifications() -> (
    None
):
    store = InMemoryStore(ENVELOPES)
    rt = memory_runtime(store)
    correlation = uuid4()
    cls = SchoolClass.create("t1", "9A", "ENG5", at=AT, correlation_id=correlation)
    async with rt.uow() as uow:
        await uow.classes.add(cls)
        uow.collect(cls)
        notes = await uow.commit()
    assert [n.notification_type for n in notes] == ["class_created"]
    assert notes[0].correlation_id == str(correlation)
    rows = [store.tables.outbox[seq].message for seq in sorted(store.tables.outbox)]
    assert [json.loads(m.payload)["data"]["correlation_id"] for m in rows] == [str(correlation)] * 2
    assert cls.pull_events() == []  # pulled by the commit


async def test_each_collected_aggregate_keeps_the_correlation_id_it_recorded_under() -> None:
    """One unit of work, two correlation ids (the timeout sweep's batches each keep their
    own): every envelope carries its aggregate's, also the confirmed event, which has no
    field of its own; the events are the very objects recorded, unchanged."""
    store = InMemoryStore(ENVELOPES)
    rt = memory_runtime(store)
    first, second = uuid4(), uuid4()
    cls = SchoolClass.create("t1", "9A", "ENG5", at=AT, correlation_id=first)
    batch = Batch.open(uuid4(), cls, "ENG5", AT + timedelta(hours=24), AT)
    batch.finalize([], LATER, second)
    recorded = [e for e, _ in cls._events + batch._events]
    before = [attrs.asdict(e) for e in recorded]
    async with rt.uow() as uow:
        await uow.classes.add(cls)
        uow.collect(cls)
        uow.collect(batch)
        notes = await uow.commit()
    assert [n.correlation_id for n in notes] == [str(first), str(second)]
    rows = [store.tables.outbox[seq].message for seq in sorted(store.tables.outbox)]
    assert [json.loads(m.payload)["correlation_id"] for m in rows] == [
        str(first),
        str(first),
        str(second),  # StudentAssociationsConfirmedV1: the batch's
        str(second),
    ]
    assert [attrs.asdict(e) for e in recorded] == before  # never changed after being built
