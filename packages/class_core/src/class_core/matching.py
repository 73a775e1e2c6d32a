"""Phase-1 matching rules as pure functions (contract §4)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from attrs import frozen

from class_core.events import ConfirmedAssociation, StudentAssociationsConfirmedV1
from class_core.model import Association, Batch, ValidationStatus


@frozen
class Suggestion:
    """One candidate author of an essay, as the NLP service suggested it."""

    student_id: UUID
    confidence_score: float
    match_reasons: tuple[str, ...] = ()


@frozen
class EssayMatch:
    essay_id: UUID
    suggestions: tuple[Suggestion, ...] = ()


@frozen
class SuggestionsMessage:
    """A decoded ``BatchAuthorMatchesSuggestedV1``; ``message_id`` is its envelope event id."""

    message_id: str
    correlation_id: UUID
    batch_id: UUID
    class_id: UUID
    course_code: str
    matches: tuple[EssayMatch, ...]


def is_valid_confidence(value: float) -> bool:
    """A confidence is a finite number in 0..1 (NaN is not)."""
    return 0.0 <= value <= 1.0


def best_suggestion(
    suggestions: Iterable[Suggestion], members: Collection[UUID]
) -> Suggestion | None:
    """The highest-confidence suggestion whose student is a member (first wins a tie).

    A suggestion whose confidence is not a number in 0..1 is invalid and dropped (§4.1).
    """
    best: Suggestion | None = None
    for suggestion in suggestions:
        if not is_valid_confidence(suggestion.confidence_score):
            continue
        if suggestion.student_id not in members:
            continue
        if best is None or suggestion.confidence_score > best.confidence_score:
            best = suggestion
    return best


def apply_suggestions(
    batch: Batch,
    matches: Iterable[EssayMatch],
    existing: Mapping[UUID, Association],
    members: Collection[UUID],
    at: datetime,
) -> tuple[list[Association], list[Association], int]:
    """A suggestions message applied to a pending batch (contract §4.1): new associations for
    essays not seen before, changed suggestions of pending ones of this batch (a replay of the
    same suggestion changes nothing; decisions are never touched), and how many essays were
    ignored because another batch has them. Only the first match of an essay counts."""
    seen: set[UUID] = set()
    new: list[Association] = []
    changed: list[Association] = []
    ignored = 0
    for match in matches:
        if match.essay_id in seen:
            continue
        seen.add(match.essay_id)
        best = best_suggestion(match.suggestions, members)
        suggestion = (
            (best.student_id, best.confidence_score, best.match_reasons)
            if best
            else (None, None, ())
        )
        current = existing.get(match.essay_id)
        if current is None:
            new.append(
                Association(
                    essay_id=match.essay_id,
                    batch_id=batch.batch_id,
                    class_id=batch.class_id,
                    suggested_student_id=suggestion[0],
                    confidence_score=suggestion[1],
                    match_reasons=suggestion[2],
                    created_at=at,
                    updated_at=at,
                )
            )
        elif current.batch_id != batch.batch_id:
            ignored += 1
        elif current.is_pending:
            stored = (current.suggested_student_id, current.confidence_score, current.match_reasons)
            if suggestion == stored:
                continue
            (
                current.suggested_student_id,
                current.confidence_score,
                current.match_reasons,
            ) = suggestion
            current.updated_at = at
            changed.append(current)
    return new, changed, ignored


def keeps_suggestion(association: Association, threshold: float, members: Collection[UUID]) -> bool:
    """The timeout rule: keep the suggested student when confidence ≥ threshold and the
    student is still a member of the class; otherwise the UNKNOWN placeholder is chosen."""
    return (
        association.suggested_student_id is not None
        and association.confidence_score is not None
        and association.confidence_score >= threshold
        and association.suggested_student_id in members
    )


@frozen
class BatchCounts:
    total: int
    confirmed: int  # confirmed + timeout_confirmed
    rejected: int
    pending: int
    human_confirmed: int
    timeout_confirmed: int


def count(associations: Sequence[Association]) -> BatchCounts:
    statuses = [a.validation_status for a in associations]
    human = statuses.count(ValidationStatus.CONFIRMED)
    timeout = statuses.count(ValidationStatus.TIMEOUT_CONFIRMED)
    return BatchCounts(
        total=len(statuses),
        confirmed=human + timeout,
        rejected=statuses.count(ValidationStatus.REJECTED),
        pending=statuses.count(ValidationStatus.PENDING),
        human_confirmed=human,
        timeout_confirmed=timeout,
    )


def event_confidence(association: Association) -> float:
    """The suggestion's confidence when the chosen student is the suggested one, else 0.0."""
    if (
        association.student_id is not None
        and association.student_id == association.suggested_student_id
        and association.confidence_score is not None
    ):
        return association.confidence_score
    return 0.0


def confirmed_event(
    batch: Batch, associations: Sequence[Association], timeout_triggered: bool, at: datetime
) -> StudentAssociationsConfirmedV1:
    """The one ``StudentAssociationsConfirmedV1`` a batch's finalization publishes."""
    counts = count(associations)
    return StudentAssociationsConfirmedV1(
        batch_id=batch.batch_id,
        class_id=batch.class_id,
        course_code=batch.course_code,
        associations=tuple(
            ConfirmedAssociation(
                essay_id=a.essay_id,
                student_id=a.student_id,
                confidence_score=event_confidence(a),
                validation_method=a.validation_method.value if a.validation_method else None,
                validated_by=a.validated_by,
                validated_at=a.validated_at,
            )
            for a in associations
        ),
        timeout_triggered=timeout_triggered,
        validation_summary={
            "total_associations": counts.total,
            "confirmed": counts.confirmed,
            "rejected": counts.rejected,
            "human_confirmed": counts.human_confirmed,
            "timeout_confirmed": counts.timeout_confirmed,
        },
        timestamp=at,
    )
