"""Phase-1 matching use cases: store suggestions, review, confirm, finalize, sweep."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid4

from attrs import define, field, frozen

from class_core.errors import (
    BatchFinalizedError,
    FieldError,
    NotFoundError,
    StudentNotInClassError,
    ValidationError,
)
from class_core.matching import (
    SuggestionsMessage,
    TimeoutOutcome,
    conflicting_essays,
    count,
    timeout_outcome,
)
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    BatchSummary,
    Page,
    SchoolClass,
    Student,
    ValidationStatus,
)
from class_core.ports import UnitOfWork
from class_core.queries import BatchQuery
from class_core.runtime import RequestContext, Runtime

SUGGESTIONS_CONSUMER = "batch_author_matches"


class IngestOutcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    BATCH_FINALIZED = "batch_finalized"
    FINALIZED_EMPTY = "finalized_empty"
    UNKNOWN_CLASS = "unknown_class"


@frozen
class IngestResult:
    outcome: IngestOutcome
    stored: int = 0
    ignored_essays: int = 0


def chosen_student_name(names: Mapping[UUID, str], association: Association) -> str | None:
    """``student_name`` of §3.2: the full name of the chosen student, else of the suggested
    one, else ``None`` (``names`` as :func:`_names` reads them)."""
    chosen = association.student_id or association.suggested_student_id
    return names.get(chosen) if chosen is not None else None


@frozen
class BatchView:
    batch: Batch
    associations: tuple[Association, ...]
    student_names: dict[UUID, str]
    conflicts: frozenset[UUID] = frozenset()  # essays flagged ``conflict`` (§11)

    def student_name(self, association: Association) -> str | None:
        return chosen_student_name(self.student_names, association)

    def conflict(self, association: Association) -> bool:
        return association.essay_id in self.conflicts

    def result(self) -> ConfirmResult:
        """The batch's status and counts, as a confirmation answers them."""
        return _result(self.batch, self.associations)


@frozen
class ConfirmItem:
    essay_id: UUID
    confirmed: bool
    student_id: UUID | None = None


@frozen
class ConfirmResult:
    batch_id: UUID
    status: BatchStatus
    associations_confirmed: int
    associations_rejected: int
    pending: int


@frozen
class FinalizedBatch:
    batch_id: UUID
    class_id: UUID
    auto_confirmed: int
    unknown_assigned: int


@frozen
class DecidedEssay:
    essay_id: UUID
    student: Student


# --------------------------------------------------------------------------- ingest


async def ingest_suggestions(rt: Runtime, msg: SuggestionsMessage) -> IngestResult:
    """Store a batch's suggestions (contract §4.1); idempotent per message id."""
    now = rt.now()
    async with rt.uow() as uow:
        if not await uow.inbox.claim(SUGGESTIONS_CONSUMER, msg.message_id):
            return IngestResult(IngestOutcome.DUPLICATE)
        batch = await uow.batches.get(msg.batch_id, lock=True)
        if batch is not None and batch.is_finalized:
            await uow.commit()  # the inbox row: a replay is a no-op too
            return IngestResult(IngestOutcome.BATCH_FINALIZED, ignored_essays=len(msg.matches))
        class_id = batch.class_id if batch is not None else msg.class_id
        cls = await uow.classes.get_unscoped(class_id)
        if cls is None:
            return IngestResult(IngestOutcome.UNKNOWN_CLASS)
        first_store = batch is None
        if batch is None:
            deadline = now + timedelta(hours=rt.policy.timeout_hours)
            batch = Batch.open(msg.batch_id, cls, msg.course_code, deadline, now)
            await uow.batches.add(batch)

        candidate_ids = {s.student_id for m in msg.matches for s in m.suggestions}
        members = (
            await uow.students.members_among(cls.id, candidate_ids) if candidate_ids else set()
        )
        essays = list(dict.fromkeys(m.essay_id for m in msg.matches))
        existing = await uow.batches.associations_by_essay(essays) if essays else {}
        applied = batch.apply_suggestions(
            msg.matches,
            existing,
            members,
            first=first_store,
            at=now,
            correlation_id=msg.correlation_id,
        )
        if applied.new:
            await uow.batches.add_associations(applied.new)
        if applied.changed:
            await uow.batches.update_associations(applied.changed)
        if applied.batch_changed:
            await uow.batches.update(batch)
        uow.collect(batch)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    empty = first_store and batch.is_finalized
    return IngestResult(
        IngestOutcome.FINALIZED_EMPTY if empty else IngestOutcome.STORED,
        stored=len(applied.new) + len(applied.changed),
        ignored_essays=applied.ignored,
    )


