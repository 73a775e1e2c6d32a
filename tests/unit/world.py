"""A small in-memory world for unit tests: store, clock, notifier, runtime and outbox readers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from adapters_sql.envelopes import ENVELOPES
from class_core.events import ASSOCIATIONS_CONFIRMED
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.model import Association, Batch, SchoolClass, Student
from class_core.runtime import MatchingPolicy, RequestContext, Runtime
from class_core.testing import (
    FixedClock,
    InMemoryOutboxStore,
    InMemoryStore,
    RecordingNotifier,
    memory_runtime,
)
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.matching import IngestResult, ingest_suggestions
from class_core.use_cases.students import CreateStudent, PersonName, create_student

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
OWNER = "teacher-1"
OTHER_OWNER = "teacher-2"


class World:
    """Everything a use-case test needs, with readers for what the outside world would see."""

    def __init__(
        self, timeout_hours: float = 24.0, threshold: float = 0.7, margin: float = 0.0
    ) -> None:
        self.store = InMemoryStore(ENVELOPES)
        self.clock = FixedClock(START)
        self.notifier = RecordingNotifier()
        self.policy = MatchingPolicy(
            timeout_hours=timeout_hours, confidence_threshold=threshold, confidence_margin=margin
        )
        self.rt: Runtime = memory_runtime(self.store, self.clock, self.notifier, self.policy)
        self.outbox = InMemoryOutboxStore(self.store)

    # ------------------------------------------------------------------ contexts
    def ctx(self, user: str = OWNER) -> RequestContext:
        return RequestContext(user, uuid4())

    # ------------------------------------------------------------------ outbox readers
    def envelopes(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(m.payload)
            for m in self.outbox.messages()
            if topic is None or m.topic == topic
        ]

    def data(self, topic: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.envelopes(topic)]

    def topics(self) -> list[str]:
        return [m.topic for m in self.outbox.messages()]

    def confirmed_events(self, batch_id: UUID) -> list[dict[str, Any]]:
        return [d for d in self.data(ASSOCIATIONS_CONFIRMED) if d["batch_id"] == str(batch_id)]

    # ------------------------------------------------------------------ stored state
    def batch(self, batch_id: UUID) -> Batch:
        return self.store.tables.batches[batch_id]

    def association(self, essay_id: UUID) -> Association:
        return self.store.tables.associations[essay_id]

    def student(self, student_id: UUID) -> Student:
        return self.store.tables.students[student_id]

    def placeholders(self) -> list[Student]:
        return [s for s in self.store.tables.students.values() if s.is_placeholder]

    # ------------------------------------------------------------------ builders
    async def new_class(
        self, name: str = "9A", course: str = "ENG5", owner: str = OWNER
    ) -> SchoolClass:
        return await create_class(self.rt, self.ctx(owner), CreateClass(name, [course]))

    async def new_student(
        self,
        first: str = "Ada",
        last: str = "Lovelace",
        classes: Sequence[UUID] = (),
        email: str | None = None,
        owner: str = OWNER,
    ) -> Student:
        return await create_student(
            self.rt,
            self.ctx(owner),
            CreateStudent(PersonName(first, last), email=email, class_ids=list(classes)),
        )

    async def ingest(
        self,
        batch_id: UUID,
        class_id: UUID,
        matches: Sequence[EssayMatch],
        course_code: str = "ENG5",
        message_id: str | None = None,
    ) -> IngestResult:
        msg = SuggestionsMessage(
            message_id=message_id or str(uuid4()),
            correlation_id=uuid4(),
            batch_id=batch_id,
            class_id=class_id,
            course_code=course_code,
            matches=tuple(matches),
        )
        return await ingest_suggestions(self.rt, msg)


def essay(essay_id: UUID, *suggestions: tuple[UUID, float]) -> EssayMatch:
    """An essay with suggestions given as ``(student_id, confidence)``."""
    return EssayMatch(essay_id, tuple(Suggestion(s, c, (f"reason-{c}",)) for s, c in suggestions))
