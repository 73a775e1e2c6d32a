"""Random interleavings of suggestions, redeliveries, decisions, clock moves and sweeps.

A Hypothesis state machine drives the real use cases on the in-memory adapters and keeps a
small model of what the contract promises (§3.3, §4). After every step it checks:
exactly one StudentAssociationsConfirmedV1 per finalized batch and none for a pending one, no
human decision overridden, every essay of a finalized batch decided, validation_summary equal
to the listed associations, one UNKNOWN placeholder per class, deadlines and classes that never
move unless the owner moves them, essays that never change batch, and the §11 timeout guard: no
batch finalized by timeout assigns one real student to two essays by timeout, nor to an essay
when a human chose that student for another essay of the batch.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from class_core.errors import (
    BatchFinalizedError,
    ClassManagementError,
    NotFoundError,
    PreconditionFailedError,
    StudentNotInClassError,
    ValidationError,
)
from class_core.events import ASSOCIATIONS_CONFIRMED, STUDENT_CREATED, STUDENT_UPDATED
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.model import (
    SYSTEM_TIMEOUT_USER,
    Association,
    BatchStatus,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.use_cases.matching import (
    ConfirmItem,
    IngestOutcome,
    confirm_associations,
    expire_due_batches,
    finalize_batch,
    ingest_suggestions,
    move_deadline,
)
from class_core.use_cases.students import UpdateStudent, update_student
from class_core.versions import IfMatch

from .world import OWNER, World

T = TypeVar("T")
TIMEOUT_HOURS = 10.0
THRESHOLD = 0.7
MARGIN = 0.05
MAX_DEADLINE_DAYS = 14.0
N_BATCHES = 3
OWN_ESSAYS = 3
SHARED_ESSAYS = 2
CONFIDENCES = [0.0, 0.3, 0.69, 0.7, 0.71, 0.95, 1.0, 1.5, -0.2, math.nan]
DECIDED = (ValidationStatus.CONFIRMED, ValidationStatus.TIMEOUT_CONFIRMED)

# student choices: 0..5 class members (A: 0-2, B: 3-5), 6 outsider, 7 placeholder, 8 stranger
N_STUDENT_CHOICES = 9
# confirm student choices: -1 none, otherwise as above
suggestion = st.tuples(st.integers(0, N_STUDENT_CHOICES - 1), st.sampled_from(CONFIDENCES))
essay_pick = st.tuples(
    st.integers(0, OWN_ESSAYS + SHARED_ESSAYS - 1), st.lists(suggestion, max_size=3)
)
confirm_student = st.one_of(st.just(-1), st.integers(-1, N_STUDENT_CHOICES - 1))
confirm_pick = st.tuples(
    st.integers(0, 9),  # 0..7 an essay of the batch (if any), 8 another batch's essay, 9 unknown
    st.booleans(),
    confirm_student,
)


class MatchingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.w = World(timeout_hours=TIMEOUT_HOURS, threshold=THRESHOLD, margin=MARGIN)
        self.classes = [
            self.run(self.w.new_class("A", "ENG5")).id,
            self.run(self.w.new_class("B", "SV1")).id,
        ]
        self.students: list[Student] = []
        for k, class_id in enumerate(self.classes):
            for i in range(3):
                self.students.append(self.run(self.w.new_student(f"S{i}", f"C{k}", [class_id])))
        self.students.append(self.run(self.w.new_student("Out", "Sider")))
        self.home = {s.id: s.class_ids[0] for s in self.students if s.class_ids}
        # our ids are deterministic so that Hypothesis can replay and shrink a run
        self.counter = itertools.count(1)
        self.batches = [self.new_id() for _ in range(N_BATCHES)]
        self.batch_class = {b: self.classes[i % 2] for i, b in enumerate(self.batches)}
        self.own = {b: [self.new_id() for _ in range(OWN_ESSAYS)] for b in self.batches}
        self.shared = [self.new_id() for _ in range(SHARED_ESSAYS)]
        self.delivered: list[SuggestionsMessage] = []
        self.human: dict[UUID, tuple[ValidationStatus, UUID | None]] = {}
        self.deadline: dict[UUID, datetime] = {}
        self.essay_batch: dict[UUID, UUID] = {}
        self.requests: list[tuple[UUID, list[ConfirmItem]]] = []
        self.parsed: list[tuple[str, dict[str, Any]]] = []

    def new_id(self) -> UUID:
        return UUID(int=next(self.counter))

    def teardown(self) -> None:
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    # ------------------------------------------------------------------ model helpers
    @property
    def t(self) -> Any:
        return self.w.store.tables

    def members(self, class_id: UUID) -> set[UUID]:
        return {
            s
            for c, s in self.t.memberships
            if c == class_id and not self.t.students[s].is_placeholder
        }

    def placeholder(self, class_id: UUID) -> UUID | None:
        sid: UUID | None = self.t.placeholders.get(class_id)
        return sid

    def student_choice(self, choice: int, class_id: UUID) -> UUID | None:
        if choice < len(self.students):
            return self.students[choice].id
        if choice == len(self.students):
            return self.placeholder(class_id) or self.new_id()
        return self.new_id()

    def associations(self, batch_id: UUID) -> dict[UUID, Association]:
        return {e: a for e, a in self.t.associations.items() if a.batch_id == batch_id}

    def snapshot(self) -> tuple[Any, ...]:
        return (
            dict(self.t.associations),
            dict(self.t.batches),
            dict(self.t.students),
            len(self.w.outbox.messages()),
        )

    def published(self, topic: str) -> list[dict[str, Any]]:
        """Event data of one topic; the outbox is append-only, so parse each message once."""
        messages = self.w.outbox.messages()
        for m in messages[len(self.parsed) :]:
            self.parsed.append((m.topic, json.loads(m.payload)["data"]))
        return [data for t, data in self.parsed if t == topic]

    def confirmed_events(self, batch_id: UUID) -> list[dict[str, Any]]:
        return [d for d in self.published(ASSOCIATIONS_CONFIRMED) if d["batch_id"] == str(batch_id)]

    def pending_batches(self) -> list[UUID]:
        return [b for b, x in self.t.batches.items() if x.status is BatchStatus.PENDING]

    # ------------------------------------------------------------------ rules
    @initialize(
        suggestions=st.lists(
            st.lists(suggestion, min_size=1, max_size=3),
            min_size=N_BATCHES * OWN_ESSAYS,
            max_size=N_BATCHES * OWN_ESSAYS,
        )
    )
    def open_every_batch(self, suggestions: list[list[tuple[int, float]]]) -> None:
        """Start with every batch pending, so that the rules have something to work on."""
        for b in range(N_BATCHES):
            picks = [(i, suggestions[b * OWN_ESSAYS + i]) for i in range(OWN_ESSAYS)]
            self.send_suggestions(b, picks, flip=False)
            self.w.clock.advance(hours=1)

    @rule(
        b=st.integers(0, N_BATCHES - 1), picks=st.lists(essay_pick, max_size=4), flip=st.booleans()
    )
    def send_suggestions(self, b: int, picks: list[tuple[int, list[Any]]], flip: bool) -> None:
        batch_id = self.batches[b]
        stored = self.t.batches.get(batch_id)
        class_id = self.batch_class[batch_id]
        message_class = class_id
        if stored is not None and flip:
            message_class = next(c for c in self.classes if c != class_id)
        essays = self.own[batch_id] + self.shared
        matches = tuple(
            EssayMatch(
                essays[i],
                tuple(
                    Suggestion(self.student_choice(s, class_id) or self.new_id(), c, ("r",))
                    for s, c in sugs
                ),
            )
            for i, sugs in picks
        )
        msg = SuggestionsMessage(
            str(self.new_id()), self.new_id(), batch_id, message_class, "ENG5", matches
        )

        before = self.snapshot()
        expected = self.expected_suggestions(batch_id, matches)
        now = self.w.clock.now()
        result = self.run(ingest_suggestions(self.w.rt, msg))
        self.delivered.append(msg)
        event(f"ingest: {result.outcome.value}")

        if stored is not None and stored.status is BatchStatus.FINALIZED:
            assert result.outcome is IngestOutcome.BATCH_FINALIZED
            assert self.snapshot() == before
            return
        if stored is None:
            self.deadline[batch_id] = now + timedelta(hours=TIMEOUT_HOURS)
            if not expected:
                assert result.outcome is IngestOutcome.FINALIZED_EMPTY
        for essay_id, suggested in expected.items():
            a = self.t.associations[essay_id]
            assert a.batch_id == batch_id
            assert a.suggested_student_id == suggested
        for essay_id, previous in before[0].items():
            if essay_id not in expected:
                assert self.t.associations[essay_id] == previous

    def expected_suggestions(
        self, batch_id: UUID, matches: tuple[EssayMatch, ...]
    ) -> dict[UUID, UUID | None]:
        """Essays whose suggestion this message sets: new or still pending in this batch."""
        members = self.members(self.batch_class[batch_id])
        expected: dict[UUID, UUID | None] = {}
        for m in matches:
            if m.essay_id in expected:
                continue  # the first listing of an essay wins
            current = self.t.associations.get(m.essay_id)
            if current is not None and (current.batch_id != batch_id or not current.is_pending):
                continue
            usable = [
                s
                for s in m.suggestions
                if s.student_id in members and 0.0 <= s.confidence_score <= 1.0
            ]
            top = max((s.confidence_score for s in usable), default=None)
            expected[m.essay_id] = next(
                (s.student_id for s in usable if s.confidence_score == top), None
            )
        return expected

    @rule(i=st.integers(0, 1000))
    def redeliver(self, i: int) -> None:
        if not self.delivered:
            return
        msg = self.delivered[i % len(self.delivered)]
        before = self.snapshot()
        result = self.run(ingest_suggestions(self.w.rt, msg))
        # an unknown-class message is never claimed; every message here has a known class
        assert result.outcome is IngestOutcome.DUPLICATE
        assert self.snapshot() == before

    @rule(b=st.integers(0, N_BATCHES - 1), picks=st.lists(confirm_pick, max_size=4))
    def confirm_some(self, b: int, picks: list[tuple[int, bool, int]]) -> None:
        batch_id = self.batches[b]
        class_id = self.batch_class[batch_id]
        own = sorted(self.associations(batch_id))
        others = sorted(e for e, a in self.t.associations.items() if a.batch_id != batch_id)
        request: list[ConfirmItem] = []
        for e, confirmed, s in picks:
            if e < 8 and own:
                essay_id = own[e % len(own)]
            elif e == 8 and others:
                essay_id = others[0]
            else:
                essay_id = self.new_id()
            student = None if s < 0 else self.student_choice(s, class_id)
            request.append(ConfirmItem(essay_id, confirmed, student))
        self.confirm(batch_id, request)

    @rule(
        b=st.integers(0, N_BATCHES - 1),
        decisions=st.lists(
            st.tuples(st.booleans(), confirm_student),
            min_size=OWN_ESSAYS + SHARED_ESSAYS,
            max_size=OWN_ESSAYS + SHARED_ESSAYS,
        ),
    )
    def confirm_every_essay(self, b: int, decisions: list[tuple[bool, int]]) -> None:
        """A request naming every essay of the batch: the usual way a batch is finalized."""
        batch_id = self.batches[b]
        class_id = self.batch_class[batch_id]
        request = [
            ConfirmItem(e, confirmed, None if s < 0 else self.student_choice(s, class_id))
            for e, (confirmed, s) in zip(
                sorted(self.associations(batch_id)), decisions, strict=False
            )
        ]
        self.confirm(batch_id, request)

    @rule(i=st.integers(0, 1000))
    def retry_confirm(self, i: int) -> None:
        if self.requests:
            batch_id, request = self.requests[i % len(self.requests)]
            self.confirm(batch_id, request)

    def confirm(self, batch_id: UUID, request: list[ConfirmItem]) -> None:
        self.requests.append((batch_id, request))
        expected = self.expected_confirm(batch_id, request)
        before = self.snapshot()
        stored = self.t.batches.get(batch_id)
        try:
            result = self.run(confirm_associations(self.w.rt, self.w.ctx(), batch_id, request))
        except ClassManagementError as exc:
            self.check_refused(exc, expected, before)
            return
        assert expected is None, expected
        event(f"confirm: ok, batch {result.status.value}")
        if stored is not None and stored.status is BatchStatus.FINALIZED:
            event("confirm: ok, a harmless retry after finalization")
            assert self.snapshot() == before
        else:
            for item in request:
                a = self.t.associations[item.essay_id]
                if item.confirmed:
                    chosen = item.student_id or a.suggested_student_id
                    self.human[item.essay_id] = (ValidationStatus.CONFIRMED, chosen)
                else:
                    self.human[item.essay_id] = (ValidationStatus.REJECTED, None)
        statuses = [a.validation_status for a in self.associations(batch_id).values()]
        assert result.associations_confirmed == sum(s in DECIDED for s in statuses)
        assert result.associations_rejected == statuses.count(ValidationStatus.REJECTED)
        assert result.pending == statuses.count(ValidationStatus.PENDING)
        assert result.status is self.t.batches[batch_id].status

    def check_refused(
        self, error: ClassManagementError, expected: type[Exception] | None, before: Any
    ) -> None:
        event(f"confirm: {error.code}")
        assert type(error) is expected, (error, expected)
        assert self.snapshot() == before  # atomic: nothing applied

    def expected_confirm(
        self, batch_id: UUID, request: list[ConfirmItem]
    ) -> type[Exception] | None:
        """The error the contract demands for this request, or ``None`` for success."""
        essays = [i.essay_id for i in request]
        if not request or len(set(essays)) != len(essays):
            return ValidationError
        batch = self.t.batches.get(batch_id)
        if batch is None:
            return NotFoundError
        mine = self.associations(batch_id)
        if any(e not in mine for e in essays):
            return ValidationError
        if batch.status is BatchStatus.FINALIZED:
            for item in request:
                a = mine[item.essay_id]
                if item.confirmed:
                    wanted = item.student_id or a.suggested_student_id
                    same = a.validation_status in DECIDED and wanted == a.student_id
                    same = same and wanted is not None
                else:
                    same = a.validation_status is ValidationStatus.REJECTED
                if not same:
                    return BatchFinalizedError
            return None
        members = self.members(batch.class_id)
        confirmed = [i for i in request if i.confirmed]
        if any(
            i.student_id is None and mine[i.essay_id].suggested_student_id is None
            for i in confirmed
        ):
            return ValidationError
        # §11: the chosen student, given or suggested, must be a current member
        if any(
            (i.student_id or mine[i.essay_id].suggested_student_id) not in members
            for i in confirmed
        ):
            return StudentNotInClassError
        return None

    @rule(hours=st.sampled_from([0.5, 4.0, 11.0]))
    def advance_clock(self, hours: float) -> None:
        self.w.clock.advance(hours=hours)

    @rule(k=st.integers(0, 5))
    def toggle_membership(self, k: int) -> None:
        student = self.students[k]
        home = self.home[student.id]
        if (home, student.id) in self.t.memberships:
            cmd = UpdateStudent(remove_class_ids=[home])
        else:
            cmd = UpdateStudent(add_class_ids=[home])
        self.run(update_student(self.w.rt, self.w.ctx(), student.id, cmd))

    @rule(k=st.integers(0, 5), stale=st.booleans(), name=st.sampled_from(["Ann", "Bo"]))
    def rename_with_if_match(self, k: int, stale: bool, name: str) -> None:
        """A version-guarded write (contract §8): the stored version passes; any other is a
        412 that changes and publishes nothing."""
        student = self.t.students[self.students[k].id]
        version = student.version + (1 if stale else 0)
        guard = IfMatch.parse(f'"{version}", W/"{student.version}"')
        cmd = UpdateStudent(first_name=name)
        if stale:
            before = self.snapshot(), len(self.w.outbox.messages())
            try:
                self.run(update_student(self.w.rt, self.w.ctx(), student.id, cmd, guard))
            except PreconditionFailedError:
                assert (self.snapshot(), len(self.w.outbox.messages())) == before
                return
            raise AssertionError("a stale If-Match was accepted")
        updated = self.run(update_student(self.w.rt, self.w.ctx(), student.id, cmd, guard))
        changed = student.first_name != name
        assert updated.version == student.version + (1 if changed else 0)

    def expected_timeout(self, batch_id: UUID) -> dict[UUID, UUID | None]:
        """Pending essay -> kept suggested student, or ``None`` for the UNKNOWN placeholder
        (Part I's rule, the margin, one real student per essay; written apart from the code)."""
        members = self.members(self.batch_class[batch_id])
        mine = self.associations(batch_id)
        human = {
            a.student_id for a in mine.values() if a.validation_status is ValidationStatus.CONFIRMED
        }
        passing: dict[UUID, UUID] = {}
        for e, a in mine.items():
            if not a.is_pending or a.suggested_student_id is None:
                continue
            part_one = (
                a.suggested_student_id in members
                and a.confidence_score is not None
                and a.confidence_score >= THRESHOLD
            )
            runner_up = a.runner_up_confidence
            margin_ok = runner_up is None or (
                a.confidence_score is not None and a.confidence_score - runner_up >= MARGIN - 1e-9
            )
            if part_one and margin_ok:
                passing[e] = a.suggested_student_id
        out: dict[UUID, UUID | None] = {}
        for e, a in mine.items():
            if not a.is_pending:
                continue
            student = passing.get(e)
            alone = student is not None and list(passing.values()).count(student) == 1
            out[e] = student if alone and student not in human else None
        return out

    def check_timeout(self, batch_id: UUID, expected: dict[UUID, UUID | None]) -> None:
        placeholder = self.placeholder(self.batch_class[batch_id])
        for e, student in expected.items():
            a = self.t.associations[e]
            assert a.validation_status is ValidationStatus.TIMEOUT_CONFIRMED
            assert a.validation_method is ValidationMethod.TIMEOUT
            assert a.validated_by == SYSTEM_TIMEOUT_USER
            assert a.student_id == (student if student is not None else placeholder)
        batch = self.t.batches[batch_id]
        assert batch.status is BatchStatus.FINALIZED
        assert batch.timeout_triggered is True

    @precondition(lambda self: bool(self.pending_batches()))
    @rule()
    def sweep(self) -> None:
        now = self.w.clock.now()
        due = {
            b.batch_id: self.expected_timeout(b.batch_id)
            for b in self.t.batches.values()
            if b.status is BatchStatus.PENDING and b.deadline <= now
        }
        done = self.run(expire_due_batches(self.w.rt))
        assert {d.batch_id for d in done} == set(due)
        if done:
            event("sweep: finalized a batch")
        for d in done:
            expected = due[d.batch_id]
            assert d.auto_confirmed == sum(1 for s in expected.values() if s is not None)
            assert d.unknown_assigned == sum(1 for s in expected.values() if s is None)
            self.check_timeout(d.batch_id, expected)

    @rule(b=st.integers(0, N_BATCHES - 1))
    def finalize_now(self, b: int) -> None:
        batch_id = self.batches[b]
        batch = self.t.batches.get(batch_id)
        expected = self.expected_timeout(batch_id)
        before = self.snapshot()
        try:
            self.run(finalize_batch(self.w.rt, batch_id))
            event("finalize: applied the timeout rule")
        except NotFoundError:
            assert batch is None
            assert self.snapshot() == before
            return
        except BatchFinalizedError:
            assert batch is not None
            assert batch.status is BatchStatus.FINALIZED
            assert self.snapshot() == before
            return
        assert batch is not None
        assert batch.status is BatchStatus.PENDING
        self.check_timeout(batch_id, expected)

    @rule(b=st.integers(0, N_BATCHES - 1), hours=st.sampled_from([-1.0, 0.0, 0.5, 2.0, 400.0]))
    def move_deadline(self, b: int, hours: float) -> None:
        """The owner moves a batch's deadline (§11): after now, at most 14 days ahead, not
        on a finalized batch; nothing else changes and nothing is published."""
        batch_id = self.batches[b]
        batch = self.t.batches.get(batch_id)
        now = self.w.clock.now()
        deadline = now + timedelta(hours=hours)
        before_outbox = len(self.w.outbox.messages())
        try:
            view = self.run(move_deadline(self.w.rt, self.w.ctx(), batch_id, deadline))
        except NotFoundError:
            assert batch is None
            return
        except ValidationError as exc:
            event("deadline: refused (range)")
            fields = [e.field for e in exc.errors]
            assert not (now < deadline <= now + timedelta(days=MAX_DEADLINE_DAYS))
            assert fields == ["deadline"]
            return
        except BatchFinalizedError:
            event("deadline: refused (finalized)")
            assert batch is not None
            assert batch.status is BatchStatus.FINALIZED
            return
        event("deadline: moved")
        assert batch is not None
        assert batch.status is BatchStatus.PENDING
        assert view.batch.deadline == deadline
        assert self.t.batches[batch_id].deadline == deadline
        assert len(self.w.outbox.messages()) == before_outbox
        self.deadline[batch_id] = deadline

    # ------------------------------------------------------------------ invariants
    @invariant()
    def timeout_never_gives_one_real_student_two_essays(self) -> None:
        for batch_id, batch in self.t.batches.items():
            if not batch.timeout_triggered:
                continue
            mine = self.associations(batch_id).values()
            placeholder = self.placeholder(batch.class_id)
            by_timeout = [
                a.student_id
                for a in mine
                if a.validation_method is ValidationMethod.TIMEOUT and a.student_id != placeholder
            ]
            assert len(by_timeout) == len(set(by_timeout))
            human = {
                a.student_id for a in mine if a.validation_status is ValidationStatus.CONFIRMED
            }
            assert not human & set(by_timeout)

    @invariant()
    def one_event_per_finalized_batch_and_none_for_pending(self) -> None:
        for batch_id, batch in self.t.batches.items():
            events = self.confirmed_events(batch_id)
            assert len(events) == (1 if batch.status is BatchStatus.FINALIZED else 0)

    @invariant()
    def finalized_batches_are_fully_decided_and_reported(self) -> None:
        for batch_id, batch in self.t.batches.items():
            mine = self.associations(batch_id)
            if batch.status is BatchStatus.PENDING:
                assert any(a.is_pending for a in mine.values())  # no stalled batch
                continue
            for a in mine.values():
                assert not a.is_pending
                assert (a.student_id is None) == (a.validation_status is ValidationStatus.REJECTED)
            [event] = self.confirmed_events(batch_id)
            entries = event["associations"]
            assert {x["essay_id"]: x["student_id"] for x in entries} == {
                str(e): str(a.student_id) if a.student_id else None for e, a in mine.items()
            }
            summary = event["validation_summary"]
            rejected = sum(1 for x in entries if x["student_id"] is None)
            assert summary["total_associations"] == len(entries)
            assert summary["rejected"] == rejected
            assert summary["confirmed"] == len(entries) - rejected
            for x in entries:
                a = mine[UUID(x["essay_id"])]
                score = a.confidence_score if a.student_id == a.suggested_student_id else 0.0
                assert x["confidence_score"] == (score if a.student_id else 0.0)

    @invariant()
    def human_decisions_are_never_overridden(self) -> None:
        for essay_id, (status, student) in self.human.items():
            a = self.t.associations[essay_id]
            assert (a.validation_status, a.student_id) == (status, student)
            assert a.validation_method is ValidationMethod.HUMAN
            assert a.validated_by == OWNER

    @invariant()
    def one_placeholder_per_class(self) -> None:
        placeholders = [s for s in self.t.students.values() if s.is_placeholder]
        for class_id in self.classes:
            members = [p for p in placeholders if (class_id, p.id) in self.t.memberships]
            assert len(members) <= 1
        created = [
            d
            for d in self.published(STUDENT_CREATED)
            if (d["student_email"] or "").endswith("@huleedu.system")
        ]
        assert len(created) == len(placeholders)
        assert {d["student_id"] for d in created} == {str(p.id) for p in placeholders}

    @invariant()
    def versions_count_committed_changes_and_grow_per_key(self) -> None:
        """Contract §8: a student's version is 1 + its committed changes (each published
        once here), its events' versions strictly grow per topic and key, and the last one
        is the stored version; classes never change here, so they stay at 1."""
        seen: dict[tuple[str, str], int] = {}
        for m in self.w.outbox.messages():
            if m.topic not in (STUDENT_CREATED, STUDENT_UPDATED):
                continue
            version = json.loads(m.payload)["metadata"]["aggregate_version"]
            assert version > seen.get((m.topic, m.key), 0)
            seen[(m.topic, m.key)] = version
        for student in self.t.students.values():
            key = str(student.id)
            assert student.version == seen.get((STUDENT_UPDATED, key), 1)
            assert seen[(STUDENT_CREATED, key)] == 1
        assert {c.version for c in self.t.classes.values()} == {1}

    @invariant()
    def deadlines_classes_and_essay_batches_never_move(self) -> None:
        for batch_id, batch in self.t.batches.items():
            assert batch.deadline == self.deadline[batch_id]
            assert batch.class_id == self.batch_class[batch_id]
        for essay_id, a in self.t.associations.items():
            assert self.essay_batch.setdefault(essay_id, a.batch_id) == a.batch_id
            assert a.class_id == self.batch_class[a.batch_id]


MatchingMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMatchingStateMachine = MatchingMachine.TestCase