# --------------------------------------------------------------------------- review


async def _owned_batch(
    uow: UnitOfWork, owner_id: str, batch_id: UUID, *, lock: bool = False
) -> tuple[Batch, SchoolClass]:
    batch = await uow.batches.get(batch_id, lock=lock)
    cls = await uow.classes.get(owner_id, batch.class_id) if batch is not None else None
    if batch is None or cls is None:
        raise NotFoundError("Batch", batch_id)
    return batch, cls


async def _names(
    uow: UnitOfWork, associations: Sequence[Association], *, outside: bool = False
) -> dict[UUID, str]:
    return (await _names_and_placeholders(uow, associations, outside=outside))[0]


async def _names_and_placeholders(
    uow: UnitOfWork, associations: Sequence[Association], *, outside: bool = False
) -> tuple[dict[UUID, str], set[UUID]]:
    """The full names of the students the associations name, and which of them are
    placeholders (one read). ``outside``: as seen outside the owner's own reads (an
    operator's view): a protected identity's pseudonym (§10)."""
    ids = {
        sid
        for a in associations
        for sid in (a.student_id, a.suggested_student_id)
        if sid is not None
    }
    if not ids:
        return {}, set()
    students = await uow.students.get_unscoped_many(ids)
    shown = {sid: s.outside_view() if outside else s for sid, s in students.items()}
    names = {sid: s.full_name for sid, s in shown.items()}
    return names, {sid for sid, s in students.items() if s.is_placeholder}


async def conflicts_in_batches(uow: UnitOfWork, batch_ids: Collection[UUID]) -> set[UUID]:
    """The essays flagged ``conflict`` (§11) among the batches named, each judged within its
    own batch (for views that show associations without their whole batch, e.g. an export)."""
    by_batch = await uow.batches.associations_of(batch_ids)
    everyone = [a for associations in by_batch.values() for a in associations]
    _, placeholders = await _names_and_placeholders(uow, everyone)  # one read for all batches
    conflicts: set[UUID] = set()
    for associations in by_batch.values():
        conflicts |= conflicting_essays(associations, placeholders)
    return conflicts


async def _batch_view(uow: UnitOfWork, batch: Batch, *, outside: bool = False) -> BatchView:
    associations = await uow.batches.associations(batch.batch_id)
    names, placeholders = await _names_and_placeholders(uow, associations, outside=outside)
    conflicts = frozenset(conflicting_essays(associations, placeholders))
    return BatchView(batch, tuple(associations), names, conflicts)


async def get_batch_associations(
    rt: Runtime, ctx: RequestContext, batch_id: UUID, *, outside: bool = False
) -> BatchView:
    """The owner's batch view; ``outside=True`` for a view shown to someone else (an
    operator's CLI without ``--as``): protected identities as their pseudonym (§10)."""
    async with rt.read() as uow:
        batch, _ = await _owned_batch(uow, ctx.user_id, batch_id)
        return await _batch_view(uow, batch, outside=outside)


async def list_batches(rt: Runtime, ctx: RequestContext, query: BatchQuery) -> Page[BatchSummary]:
    """The caller's batch queue (contract §11): their batches with counts, by deadline. A
    ``class_id`` filter must name one of the caller's classes (another owner's is 404, as in
    the student list)."""
    async with rt.read() as uow:
        if (
            query.class_id is not None
            and await uow.classes.get(ctx.user_id, query.class_id) is None
        ):
            raise NotFoundError("Class", query.class_id)
        return await uow.batches.list_for_owner(ctx.user_id, query)


