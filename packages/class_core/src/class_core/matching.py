"""Phase-1 matching rules as pure functions (contract §4)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from attrs import frozen

# The module, not its names: ``model.Batch``'s methods apply these rules, so the two modules
# import each other and each reads the other's names only when called.
from class_core import model
from class_core.events import ConfirmedAssociation, StudentAssociationsConfirmedV1

if TYPE_CHECKING:
    from class_core.model import Association, Batch


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
    return best_and_runner_up(suggestions, members)[0]


def best_and_runner_up(
    suggestions: Iterable[Suggestion], members: Collection[UUID]
) -> tuple[Suggestion | None, float | None]:
    """:func:`best_suggestion` and the runner-up's confidence (contract §11): the best
    confidence among the essay's other valid suggestions whose student is a member of the
    class and is not the best one's student (the same student named twice is no rival), or
    ``None`` when there is no such suggestion."""
    valid = [
        s
        for s in suggestions
        if is_valid_confidence(s.confidence_score) and s.student_id in members
    ]
    best: Suggestion | None = None
    for suggestion in valid:
        if best is None or suggestion.confidence_score > best.confidence_score:
            best = suggestion
    if best is None:
        return None, None
    rivals = [s.confidence_score for s in valid if s.student_id != best.student_id]
    return best, (max(rivals) if rivals else None)


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
        best, runner_up = best_and_runner_up(match.suggestions, members)
        suggestion = (
            (best.student_id, best.confidence_score, best.match_reasons, runner_up)
            if best
            else (None, None, (), None)
        )
        current = existing.get(match.essay_id)
        if current is None:
            new.append(
                model.Association(
                    essay_id=match.essay_id,
                    batch_id=batch.batch_id,
                    class_id=batch.class_id,
                    suggested_student_id=suggestion[0],
                    confidence_score=suggestion[1],
                    match_reasons=suggestion[2],
                    created_at=at,
                    updated_at=at,
                    runner_up_confidence=suggestion[3],
                )
            )
        elif current.batch_id != batch.batch_id:
            ignored += 1
        elif current.is_pending:
            stored = (
                current.suggested_student_id,
                current.confidence_score,
                current.match_reasons,
                current.runner_up_confidence,
            )
            if suggestion == stored:
                continue
            (
                current.suggested_student_id,
                current.confidence_score,
                current.match_reasons,
                current.runner_up_confidence,
            ) = suggestion
            current.updated_at = at
            changed.append(current)
    return new, changed, ignored


def keeps_suggestion(association: Association, threshold: float, members: Collection[UUID]) -> bool:
    """Part I's timeout rule (§4.3): the suggested student has confidence ≥ threshold and is
    still a member of the class (otherwise the UNKNOWN placeholder is chosen)."""
    return (
        association.suggested_student_id is not None
        and association.confidence_score is not None
        and association.confidence_score >= threshold
        and association.suggested_student_id in members
    )


MARGIN_TOLERANCE = 1e-9


def clears_margin(association: Association, margin: float) -> bool:
    """Guard (a) of §11: no runner-up, or the suggestion beats it by at least ``margin``."""
    runner_up = association.runner_up_confidence
    if runner_up is None:
        return True
    confidence = association.confidence_score if association.confidence_score is not None else 0.0
    return confidence - runner_up >= margin - MARGIN_TOLERANCE


@frozen
class TimeoutOutcome:
    """How the timeout settles a batch's pending essays (contract §4.3 with the §11 guard).

    ``keep``: pending essays that keep their suggested student; ``unknown``: those that go to
    the UNKNOWN student; ``ambiguous``: how many of ``unknown`` passed Part I's rule and went
    there only because of the guard (margin, or one real student per essay)."""

    keep: tuple[Association, ...]
    unknown: tuple[Association, ...]
    ambiguous: int


def timeout_outcome(
    associations: Sequence[Association],
    members: Collection[UUID],
    threshold: float,
    margin: float,
) -> TimeoutOutcome:
    """The timeout rule of one batch, a pure function of its associations (contract §4.3 and
    §11): a pending essay keeps its suggested student only when Part I's rule holds, the
    suggestion clears the margin, the student is not the chosen student of a ``confirmed``
    essay of the batch, and no other pending essay of the batch passes Part I and the margin
    for the same student (when several do, all of them go to UNKNOWN). So no batch finalized
    by timeout assigns one real student to two essays by timeout, nor one a human chose."""
    pending = [a for a in associations if a.is_pending]
    chosen_by_human = {
        a.student_id
        for a in associations
        if a.validation_status is model.ValidationStatus.CONFIRMED and a.student_id is not None
    }
    passing = [
        a for a in pending if keeps_suggestion(a, threshold, members) and clears_margin(a, margin)
    ]
    claims = Counter(a.suggested_student_id for a in passing)
    kept_ids = {
        a.essay_id
        for a in passing
        if claims[a.suggested_student_id] == 1 and a.suggested_student_id not in chosen_by_human
    }
    keep = tuple(a for a in pending if a.essay_id in kept_ids)
    unknown = tuple(a for a in pending if a.essay_id not in kept_ids)
    ambiguous = sum(1 for a in unknown if keeps_suggestion(a, threshold, members))
    return TimeoutOutcome(keep, unknown, ambiguous)


def conflicting_essays(
    associations: Sequence[Association], placeholders: Collection[UUID] = ()
) -> set[UUID]:
    """Essays flagged ``conflict`` (§11): another essay of the batch has the same suggested
    or chosen real student (the placeholder never conflicts)."""
    essays_of: dict[UUID, set[UUID]] = {}
    for a in associations:
        for sid in {a.suggested_student_id, a.student_id}:
            if sid is not None and sid not in placeholders:
                essays_of.setdefault(sid, set()).add(a.essay_id)
    return {e for essays in essays_of.values() if len(essays) > 1 for e in essays}


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
    human = statuses.count(model.ValidationStatus.CONFIRMED)
    timeout = statuses.count(model.ValidationStatus.TIMEOUT_CONFIRMED)
    return BatchCounts(
        total=len(statuses),
        confirmed=human + timeout,
        rejected=statuses.count(model.ValidationStatus.REJECTED),
        pending=statuses.count(model.ValidationStatus.PENDING),
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
    batch: Batch,
    associations: Sequence[Association],
    timeout_triggered: bool,
    at: datetime,
    ambiguous: int = 0,
) -> StudentAssociationsConfirmedV1:
    """The one ``StudentAssociationsConfirmedV1`` a batch's finalization publishes
    (``ambiguous``: how many essays the timeout guard sent to UNKNOWN, §11)."""
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
                suggested_student_id=a.suggested_student_id,
                suggested_confidence=(
                    a.confidence_score if a.suggested_student_id is not None else None
                ),
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
            "ambiguous": ambiguous,
        },
        timestamp=at,
    )
