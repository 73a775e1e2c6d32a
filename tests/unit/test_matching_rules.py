"""Pure Phase-1 rules (contract §4): best suggestion, timeout decision, counts, the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from class_core.matching import (
    Suggestion,
    best_suggestion,
    confirmed_event,
    count,
    event_confidence,
    keeps_suggestion,
)
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    ValidationMethod,
    ValidationStatus,
)

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
A, B, C = uuid4(), uuid4(), uuid4()


def assoc(
    suggested: UUID | None = A,
    confidence: float | None = 0.8,
    status: ValidationStatus = ValidationStatus.PENDING,
    student: UUID | None = None,
) -> Association:
    a = Association(uuid4(), uuid4(), uuid4(), suggested, confidence, ("r",), AT, AT)
    if status is not ValidationStatus.PENDING:
        a.decide(status, student, ValidationMethod.HUMAN, "t-1", AT)
    return a


# ----------------------------------------------------------------------------- best_suggestion


def test_best_suggestion_takes_the_highest_member_even_when_unsorted() -> None:
    s = [Suggestion(A, 0.4), Suggestion(B, 0.9), Suggestion(C, 0.7)]
    assert best_suggestion(s, {A, B, C}) == Suggestion(B, 0.9)
    assert best_suggestion(s, {A, C}) == Suggestion(C, 0.7)
    assert best_suggestion(s, {A}) == Suggestion(A, 0.4)
    assert best_suggestion(s, set()) is None
    assert best_suggestion([], {A}) is None


def test_best_suggestion_first_wins_a_tie() -> None:
    assert best_suggestion([Suggestion(A, 0.5), Suggestion(B, 0.5)], {A, B}) == Suggestion(A, 0.5)


@pytest.mark.parametrize("bad", [1.01, -0.01, float("nan"), float("inf")])
def test_best_suggestion_drops_invalid_confidences(bad: float) -> None:
    s = [Suggestion(A, bad), Suggestion(B, 0.2)]
    assert best_suggestion(s, {A, B}) == Suggestion(B, 0.2)


@pytest.mark.parametrize("edge", [0.0, 1.0])
def test_best_suggestion_accepts_the_bounds(edge: float) -> None:
    assert best_suggestion([Suggestion(A, edge)], {A}) == Suggestion(A, edge)


ids = st.sampled_from([A, B, C, uuid4()])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(ids, st.floats(0, 1)), max_size=8),
    st.sets(st.sampled_from([A, B, C])),
)
def test_best_suggestion_is_a_maximum_over_members(
    raw: list[tuple[UUID, float]], members: set[UUID]
) -> None:
    suggestions = [Suggestion(s, c) for s, c in raw]
    best = best_suggestion(suggestions, members)
    eligible = [s for s in suggestions if s.student_id in members]
    if not eligible:
        assert best is None
    else:
        assert best is not None
        assert best.student_id in members
        assert best.confidence_score == max(s.confidence_score for s in eligible)
        assert best == next(s for s in eligible if s.confidence_score == best.confidence_score)


# ----------------------------------------------------------------------------- keeps_suggestion


@pytest.mark.parametrize(
    ("confidence", "kept"),
    [(0.7, True), (0.69, False), (0.6999999, False), (0.71, True), (1.0, True), (0.0, False)],
)
def test_timeout_threshold_is_inclusive(confidence: float, kept: bool) -> None:
    assert keeps_suggestion(assoc(A, confidence), 0.7, {A}) is kept


def test_timeout_needs_the_suggested_student_to_still_be_a_member() -> None:
    assert keeps_suggestion(assoc(A, 0.99), 0.7, {B}) is False


def test_timeout_without_a_suggestion_keeps_nothing() -> None:
    assert keeps_suggestion(assoc(None, None), 0.0, {A}) is False


def test_threshold_zero_keeps_every_member_suggestion() -> None:
    assert keeps_suggestion(assoc(A, 0.0), 0.0, {A}) is True


# ----------------------------------------------------------------------------- counts / event


def test_count_treats_timeout_confirmed_as_confirmed() -> None:
    items = [
        assoc(),
        assoc(status=ValidationStatus.CONFIRMED, student=A),
        assoc(status=ValidationStatus.TIMEOUT_CONFIRMED, student=A),
        assoc(status=ValidationStatus.TIMEOUT_CONFIRMED, student=B),
        assoc(status=ValidationStatus.REJECTED),
    ]
    c = count(items)
    assert (c.total, c.confirmed, c.rejected, c.pending) == (5, 3, 1, 1)
    assert (c.human_confirmed, c.timeout_confirmed) == (1, 2)


def test_event_confidence_is_the_suggestions_only_for_the_suggested_student() -> None:
    assert event_confidence(assoc(A, 0.8, ValidationStatus.CONFIRMED, A)) == 0.8
    assert event_confidence(assoc(A, 0.8, ValidationStatus.CONFIRMED, B)) == 0.0
    assert event_confidence(assoc(A, 0.8, ValidationStatus.REJECTED, None)) == 0.0
    assert event_confidence(assoc(None, None, ValidationStatus.CONFIRMED, B)) == 0.0
    assert event_confidence(assoc(A, 0.8)) == 0.0


def test_confirmed_event_lists_every_association_with_summary() -> None:
    batch = Batch(
        uuid4(), uuid4(), "t-1", "SV2", BatchStatus.FINALIZED, AT + timedelta(days=1), AT, AT
    )
    items = [
        assoc(A, 0.8, ValidationStatus.CONFIRMED, A),
        assoc(B, 0.3, ValidationStatus.TIMEOUT_CONFIRMED, C),
        assoc(C, 0.9, ValidationStatus.REJECTED, None),
    ]
    items[1].validation_method = ValidationMethod.TIMEOUT
    event = confirmed_event(batch, items, True, AT)
    assert (event.batch_id, event.class_id, event.course_code) == (
        batch.batch_id,
        batch.class_id,
        "SV2",
    )
    assert event.timeout_triggered is True
    assert event.timestamp == AT
    assert [a.essay_id for a in event.associations] == [a.essay_id for a in items]
    assert [a.student_id for a in event.associations] == [A, C, None]
    assert [a.confidence_score for a in event.associations] == [0.8, 0.0, 0.0]
    assert [a.validation_method for a in event.associations] == ["human", "timeout", "human"]
    assert event.validation_summary["total_associations"] == 3
    assert event.validation_summary["confirmed"] == 2
    assert event.validation_summary["rejected"] == 1