async def move_deadline(
    rt: Runtime, ctx: RequestContext, batch_id: UUID, deadline: datetime
) -> BatchView:
    """The owner moves the deadline of a batch that is not finalized (contract §11): after
    now and at most ``max_deadline_days`` ahead. Publishes nothing; the sweep honours it.

    Checks in the order 404, 400, 409; the batch is locked, so a sweep that finalizes it
    first makes this 409 and a sweep that comes later sees the new deadline."""
    now = rt.now()
    async with rt.uow() as uow:
        batch, _ = await _owned_batch(uow, ctx.user_id, batch_id, lock=True)
        if deadline.tzinfo is None:
            raise ValidationError.for_field("deadline", "must include a UTC offset")
        latest = now + timedelta(days=rt.policy.max_deadline_days)
        if not now < deadline <= latest:
            raise ValidationError.for_field(
                "deadline",
                f"must be after now and at most {rt.policy.max_deadline_days:g} days ahead",
            )
        if batch.is_finalized:
            raise BatchFinalizedError()
        batch.move_deadline(deadline.astimezone(UTC), now)
        await uow.batches.update(batch)
        view = await _batch_view(uow, batch)
        await uow.commit()
    return view


def _matches_stored(item: ConfirmItem, a: Association) -> bool:
    if not item.confirmed:
        return a.validation_status is ValidationStatus.REJECTED
    if a.validation_status not in (ValidationStatus.CONFIRMED, ValidationStatus.TIMEOUT_CONFIRMED):
        return False
    wanted = item.student_id if item.student_id is not None else a.suggested_student_id
    return wanted is not None and wanted == a.student_id


async def confirm_associations(
    rt: Runtime, ctx: RequestContext, batch_id: UUID, items: Sequence[ConfirmItem]
) -> ConfirmResult:
    """The teacher's decisions (contract §3.3): atomic, idempotent after finalization."""
    if not items:
        raise ValidationError.for_field("associations", "must list at least one essay")
    errors: list[FieldError] = []
    seen: set[UUID] = set()
    for i, item in enumerate(items):
        if item.essay_id in seen:
            errors.append(FieldError(f"associations[{i}].essay_id", "essay listed twice"))
        seen.add(item.essay_id)
    if errors:
        raise ValidationError("Invalid confirmation", errors)
    now = rt.now()
    async with rt.uow() as uow:
        batch, cls = await _owned_batch(uow, ctx.user_id, batch_id, lock=True)
        associations = await uow.batches.associations(batch_id)
        by_essay = {a.essay_id: a for a in associations}
        for i, item in enumerate(items):
            if item.essay_id not in by_essay:
                errors.append(
                    FieldError(f"associations[{i}].essay_id", "essay is not in this batch")
                )
        if errors:
            raise ValidationError("Invalid confirmation", errors)
        if batch.is_finalized:
            if all(_matches_stored(item, by_essay[item.essay_id]) for item in items):
                return _result(batch, associations)
            raise BatchFinalizedError()

        # The chosen student, given or suggested, must be a current member (§11).
        chosen = {
            i: (item.student_id or by_essay[item.essay_id].suggested_student_id)
            for i, item in enumerate(items)
            if item.confirmed
        }
        chosen_ids = {sid for sid in chosen.values() if sid is not None}
        members = await uow.students.members_among(cls.id, chosen_ids) if chosen_ids else set()
        not_member: list[FieldError] = []
        for i, student_id in chosen.items():
            if student_id is None:
                errors.append(
                    FieldError(
                        f"associations[{i}].student_id",
                        "no student was suggested for this essay; give a student_id",
                    )
                )
            elif student_id not in members:
                not_member.append(
                    FieldError(
                        f"associations[{i}].student_id", "student is not a member of the class"
                    )
                )
        if errors:
            raise ValidationError("Invalid confirmation", errors + not_member)
        if not_member:
            raise StudentNotInClassError("The student is not a member of the class", not_member)

        decisions = [
            (item.essay_id, chosen[i] if item.confirmed else None) for i, item in enumerate(items)
        ]
        changed = batch.decide(
            associations, decisions, ctx.user_id, now, correlation_id=ctx.correlation_id
        )
        await uow.batches.update_associations(changed)
        await uow.batches.update(batch)
        uow.collect(batch)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    return _result(batch, associations)


