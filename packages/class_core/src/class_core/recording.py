"""Events recorded in a unit of work, kept as outbox messages until it commits.

A use case records the events of its change with ``uow.record(events, correlation_id, at)``;
the unit of work writes everything recorded to the outbox at :meth:`commit`, in one insert,
in the same transaction (both adapters hold a :class:`RecordedEvents`). That is the one path
from a change to the outbox: the API's use cases, the timeout sweep and the roster import
alike. Each event gets its id and its envelope text here, once, so that neither changes
across relay retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from attrs import define, field

from class_core.events import (
    DomainEvent,
    OutboxMessage,
    TeacherNotification,
    build_outbox_message,
    notifications_of,
)
from class_core.ids import uuid4_many


@define
class RecordedEvents:
    """The outbox messages recorded so far in one unit of work."""

    messages: list[OutboxMessage] = field(factory=list)

    def record(
        self, events: Sequence[DomainEvent], correlation_id: UUID, at: datetime
    ) -> list[TeacherNotification]:
        """Add the events' messages; returns the teacher notifications among them (to be
        pushed to the real-time channel once the transaction has committed)."""
        ids = uuid4_many(len(events))
        self.messages.extend(
            build_outbox_message(e, event_id=event_id, correlation_id=correlation_id, at=at)
            for e, event_id in zip(events, ids, strict=True)
        )
        return notifications_of(events)

    def take(self) -> list[OutboxMessage]:
        """Everything recorded, emptied (at commit, or when the unit of work is entered)."""
        taken, self.messages = self.messages, []
        return taken
