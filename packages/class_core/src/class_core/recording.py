"""Events recorded in a unit of work, kept as outbox messages until it commits.

An aggregate's methods record the events of its changes (``class_core.model.Aggregate``),
built complete, once, with the correlation id the method was given (the request's); the use
case hands the aggregate to its unit of work with ``uow.collect(aggregate)``, and
:meth:`commit` pulls what it recorded (``Aggregate.pull_recorded``): the events go to the
outbox, each under the correlation id it was recorded under, its history entries to the
student history. The roster import pulls its thousands of students as it plans a chunk
(``ChunkPlan.collect``, ``Aggregate.pull_events``) and records the chunk's events with
``uow.record(events, correlation_id, at)``, under the import's correlation id (the one it gave
every aggregate method). Nothing changes an event once built. The unit of work writes
everything recorded to the outbox at commit, in one insert, in the same transaction (both
adapters hold a :class:`RecordedEvents`). That is the one path from a change to the outbox:
the API's use cases, the timeout sweep and the roster import alike. Each event gets its id when
recorded and its envelope text (from the unit of work's
:class:`~class_core.ports.EnvelopeRenderer`) once, at commit, so that neither changes across
relay retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload
from uuid import UUID

from attrs import define, field

from class_core.events import (
    DomainEvent,
    OutboxMessage,
    TeacherNotification,
    notifications_of,
)
from class_core.ids import uuid4_many
from class_core.model import Aggregate, HistoryEntry
from class_core.ports import EnvelopeRenderer, Outbox

_Recorded = tuple[DomainEvent, UUID, UUID, datetime]  # event, its id, correlation id, time


class RecordedMessages(Sequence[OutboxMessage]):
    """The outbox messages of recorded events, each rendered once, when first read.

    Rendered in order as the outbox adapter reads them, so that a bulk write (an import
    chunk's ``COPY``) sends the first rows while the next are rendered; measured with
    ``python -m bench --only import`` (docs/performance.md, issue 13). Ids were fixed when
    the events were recorded; the text never changes once rendered.
    """

    def __init__(self, recorded: list[_Recorded], renderer: EnvelopeRenderer) -> None:
        self._recorded = recorded
        self._render = renderer.render
        self._rendered: list[OutboxMessage] = []

    def __len__(self) -> int:
        return len(self._recorded)

    def _upto(self, index: int) -> None:
        rendered, recorded, render = self._rendered, self._recorded, self._render
        for e, event_id, correlation_id, at in recorded[len(rendered) : index + 1]:
            rendered.append(render(e, event_id=event_id, correlation_id=correlation_id, at=at))

    @overload
    def __getitem__(self, index: int) -> OutboxMessage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[OutboxMessage]: ...

    def __getitem__(self, index: int | slice) -> OutboxMessage | Sequence[OutboxMessage]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index >= len(self._rendered):
            self._upto(index)
        return self._rendered[index]

    def __iter__(self) -> Iterator[OutboxMessage]:
        for i in range(len(self)):
            yield self[i]


@define
class RecordedEvents:
    """The events recorded so far in one unit of work, with their ids; ``renderer`` turns
    them into outbox messages when they are taken."""

    renderer: EnvelopeRenderer
    recorded: list[_Recorded] = field(factory=list)
    collected: list[Aggregate] = field(factory=list)

    def collect(self, aggregate: Aggregate) -> None:
        """Pull what ``aggregate`` records at :meth:`pull_collected` (at commit)."""
        self.collected.append(aggregate)

    def pull_collected(self) -> list[HistoryEntry]:
        """At commit, first: record the events every collected aggregate recorded (each under
        the correlation id it was recorded under, at its own timestamp), in the order
        collected; returns their history entries, for the unit of work to write with the
        commit's other rows."""
        collected, self.collected = self.collected, []
        entries: list[HistoryEntry] = []
        for aggregate in collected:
            recorded = aggregate.pull_recorded()
            ids = uuid4_many(len(recorded))
            self.recorded.extend(
                (e, event_id, correlation_id, e.timestamp)
                for (e, correlation_id), event_id in zip(recorded, ids, strict=True)
            )
            entries += aggregate.pull_history()
        return entries

    def notifications(self) -> list[TeacherNotification]:
        """The teacher notifications among everything recorded (to be pushed to the
        real-time channel once the transaction has committed)."""
        return notifications_of(self.events())

    def record(
        self, events: Sequence[DomainEvent], correlation_id: UUID, at: datetime
    ) -> list[TeacherNotification]:
        """Add the events (each gets its id now); returns the teacher notifications among them
        (to be pushed to the real-time channel once the transaction has committed)."""
        ids = uuid4_many(len(events))
        self.recorded.extend(
            (e, event_id, correlation_id, at) for e, event_id in zip(events, ids, strict=True)
        )
        return notifications_of(events)

    def events(self) -> list[DomainEvent]:
        """The events recorded so far (the change feed's source, read at commit)."""
        return [e for e, *_ in self.recorded]

    async def write_to(self, outbox: Outbox) -> None:
        """Write everything recorded to the outbox (at commit, in one insert) and forget it."""
        messages = self.take()
        if messages:
            await outbox.add(messages)

    def take(self) -> RecordedMessages:
        """Everything recorded, as outbox messages, emptied (at commit, or when the unit of
        work is entered)."""
        taken, self.recorded, self.collected = self.recorded, [], []
        return RecordedMessages(taken, self.renderer)