def _result(batch: Batch, associations: Sequence[Association]) -> ConfirmResult:
    counts = count(associations)
    return ConfirmResult(
        batch.batch_id, batch.status, counts.confirmed, counts.rejected, counts.pending
    )


async def _create_placeholder(
    uow: UnitOfWork, cls: SchoolClass, now: datetime, correlation_id: UUID
) -> tuple[Student, bool]:
    """The class's UNKNOWN student (its event under ``correlation_id``), inserted unless a
    concurrent transaction already did; whether this one inserted it."""
    candidate = Student.placeholder_of(cls, now, correlation_id)
    if await uow.students.add_placeholder(candidate, cls.id):
        return candidate, True
    existing = await uow.students.placeholder(cls.id)
    if existing is None:  # pragma: no cover - the constraint said it exists
        raise RuntimeError("placeholder vanished")
    return existing, False


@define
class _TimeoutDecision:
    """One claimed batch as the timeout rule settled it."""

    batch: Batch
    cls: SchoolClass
    associations: Sequence[Association]
    outcome: TimeoutOutcome
    correlation_id: UUID = field(factory=uuid4)
    placeholder_created: Student | None = None


async def _decide_by_timeout(
    rt: Runtime, uow: UnitOfWork, batches: Sequence[Batch], now: datetime
) -> list[_TimeoutDecision]:
    """Apply the timeout rule to the pending associations of locked batches (in memory).

    One read of each kind for all the batches: classes, associations, memberships of the
    suggested students, placeholders (a class without one gets it here, announced with the
    first batch that needs it).
    """
    classes = await uow.classes.get_unscoped_many({b.class_id for b in batches})
    by_batch = await uow.batches.associations_of([b.batch_id for b in batches])
    found: list[tuple[Batch, SchoolClass, list[Association]]] = []
    candidates: dict[UUID, set[UUID]] = {}
    for batch in batches:
        cls = classes.get(batch.class_id)
        if cls is None:  # pragma: no cover - a class with batches cannot be deleted
            raise NotFoundError("Class", batch.class_id)
        associations = by_batch.get(batch.batch_id, [])
        found.append((batch, cls, associations))
        candidates.setdefault(cls.id, set()).update(
            a.suggested_student_id
            for a in associations
            if a.is_pending and a.suggested_student_id is not None
        )
    members = await uow.students.members_by_class({c: ids for c, ids in candidates.items() if ids})
    threshold, margin = rt.policy.confidence_threshold, rt.policy.confidence_margin
    decisions: list[_TimeoutDecision] = []
    for batch, cls, associations in found:
        outcome = timeout_outcome(associations, members.get(cls.id, set()), threshold, margin)
        decisions.append(_TimeoutDecision(batch, cls, associations, outcome))

    first_needing: dict[UUID, _TimeoutDecision] = {}
    for d in decisions:
        if d.outcome.unknown:
            first_needing.setdefault(d.cls.id, d)
    placeholders = await uow.students.placeholders(first_needing.keys())
    # Created in class-id order: concurrent sweepers wait for each other's new placeholders
    # in one order, never in a cycle.
    for class_id in sorted(first_needing.keys() - placeholders.keys()):
        d = first_needing[class_id]
        placeholder, created = await _create_placeholder(uow, d.cls, now, d.correlation_id)
        d.placeholder_created = placeholder if created else None
        placeholders[class_id] = placeholder
    for d in decisions:
        placeholder_id = placeholders[d.cls.id].id if d.outcome.unknown else None
        d.batch.settle_by_timeout(
            d.associations,
            d.outcome,
            placeholder_id,
            rt.policy.timeout_hours,
            now,
            d.correlation_id,
        )
    return decisions


async def _finalize_by_timeout(
    rt: Runtime, uow: UnitOfWork, batches: Sequence[Batch], now: datetime
) -> list[FinalizedBatch]:
    """Apply the timeout rule to locked pending batches and finalize them, with a fixed
    number of statements whatever the number of batches. Each batch keeps its own
    correlation id (with the placeholder it created), its one confirmed event and its
    notification."""
    decisions = await _decide_by_timeout(rt, uow, batches, now)
    decided = [a for d in decisions for a in (*d.outcome.keep, *d.outcome.unknown)]
    if decided:
        await uow.batches.update_decisions(decided)
    await uow.batches.update_many([d.batch for d in decisions])
    for d in decisions:
        if d.placeholder_created is not None:
            uow.collect(d.placeholder_created)
        uow.collect(d.batch)
    return [
        FinalizedBatch(d.batch.batch_id, d.cls.id, len(d.outcome.keep), len(d.outcome.unknown))
        for d in decisions
    ]


