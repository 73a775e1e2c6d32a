"""Phase-1 matching use cases (contract §3.3 confirm rules, §4 lifecycle, §5.2, §5.4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from class_core.errors import (
    BatchFinalizedError,
    NotFoundError,
    StudentNotInClassError,
    ValidationError,
)
from class_core.events import ASSOCIATIONS_CONFIRMED, STUDENT_CREATED, TEACHER_NOTIFICATION
from class_core.model import (
    SYSTEM_TIMEOUT_USER,
    BatchStatus,
    SchoolClass,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.use_cases.matching import (
    ConfirmItem,
    IngestOutcome,
    batch_class_info,
    confirm_associations,
    decided_student_for_essay,
    decided_students,
    expire_due_batches,
    finalize_batch,
    get_batch_associations,
    list_pending_associations,
)
from class_core.use_cases.students import UpdateStudent, update_student

from .world import OTHER_OWNER, OWNER, START, World, essay


class Setup:
    def __init__(self, w: World, cls: SchoolClass, ann: Student, bo: Student, cy: Student):
        self.w, self.cls, self.ann, self.bo, self.cy = w, cls, ann, bo, cy
        self.outsider: Student | None = None


@pytest.fixture
async def s() -> Setup:
    w = World(timeout_hours=24, threshold=0.7)
    cls = await w.new_class("9A", "ENG5")
    ann = await w.new_student("Ann", "Alm", [cls.id])
    bo = await w.new_student("Bo", "Berg", [cls.id])
    cy = await w.new_student("Cy", "Ceder", [cls.id])
    setup = Setup(w, cls, ann, bo, cy)
    setup.outsider = await w.new_student("Out", "Sider")
    return setup


async def pending_batch(s: Setup, *essays: tuple[UUID, tuple[UUID, float] | None]) -> UUID:
    batch_id = uuid4()
    result = await s.w.ingest(
        batch_id, s.cls.id, [essay(e, sug) if sug else essay(e) for e, sug in essays]
    )
    assert result.outcome is IngestOutcome.STORED
    return batch_id


def items(*pairs: tuple[UUID, bool] | tuple[UUID, bool, UUID]) -> list[ConfirmItem]:
    return [ConfirmItem(*p) for p in pairs]


# ============================================================================= ingest


async def test_first_store_keeps_the_best_member_suggestion_and_notifies(s: Setup) -> None:
    w = s.w
    e1, e2, e3 = uuid4(), uuid4(), uuid4()
    assert s.outsider is not None
    batch_id = uuid4()
    msg_correlation_before = len(w.notifier.sent)
    result = await w.ingest(
        batch_id,
        s.cls.id,
        [
            essay(e1, (s.ann.id, 0.4), (s.outsider.id, 0.99), (s.bo.id, 0.8), (s.cy.id, 0.6)),
            essay(e2, (s.outsider.id, 0.9), (uuid4(), 0.95)),  # no member suggested
            essay(e3),
        ],
        course_code="SV1",
    )
    assert result.outcome is IngestOutcome.STORED
    assert (result.stored, result.ignored_essays) == (3, 0)

    batch = w.batch(batch_id)
    assert (batch.class_id, batch.owner_id, batch.course_code) == (s.cls.id, OWNER, "SV1")
    assert batch.status is BatchStatus.PENDING
    assert batch.deadline == START + timedelta(hours=24)

    a1 = w.association(e1)
    assert (a1.suggested_student_id, a1.confidence_score, a1.match_reasons) == (
        s.bo.id,
        0.8,
        ("reason-0.8",),
    )
    assert a1.student_id is None
    assert a1.validation_status is ValidationStatus.PENDING
    for e in (e2, e3):
        a = w.association(e)
        assert (a.suggested_student_id, a.confidence_score, a.match_reasons) == (None, None, ())

    [note] = w.notifier.sent[msg_correlation_before:]
    assert note.notification_type == "student_associations_suggested"
    assert note.action_required is True
    assert note.deadline_timestamp == batch.deadline
    assert (note.payload["essay_count"], note.payload["suggested_count"]) == (3, 1)
    assert w.confirmed_events(batch_id) == []


async def test_the_placeholder_is_never_a_suggestion(s: Setup) -> None:
    w = s.w
    await pending_batch(s, (uuid4(), None))
    w.clock.advance(hours=24)
    await expire_due_batches(w.rt)
    [placeholder] = w.placeholders()
    e = uuid4()
    await w.ingest(uuid4(), s.cls.id, [essay(e, (placeholder.id, 1.0), (s.ann.id, 0.1))])
    assert w.association(e).suggested_student_id == s.ann.id


async def test_deadline_uses_the_configured_float_hours() -> None:
    w = World(timeout_hours=1.5)
    cls = await w.new_class()
    batch_id = uuid4()
    await w.ingest(batch_id, cls.id, [essay(uuid4())])
    assert w.batch(batch_id).deadline == START + timedelta(hours=1.5)


async def test_redelivery_of_the_same_message_changes_nothing(s: Setup) -> None:
    w = s.w
    batch_id, e = uuid4(), uuid4()
    await w.ingest(batch_id, s.cls.id, [essay(e, (s.ann.id, 0.9))], message_id="m-1")
    snapshot = (dict(w.store.tables.associations), dict(w.store.tables.batches))
    outbox = len(w.outbox.messages())
    w.clock.advance(hours=1)
    result = await w.ingest(
        batch_id, s.cls.id, [essay(e, (s.bo.id, 0.99)), essay(uuid4())], message_id="m-1"
    )
    assert result.outcome is IngestOutcome.DUPLICATE
    assert (dict(w.store.tables.associations), dict(w.store.tables.batches)) == snapshot
    assert len(w.outbox.messages()) == outbox


async def test_a_replayed_identical_message_with_a_new_id_changes_nothing(s: Setup) -> None:
    w = s.w
    batch_id, e = uuid4(), uuid4()
    await w.ingest(batch_id, s.cls.id, [essay(e, (s.ann.id, 0.9))])
    before = w.association(e)
    w.clock.advance(hours=1)
    result = await w.ingest(batch_id, s.cls.id, [essay(e, (s.ann.id, 0.9))])
    assert result.stored == 0
    assert w.association(e) == before
    assert w.batch(batch_id).updated_at == START


async def test_a_new_message_replaces_pending_suggestions_adds_essays_and_keeps_the_deadline(
    s: Setup,
) -> None:
    w = s.w
    other = await w.new_class("9B")
    e_pending, e_decided, e_new = uuid4(), uuid4(), uuid4()
    batch_id = await pending_batch(s, (e_pending, (s.ann.id, 0.9)), (e_decided, (s.ann.id, 0.8)))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e_decided, False)))
    deadline = w.batch(batch_id).deadline
    notes = len(w.notifier.sent)

    w.clock.advance(hours=3)
    result = await w.ingest(
        batch_id,
        other.id,  # a different class in the message never moves the batch
        [
            essay(e_pending, (s.bo.id, 0.3)),
            essay(e_decided, (s.cy.id, 0.99)),
            essay(e_new, (s.cy.id, 0.75)),
        ],
        course_code="SV3",
    )
    assert result.outcome is IngestOutcome.STORED
    assert result.stored == 2
    batch = w.batch(batch_id)
    assert (batch.deadline, batch.class_id, batch.course_code) == (deadline, s.cls.id, "ENG5")
    assert batch.status is BatchStatus.PENDING
    replaced = w.association(e_pending)
    assert (replaced.suggested_student_id, replaced.confidence_score) == (s.bo.id, 0.3)
    assert replaced.updated_at == START + timedelta(hours=3)
    decided = w.association(e_decided)
    assert decided.validation_status is ValidationStatus.REJECTED
    assert decided.suggested_student_id == s.ann.id  # a decided essay keeps its suggestion
    added = w.association(e_new)
    assert (added.batch_id, added.class_id, added.suggested_student_id) == (
        batch_id,
        s.cls.id,
        s.cy.id,
    )
    assert len(w.notifier.sent) == notes  # only the first store notifies


async def test_a_replacement_without_a_usable_suggestion_clears_it(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.9)))
    await w.ingest(batch_id, s.cls.id, [essay(e, (uuid4(), 0.9))])
    a = w.association(e)
    assert (a.suggested_student_id, a.confidence_score, a.match_reasons) == (None, None, ())


async def test_messages_for_a_finalized_batch_are_ignored(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.9)))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e, True)))
    before = (dict(w.store.tables.associations), len(w.outbox.messages()))
    result = await w.ingest(batch_id, s.cls.id, [essay(e, (s.bo.id, 1.0)), essay(uuid4())])
    assert result.outcome is IngestOutcome.BATCH_FINALIZED
    assert result.ignored_essays == 2
    assert (dict(w.store.tables.associations), len(w.outbox.messages())) == before


async def test_essays_of_another_batch_are_ignored_and_counted(s: Setup) -> None:
    w = s.w
    shared = uuid4()
    first = await pending_batch(s, (shared, (s.ann.id, 0.9)))
    second, own = uuid4(), uuid4()
    result = await w.ingest(second, s.cls.id, [essay(shared, (s.bo.id, 1.0)), essay(own)])
    assert result.outcome is IngestOutcome.STORED
    assert (result.stored, result.ignored_essays) == (1, 1)
    a = w.association(shared)
    assert (a.batch_id, a.suggested_student_id) == (first, s.ann.id)
    assert w.association(own).batch_id == second


async def test_an_empty_batch_is_finalized_at_once(s: Setup) -> None:
    w = s.w
    batch_id = uuid4()
    result = await w.ingest(batch_id, s.cls.id, [], course_code="SV2")
    assert result.outcome is IngestOutcome.FINALIZED_EMPTY
    batch = w.batch(batch_id)
    assert batch.status is BatchStatus.FINALIZED
    assert batch.timeout_triggered is False
    [event] = w.confirmed_events(batch_id)
    assert event["course_code"] == "SV2"
    assert event["associations"] == []
    assert event["timeout_triggered"] is False
    assert event["validation_summary"]["total_associations"] == 0
    assert w.notifier.sent[-1].notification_type == "student_associations_confirmed"
    assert w.notifier.sent[-1].payload["confirmed_count"] == 0


async def test_a_batch_whose_every_essay_belongs_elsewhere_is_finalized_empty(s: Setup) -> None:
    w = s.w
    shared = uuid4()
    await pending_batch(s, (shared, None))
    batch_id = uuid4()
    result = await w.ingest(batch_id, s.cls.id, [essay(shared)])
    assert result.outcome is IngestOutcome.FINALIZED_EMPTY
    assert result.ignored_essays == 1
    assert len(w.confirmed_events(batch_id)) == 1


async def test_an_unknown_class_writes_nothing(s: Setup) -> None:
    w = s.w
    before = (len(w.outbox.messages()), dict(w.store.tables.batches), set(w.store.tables.inbox))
    result = await w.ingest(uuid4(), uuid4(), [essay(uuid4())], message_id="m-x")
    assert result.outcome is IngestOutcome.UNKNOWN_CLASS
    after = (len(w.outbox.messages()), dict(w.store.tables.batches), set(w.store.tables.inbox))
    assert after == before


async def test_ingest_events_carry_the_messages_correlation_id(s: Setup) -> None:
    w = s.w
    from class_core.matching import SuggestionsMessage
    from class_core.use_cases.matching import ingest_suggestions

    correlation = uuid4()
    await ingest_suggestions(
        w.rt, SuggestionsMessage("m", correlation, uuid4(), s.cls.id, "ENG5", ())
    )
    assert {e["correlation_id"] for e in w.envelopes()[-2:]} == {str(correlation)}


# ============================================================================= confirm


async def test_confirm_suggested_other_member_and_reject(s: Setup) -> None:
    w = s.w
    e1, e2, e3 = uuid4(), uuid4(), uuid4()
    batch_id = await pending_batch(
        s, (e1, (s.ann.id, 0.9)), (e2, (s.ann.id, 0.5)), (e3, (s.bo.id, 0.8))
    )
    w.clock.advance(hours=1)
    result = await confirm_associations(
        w.rt, w.ctx(), batch_id, items((e1, True), (e2, True, s.cy.id))
    )
    assert (result.status, result.associations_confirmed) == (BatchStatus.PENDING, 2)
    assert (result.associations_rejected, result.pending) == (0, 1)
    a1, a2 = w.association(e1), w.association(e2)
    assert (a1.student_id, a1.suggested_student_id) == (s.ann.id, s.ann.id)
    assert (a2.student_id, a2.suggested_student_id) == (s.cy.id, s.ann.id)
    for a in (a1, a2):
        assert a.validation_status is ValidationStatus.CONFIRMED
        assert a.validation_method is ValidationMethod.HUMAN
        assert (a.validated_by, a.validated_at) == (OWNER, START + timedelta(hours=1))
    assert w.confirmed_events(batch_id) == []

    ctx = w.ctx()
    result = await confirm_associations(w.rt, ctx, batch_id, items((e3, False)))
    assert (result.status, result.associations_confirmed) == (BatchStatus.FINALIZED, 2)
    assert (result.associations_rejected, result.pending) == (1, 0)
    a3 = w.association(e3)
    assert (a3.validation_status, a3.student_id, a3.suggested_student_id) == (
        ValidationStatus.REJECTED,
        None,
        s.bo.id,
    )
    batch = w.batch(batch_id)
    assert batch.status is BatchStatus.FINALIZED
    assert batch.finalized_at == START + timedelta(hours=1)

    [env] = [
        e for e in w.envelopes(ASSOCIATIONS_CONFIRMED) if e["data"]["batch_id"] == str(batch_id)
    ]
    assert env["correlation_id"] == str(ctx.correlation_id)
    data = env["data"]
    assert data["timeout_triggered"] is False
    by_essay = {a["essay_id"]: a for a in data["associations"]}
    assert by_essay[str(e1)]["confidence_score"] == 0.9  # chosen == suggested
    assert by_essay[str(e2)]["confidence_score"] == 0.0  # another student chosen
    assert by_essay[str(e3)] == {
        "essay_id": str(e3),
        "student_id": None,
        "confidence_score": 0.0,
        "validation_method": "human",
        "validated_by": OWNER,
        "validated_at": (START + timedelta(hours=1)).isoformat(),
        "suggested_student_id": str(s.bo.id),  # the learning signal (§11)
        "suggested_confidence": w.association(e3).confidence_score,
    }
    assert by_essay[str(e2)]["suggested_student_id"] == str(w.association(e2).suggested_student_id)
    assert data["validation_summary"]["total_associations"] == 3
    assert data["validation_summary"]["confirmed"] == 2
    assert data["validation_summary"]["rejected"] == 1
    note = w.notifier.sent[-1]
    assert note.notification_type == "student_associations_confirmed"
    assert (note.payload["confirmed_count"], note.payload["rejected_count"]) == (2, 1)


async def test_a_new_decision_replaces_an_earlier_one_until_finalization(s: Setup) -> None:
    w = s.w
    e1, e2 = uuid4(), uuid4()
    batch_id = await pending_batch(s, (e1, (s.ann.id, 0.9)), (e2, None))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e1, False)))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e1, True, s.bo.id)))
    a = w.association(e1)
    assert (a.validation_status, a.student_id) == (ValidationStatus.CONFIRMED, s.bo.id)


async def test_confirmations_are_accepted_after_the_deadline_before_the_sweep(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.2)))
    w.clock.advance(hours=100)
    result = await confirm_associations(w.rt, w.ctx(), batch_id, items((e, True)))
    assert result.status is BatchStatus.FINALIZED
    assert w.association(e).validation_method is ValidationMethod.HUMAN
    assert await expire_due_batches(w.rt) == []


async def test_retry_after_finalization_answers_the_final_counts(s: Setup) -> None:
    w = s.w
    e1, e2 = uuid4(), uuid4()
    batch_id = await pending_batch(s, (e1, (s.ann.id, 0.9)), (e2, (s.bo.id, 0.9)))
    request = items((e1, True), (e2, True, s.cy.id))
    first = await confirm_associations(w.rt, w.ctx(), batch_id, request)
    outbox = len(w.outbox.messages())
    stored = dict(w.store.tables.associations)
    w.clock.advance(hours=1)
    again = await confirm_associations(w.rt, w.ctx(), batch_id, request)
    assert again == first
    partial = await confirm_associations(w.rt, w.ctx(), batch_id, items((e2, True, s.cy.id)))
    assert partial == first
    assert len(w.outbox.messages()) == outbox
    assert dict(w.store.tables.associations) == stored
    assert len(w.confirmed_events(batch_id)) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda s, e1, e2: items((e1, False)),
        lambda s, e1, e2: items((e1, True, s.bo.id)),
        lambda s, e1, e2: items((e2, True)),
        lambda s, e1, e2: items((e1, True), (e2, True, s.ann.id)),
    ],
)
async def test_a_different_request_after_finalization_is_a_conflict(
    s: Setup, change: Callable[[Setup, UUID, UUID], list[ConfirmItem]]
) -> None:
    w = s.w
    e1, e2 = uuid4(), uuid4()
    batch_id = await pending_batch(s, (e1, (s.ann.id, 0.9)), (e2, (s.bo.id, 0.9)))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e1, True), (e2, False)))
    stored = dict(w.store.tables.associations)
    with pytest.raises(BatchFinalizedError) as info:
        await confirm_associations(w.rt, w.ctx(), batch_id, change(s, e1, e2))
    assert info.value.code == "BATCH_FINALIZED"
    assert dict(w.store.tables.associations) == stored


async def test_confirm_errors_name_the_field_and_apply_nothing(s: Setup) -> None:
    w = s.w
    assert s.outsider is not None
    e1, e2, e3 = uuid4(), uuid4(), uuid4()
    batch_id = await pending_batch(s, (e1, (s.ann.id, 0.9)), (e2, None), (e3, (s.bo.id, 0.5)))
    stored = dict(w.store.tables.associations)
    ctx = w.ctx()

    async def refused(request: list[ConfirmItem]) -> ValidationError:
        with pytest.raises(ValidationError) as info:
            await confirm_associations(w.rt, ctx, batch_id, request)
        assert dict(w.store.tables.associations) == stored
        return info.value

    err = await refused([])
    assert [e.field for e in err.errors] == ["associations"]

    err = await refused(items((e1, True), (e3, False), (e1, False)))
    assert [e.field for e in err.errors] == ["associations[2].essay_id"]

    err = await refused(items((e1, True), (uuid4(), True)))
    assert [e.field for e in err.errors] == ["associations[1].essay_id"]

    err = await refused(items((e1, True), (e2, True)))  # nothing suggested, nothing given
    assert err.code == "VALIDATION_ERROR"
    assert [e.field for e in err.errors] == ["associations[1].student_id"]

    err = await refused(items((e1, True), (e3, True, s.outsider.id)))
    assert isinstance(err, StudentNotInClassError)
    assert err.code == "STUDENT_NOT_IN_CLASS"
    assert [e.field for e in err.errors] == ["associations[1].student_id"]

    err = await refused(items((e1, True, uuid4())))
    assert err.code == "STUDENT_NOT_IN_CLASS"

    foreign = await w.new_class("theirs", owner=OTHER_OWNER)
    theirs = await w.new_student("Their", "Kid", [foreign.id], owner=OTHER_OWNER)
    err = await refused(items((e1, True, theirs.id)))
    assert err.code == "STUDENT_NOT_IN_CLASS"
    assert w.confirmed_events(batch_id) == []


async def test_the_placeholder_is_not_a_valid_confirmation_student(s: Setup) -> None:
    w = s.w
    await pending_batch(s, (uuid4(), None))
    w.clock.advance(hours=24)
    await expire_due_batches(w.rt)
    [placeholder] = w.placeholders()
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.9)))
    with pytest.raises(StudentNotInClassError):
        await confirm_associations(w.rt, w.ctx(), batch_id, items((e, True, placeholder.id)))
    result = await confirm_associations(w.rt, w.ctx(), batch_id, items((e, False)))
    assert result.associations_rejected == 1


async def test_a_student_removed_from_the_class_cannot_be_chosen(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.9)))
    await update_student(w.rt, w.ctx(), s.bo.id, UpdateStudent(remove_class_ids=[s.cls.id]))
    with pytest.raises(StudentNotInClassError):
        await confirm_associations(w.rt, w.ctx(), batch_id, items((e, True, s.bo.id)))


async def test_another_owners_or_unknown_batch_is_not_found(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.9)))
    with pytest.raises(NotFoundError):
        await confirm_associations(w.rt, w.ctx(OTHER_OWNER), batch_id, items((e, True)))
    with pytest.raises(NotFoundError):
        await confirm_associations(w.rt, w.ctx(), uuid4(), items((e, True)))
    with pytest.raises(NotFoundError):
        await get_batch_associations(w.rt, w.ctx(OTHER_OWNER), batch_id)
    assert w.association(e).is_pending


# ============================================================================= timeout


async def test_sweep_applies_the_timeout_rule(s: Setup) -> None:
    w = s.w
    e_keep, e_low, e_gone, e_none, e_human = (uuid4() for _ in range(5))
    batch_id = await pending_batch(
        s,
        (e_keep, (s.ann.id, 0.7)),
        (e_low, (s.bo.id, 0.69)),
        (e_gone, (s.cy.id, 0.95)),
        (e_none, None),
        (e_human, (s.ann.id, 0.99)),
    )
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e_human, True, s.bo.id)))
    await update_student(w.rt, w.ctx(), s.cy.id, UpdateStudent(remove_class_ids=[s.cls.id]))
    deadline = w.batch(batch_id).deadline

    w.clock.set(deadline - timedelta(seconds=1))
    assert await expire_due_batches(w.rt) == []
    assert w.batch(batch_id).status is BatchStatus.PENDING

    w.clock.set(deadline)
    notes = len(w.notifier.sent)
    [done] = await expire_due_batches(w.rt)
    assert (done.batch_id, done.class_id, done.auto_confirmed, done.unknown_assigned) == (
        batch_id,
        s.cls.id,
        1,
        3,
    )
    [placeholder] = w.placeholders()
    expected = {
        e_keep: s.ann.id,
        e_low: placeholder.id,
        e_gone: placeholder.id,
        e_none: placeholder.id,
    }
    for e, student in expected.items():
        a = w.association(e)
        assert a.student_id == student
        assert a.validation_status is ValidationStatus.TIMEOUT_CONFIRMED
        assert a.validation_method is ValidationMethod.TIMEOUT
        assert (a.validated_by, a.validated_at) == (SYSTEM_TIMEOUT_USER, deadline)
    human = w.association(e_human)
    assert (human.student_id, human.validation_method, human.validated_by) == (
        s.bo.id,
        ValidationMethod.HUMAN,
        OWNER,
    )
    assert w.association(e_low).suggested_student_id == s.bo.id  # suggestion untouched

    batch = w.batch(batch_id)
    assert (batch.status, batch.timeout_triggered) == (BatchStatus.FINALIZED, True)
    [event] = w.confirmed_events(batch_id)
    assert event["timeout_triggered"] is True
    scores = {a["essay_id"]: a["confidence_score"] for a in event["associations"]}
    assert scores == {
        str(e_keep): 0.7,
        str(e_low): 0.0,
        str(e_gone): 0.0,
        str(e_none): 0.0,
        str(e_human): 0.0,
    }
    assert event["validation_summary"]["confirmed"] == 5
    assert event["validation_summary"]["rejected"] == 0
    assert event["validation_summary"]["total_associations"] == 5

    [note] = w.notifier.sent[notes:]  # no notification for the placeholder
    assert note.notification_type == "validation_timeout_processed"
    assert note.priority == "immediate"
    assert note.payload["auto_confirmed_count"] == 1
    assert note.payload["unknown_assigned_count"] == 3
    assert note.payload["timeout_hours"] == 24


async def test_the_placeholder_is_created_once_per_class(s: Setup) -> None:
    w = s.w
    first = await pending_batch(s, (uuid4(), None))
    w.clock.advance(hours=1)
    second = await pending_batch(s, (uuid4(), (s.ann.id, 0.1)))
    w.clock.advance(hours=30)
    done = await expire_due_batches(w.rt)
    assert {d.batch_id for d in done} == {first, second}
    [placeholder] = w.placeholders()
    assert (placeholder.first_name, placeholder.last_name) == ("UNKNOWN", "STUDENT")
    assert placeholder.email == f"unknown.{s.cls.id}@huleedu.system"
    assert placeholder.owner_id == OWNER
    assert (s.cls.id, placeholder.id) in w.store.tables.memberships
    created = [d for d in w.data(STUDENT_CREATED) if d["student_id"] == str(placeholder.id)]
    assert len(created) == 1
    assert created[0]["student_email"] == placeholder.email
    assert created[0]["class_ids"] == [str(s.cls.id)]
    third = await pending_batch(s, (uuid4(), None))
    await finalize_batch(w.rt, third)
    assert len(w.placeholders()) == 1
    other = await w.new_class("9B")
    await w.ingest(uuid4(), other.id, [essay(uuid4())])
    w.clock.advance(hours=25)
    await expire_due_batches(w.rt)
    assert len(w.placeholders()) == 2


async def test_no_placeholder_when_every_suggestion_is_kept(s: Setup) -> None:
    w = s.w
    await pending_batch(s, (uuid4(), (s.ann.id, 0.9)))
    w.clock.advance(hours=24)
    [done] = await expire_due_batches(w.rt)
    assert (done.auto_confirmed, done.unknown_assigned) == (1, 0)
    assert w.placeholders() == []
    assert w.data(STUDENT_CREATED)[-1]["first_name"] != "UNKNOWN"


async def test_each_sweep_finalization_gets_its_own_correlation_id(s: Setup) -> None:
    w = s.w
    b1 = await pending_batch(s, (uuid4(), None))
    b2 = await pending_batch(s, (uuid4(), None))
    w.clock.advance(hours=24)
    await expire_due_batches(w.rt, per_transaction=1)
    ids = {e["data"]["batch_id"]: e["correlation_id"] for e in w.envelopes(ASSOCIATIONS_CONFIRMED)}
    assert ids[str(b1)] != ids[str(b2)]
    notes = [e for e in w.envelopes(TEACHER_NOTIFICATION)][-2:]
    assert {n["correlation_id"] for n in notes} == set(ids.values())
    assert await expire_due_batches(w.rt) == []


async def test_finalize_batch_applies_the_timeout_rule_now(s: Setup) -> None:
    w = s.w
    e = uuid4()
    batch_id = await pending_batch(s, (e, (s.ann.id, 0.95)))
    done = await finalize_batch(w.rt, batch_id)
    assert done.auto_confirmed == 1
    assert w.association(e).validated_at == START
    [event] = w.confirmed_events(batch_id)
    assert event["timeout_triggered"] is True
    with pytest.raises(BatchFinalizedError):
        await finalize_batch(w.rt, batch_id)
    with pytest.raises(NotFoundError):
        await finalize_batch(w.rt, uuid4())
    assert len(w.confirmed_events(batch_id)) == 1


async def test_threshold_comes_from_the_policy() -> None:
    w = World(threshold=0.95)
    cls = await w.new_class()
    ann = await w.new_student(classes=[cls.id])
    e = uuid4()
    await w.ingest(uuid4(), cls.id, [essay(e, (ann.id, 0.94))])
    w.clock.advance(hours=24)
    [done] = await expire_due_batches(w.rt)
    assert done.unknown_assigned == 1
    assert w.association(e).student_id != ann.id


# ============================================================================= reads


async def test_batch_view_names_and_order(s: Setup) -> None:
    w = s.w
    e1, e2, e3 = sorted([uuid4(), uuid4(), uuid4()])
    batch_id = await pending_batch(s, (e2, (s.ann.id, 0.9)), (e1, (s.bo.id, 0.8)), (e3, None))
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e1, True, s.cy.id)))
    view = await get_batch_associations(w.rt, w.ctx(), batch_id)
    assert view.batch.batch_id == batch_id
    assert [a.essay_id for a in view.associations] == [e1, e2, e3]
    names = [view.student_name(a) for a in view.associations]
    assert names == ["Cy Ceder", "Ann Alm", None]


async def test_internal_reads_of_decided_students(s: Setup) -> None:
    w = s.w
    e1, e2, e3 = uuid4(), uuid4(), uuid4()
    batch_id = await pending_batch(s, (e1, (s.ann.id, 0.9)), (e2, (s.bo.id, 0.9)), (e3, None))
    assert await decided_students(w.rt, batch_id) == []
    await confirm_associations(w.rt, w.ctx(), batch_id, items((e1, True), (e2, False)))
    decided = await decided_students(w.rt, batch_id)
    assert [(d.essay_id, d.student.id) for d in decided] == [(e1, s.ann.id)]
    assert (await decided_student_for_essay(w.rt, e1)).student.first_name == "Ann"
    for e in (e2, e3, uuid4()):
        with pytest.raises(NotFoundError):
            await decided_student_for_essay(w.rt, e)
    assert await decided_students(w.rt, uuid4()) == []


async def test_batch_class_info_answers_every_id(s: Setup) -> None:
    w = s.w
    batch_id = await pending_batch(s, (uuid4(), None))
    unknown = uuid4()
    info = await batch_class_info(w.rt, [batch_id, unknown, batch_id])
    assert info == {batch_id: (s.cls.id, "9A"), unknown: None}


async def test_list_pending_associations_of_every_owner(s: Setup) -> None:
    w = s.w
    e1 = uuid4()
    await pending_batch(s, (e1, None))
    theirs = await w.new_class(owner=OTHER_OWNER)
    e2 = uuid4()
    w.clock.advance(seconds=1)
    await w.ingest(uuid4(), theirs.id, [essay(e2)])
    pending = await list_pending_associations(w.rt)
    assert [a.essay_id for a in pending] == [e1, e2]
    assert [a.essay_id for a in await list_pending_associations(w.rt, limit=1)] == [e1]
