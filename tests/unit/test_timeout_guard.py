"""The §11 timeout guard as a pure function of a batch's associations (``timeout_outcome``),
the runner-up stored at ingest (``best_and_runner_up``) and the review's ``conflict`` flag."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from class_core.matching import (
    Suggestion,
    best_and_runner_up,
    clears_margin,
    conflicting_essays,
    keeps_suggestion,
    timeout_outcome,
)
from class_core.model import Association, ValidationMethod, ValidationStatus

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
BATCH, CLASS = UUID(int=10_000), UUID(int=10_001)
STUDENTS = [UUID(int=i) for i in range(1, 6)]  # 1..4 members, 5 not a member
MEMBERS = set(STUDENTS[:4])
THRESHOLD = 0.7


def essay(
    n: int,
    suggested: UUID | None,
    confidence: float | None,
    runner_up: float | None = None,
    status: ValidationStatus = ValidationStatus.PENDING,
    chosen: UUID | None = None,
) -> Association:
    a = Association(
        UUID(int=100 + n),
        BATCH,
        CLASS,
        suggested,
        confidence,
        (),
        AT,
        AT,
        runner_up_confidence=runner_up,
    )
    if status is not ValidationStatus.PENDING:
        a.decide(status, chosen, ValidationMethod.HUMAN, "t-1", AT)
    return a


def kept(outcome_keep: tuple[Association, ...]) -> set[int]:
    return {a.essay_id.int - 100 for a in outcome_keep}


S1, S2, S3, OUTSIDER = STUDENTS[0], STUDENTS[1], STUDENTS[2], STUDENTS[4]


# ----------------------------------------------------------------------------- examples


def test_margin_rule_with_tolerance() -> None:
    assert clears_margin(essay(1, S1, 0.71, runner_up=None), 0.5)
    assert clears_margin(essay(1, S1, 0.8, runner_up=0.7), 0.1)  # 0.1 - 1e-9 tolerance
    assert not clears_margin(essay(1, S1, 0.71, runner_up=0.70), 0.05)
    assert clears_margin(essay(1, S1, 0.71, runner_up=0.71), 0.0)  # a tie passes margin 0


def test_a_close_runner_up_sends_the_essay_to_unknown() -> None:
    out = timeout_outcome([essay(1, S1, 0.71, runner_up=0.70)], MEMBERS, THRESHOLD, 0.05)
    assert (kept(out.keep), len(out.unknown), out.ambiguous) == (set(), 1, 1)
    same = timeout_outcome([essay(1, S1, 0.71, runner_up=0.70)], MEMBERS, THRESHOLD, 0.0)
    assert (kept(same.keep), same.ambiguous) == ({1}, 0)


def test_two_essays_for_one_student_both_go_to_unknown() -> None:
    batch = [essay(1, S1, 0.95), essay(2, S1, 0.75), essay(3, S2, 0.9)]
    out = timeout_outcome(batch, MEMBERS, THRESHOLD, 0.0)
    assert kept(out.keep) == {3}
    assert {a.essay_id.int - 100 for a in out.unknown} == {1, 2}
    assert out.ambiguous == 2


def test_a_below_threshold_rival_does_not_block() -> None:
    # essay 2 fails Part I (0.5 < 0.7): it claims nothing and is not ambiguous
    out = timeout_outcome([essay(1, S1, 0.95), essay(2, S1, 0.5)], MEMBERS, THRESHOLD, 0.0)
    assert (kept(out.keep), out.ambiguous) == ({1}, 0)


def test_a_student_chosen_by_a_human_is_not_given_again() -> None:
    batch = [
        essay(1, S1, 0.99),
        essay(2, S2, 0.4, status=ValidationStatus.CONFIRMED, chosen=S1),
        essay(3, S3, 0.9, status=ValidationStatus.REJECTED),
        essay(4, S3, 0.9),  # a rejected essay suggesting S3 does not block it
    ]
    out = timeout_outcome(batch, MEMBERS, THRESHOLD, 0.0)
    assert kept(out.keep) == {4}
    assert (len(out.unknown), out.ambiguous) == (1, 1)


def test_part_one_failures_are_not_ambiguous() -> None:
    batch = [essay(1, None, None), essay(2, OUTSIDER, 0.99), essay(3, S1, 0.69)]
    out = timeout_outcome(batch, MEMBERS, THRESHOLD, 0.0)
    assert (kept(out.keep), len(out.unknown), out.ambiguous) == (set(), 3, 0)


def test_raising_the_margin_can_resolve_a_collision() -> None:
    """The contract's rule (b) counts only essays that pass Part I and (a): a higher margin
    can take one claimant out and leave the other alone, which is then kept. So "raising the
    margin never keeps more" holds per essay only for essays that had no rival (see the
    property below), not for the batch's total; docs/matching.md shows this example."""
    batch = [essay(1, S1, 0.9, runner_up=0.85), essay(2, S1, 0.9, runner_up=0.5)]
    assert kept(timeout_outcome(batch, MEMBERS, THRESHOLD, 0.0).keep) == set()
    assert kept(timeout_outcome(batch, MEMBERS, THRESHOLD, 0.1).keep) == {2}