async def finalize_batch(rt: Runtime, batch_id: UUID) -> FinalizedBatch:
    """Apply the timeout rule to one batch now (admin), whatever its deadline."""
    now = rt.now()
    async with rt.uow() as uow:
        batch = await uow.batches.get(batch_id, lock=True)
        if batch is None:
            raise NotFoundError("Batch", batch_id)
        if batch.is_finalized:
            raise BatchFinalizedError()
        [result] = await _finalize_by_timeout(rt, uow, [batch], now)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    return result


async def expire_due_batches(rt: Runtime, per_transaction: int = 50) -> list[FinalizedBatch]:
    """One timeout sweep: finalize every pending batch past its deadline.

    Batches are claimed with a lock that concurrent sweepers skip, so each is finalized once;
    up to ``per_transaction`` of them are finalized together in one transaction.
    """
    finalized: list[FinalizedBatch] = []
    while True:
        now = rt.now()
        async with rt.read() as reading:
            earliest = await reading.batches.earliest_pending_deadline()
        if earliest is None or earliest > now:
            return finalized  # the usual sweep: nothing due, and no write transaction
        async with rt.uow() as uow:
            due = await uow.batches.claim_due(now, per_transaction)
            if not due:
                return finalized
            results = await _finalize_by_timeout(rt, uow, due, now)
            notes = await uow.commit()
        finalized.extend(results)
        rt.notifier.publish(notes)


# --------------------------------------------------------------------------- internal reads


async def decided_students(rt: Runtime, batch_id: UUID) -> list[DecidedEssay]:
    """Essays of a batch with a decided student (internal route); empty for unknown batches."""
    async with rt.read() as uow:
        associations = await uow.batches.associations(batch_id)
        decided = [a for a in associations if a.student_id is not None]
        students = await uow.students.get_unscoped_many(
            {a.student_id for a in decided if a.student_id}
        )
    return [  # outside the owner's reads: a protected identity is its pseudonym (§10)
        DecidedEssay(a.essay_id, students[a.student_id].outside_view())
        for a in decided
        if a.student_id is not None and a.student_id in students
    ]


async def decided_student_for_essay(rt: Runtime, essay_id: UUID) -> DecidedEssay:
    async with rt.read() as uow:
        found = await uow.batches.associations_by_essay([essay_id])
        a = found.get(essay_id)
        if a is None or a.student_id is None:
            raise NotFoundError("Association", essay_id)
        students = await uow.students.get_unscoped_many([a.student_id])
    if a.student_id not in students:
        raise NotFoundError("Association", essay_id)
    return DecidedEssay(essay_id, students[a.student_id].outside_view())


async def batch_class_info(
    rt: Runtime, batch_ids: Sequence[UUID]
) -> dict[UUID, tuple[UUID, str] | None]:
    async with rt.read() as uow:
        info = await uow.batches.class_info(batch_ids)
    return {b: info.get(b) for b in batch_ids}


async def list_pending_associations(rt: Runtime, limit: int = 1000) -> list[Association]:
    async with rt.read() as uow:
        return await uow.batches.pending_associations(limit)


@frozen
class NamedAssociations:
    """Associations with the full names of the students they name (``student_name``)."""

    associations: tuple[Association, ...]
    student_names: dict[UUID, str]

    def student_name(self, association: Association) -> str | None:
        return chosen_student_name(self.student_names, association)


async def list_pending_associations_named(rt: Runtime, limit: int = 1000) -> NamedAssociations:
    """:func:`list_pending_associations` with the students' names, read in the same unit of
    work (an admin view: every owner's, so protected identities show their pseudonym, §10)."""
    async with rt.read() as uow:
        found = await uow.batches.pending_associations(limit)
        names = await _names(uow, found, outside=True)
    return NamedAssociations(tuple(found), names)