def test_runner_up_is_the_best_other_member() -> None:
    suggestions = [
        Suggestion(S1, 0.9),
        Suggestion(S2, 0.6),
        Suggestion(OUTSIDER, 0.85),  # not a member
        Suggestion(S3, 1.5),  # invalid
        Suggestion(S1, 0.8),  # the same student again: no rival
    ]
    best, runner_up = best_and_runner_up(suggestions, MEMBERS)
    assert best == Suggestion(S1, 0.9)
    assert runner_up == 0.6
    assert best_and_runner_up([Suggestion(S1, 0.9)], MEMBERS) == (Suggestion(S1, 0.9), None)
    assert best_and_runner_up([Suggestion(OUTSIDER, 0.9)], MEMBERS) == (None, None)


def test_conflict_flags() -> None:
    placeholder = UUID(int=999)
    batch = [
        essay(1, S1, 0.9),
        essay(2, S1, 0.8),
        essay(3, S2, 0.9, status=ValidationStatus.CONFIRMED, chosen=S3),
        essay(4, S3, 0.9),
        essay(5, None, None, status=ValidationStatus.TIMEOUT_CONFIRMED, chosen=placeholder),
        essay(6, None, None, status=ValidationStatus.TIMEOUT_CONFIRMED, chosen=placeholder),
    ]
    found = {e.int - 100 for e in conflicting_essays(batch, {placeholder})}
    assert found == {1, 2, 3, 4}


# ----------------------------------------------------------------------------- properties

confidences = st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.69, 0.7, 0.71, 0.75, 0.9, 1.0]))
statuses = st.sampled_from(
    [ValidationStatus.PENDING] * 3 + [ValidationStatus.CONFIRMED, ValidationStatus.REJECTED]
)


@st.composite
def batches(draw: st.DrawFn) -> list[Association]:
    n = draw(st.integers(0, 8))
    out = []
    for i in range(n):
        suggested = draw(st.one_of(st.none(), st.sampled_from(STUDENTS)))
        confidence = draw(confidences) if suggested is not None else None
        runner_up = draw(confidences) if suggested is not None else None
        status = draw(statuses)
        chosen = None
        if status is ValidationStatus.CONFIRMED:
            chosen = draw(st.sampled_from(STUDENTS[:4]))
        out.append(essay(i, suggested, confidence, runner_up, status, chosen))
    return out


margins = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3, 1.0])


@settings(max_examples=400, deadline=None)
@given(batch=batches(), margin=margins, threshold=st.sampled_from([0.0, 0.7, 1.0]))
def test_guard_invariants(batch: list[Association], margin: float, threshold: float) -> None:
    out = timeout_outcome(batch, MEMBERS, threshold, margin)
    pending = [a for a in batch if a.is_pending]
    # every pending essay is settled exactly once
    assert sorted(a.essay_id for a in (*out.keep, *out.unknown)) == sorted(
        a.essay_id for a in pending
    )
    kept_students = [a.suggested_student_id for a in out.keep]
    # no real student gets two essays by timeout, nor one a human already chose
    assert len(kept_students) == len(set(kept_students))
    human = {a.student_id for a in batch if a.validation_status is ValidationStatus.CONFIRMED}
    assert not human & set(kept_students)
    # a kept essay passes Part I and the margin; ambiguous counts the guard's refusals only
    for a in out.keep:
        assert keeps_suggestion(a, threshold, MEMBERS)
        assert clears_margin(a, margin)
    assert out.ambiguous == sum(1 for a in out.unknown if keeps_suggestion(a, threshold, MEMBERS))


@settings(max_examples=400, deadline=None)
@given(batch=batches(), low=margins, high=margins)
def test_raising_the_margin_never_keeps_more(
    batch: list[Association], low: float, high: float
) -> None:
    """With a higher margin, an essay is kept only if it was kept at the lower margin or its
    student had several claimants there (rule (b) resolved by the margin), and the essays that
    pass (a) never grow; with no essay sharing a suggested student, the kept set only shrinks."""
    low, high = min(low, high), max(low, high)
    at_low = timeout_outcome(batch, MEMBERS, THRESHOLD, low)
    at_high = timeout_outcome(batch, MEMBERS, THRESHOLD, high)
    passing_low = {a.essay_id for a in batch if clears_margin(a, low)}
    passing_high = {a.essay_id for a in batch if clears_margin(a, high)}
    assert passing_high <= passing_low
    low_kept = {a.essay_id for a in at_low.keep}
    claimants: dict[UUID | None, int] = {}
    for a in batch:
        if a.is_pending and keeps_suggestion(a, THRESHOLD, MEMBERS) and clears_margin(a, low):
            claimants[a.suggested_student_id] = claimants.get(a.suggested_student_id, 0) + 1
    for a in at_high.keep:
        assert a.essay_id in low_kept or claimants.get(a.suggested_student_id, 0) > 1
    suggested = [a.suggested_student_id for a in batch if a.is_pending and a.suggested_student_id]
    if len(suggested) == len(set(suggested)):
        assert {a.essay_id for a in at_high.keep} <= low_kept
        assert len(at_high.keep) <= len(at_low.keep)
