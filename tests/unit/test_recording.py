"""``class_core.recording``: events recorded in a unit of work, rendered once each."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from adapters_sql.envelopes import ENVELOPES
from class_core import notifications
from class_core.events import ClassCreatedV1, DomainEvent
from class_core.model import SchoolClass
from class_core.recording import RecordedEvents

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def _events() -> tuple[SchoolClass, list[DomainEvent]]:
    cls = SchoolClass(uuid4(), "t1", "9A", "ENG5", AT, AT)
    corr = uuid4()
    return cls, [ClassCreatedV1.of(cls, "t1", corr, AT), notifications.class_created(cls, corr, AT)]


def test_ids_are_fixed_at_record_time_and_text_rendered_once() -> None:
    cls, events = _events()
    recorded = RecordedEvents(ENVELOPES)
    corr = uuid4()
    notes = recorded.record(events, corr, AT)
    assert notes == [events[1]]
    messages = recorded.take()
    assert len(recorded.take()) == 0  # emptied
    assert len(messages) == 2
    first = messages[0]
    assert messages[0] is first  # rendered once, the same message on every read
    assert list(messages) == [first, messages[1]]
    assert messages[-1] is messages[1]
    assert list(messages[0:2]) == list(messages)
    assert [m.topic for m in messages] == [
        "huleedu.class.created.v1",
        "huleedu.notification.teacher.requested.v1",
    ]
    assert first.key == str(cls.id)
    envelope = json.loads(first.payload)
    assert envelope["event_id"] == str(first.event_id)
    again = build_outbox_message(events[0], event_id=first.event_id, correlation_id=corr, at=AT)
    assert again.payload == first.payload  # the same bytes as rendering it directly


def test_each_record_call_keeps_its_own_correlation_id_in_order() -> None:
    _, events = _events()
    recorded = RecordedEvents(ENVELOPES)
    a, b = uuid4(), uuid4()
    recorded.record(events[:1], a, AT)
    recorded.record(events[1:], b, AT)
    messages = list(recorded.take())
    assert [dict(m.headers)["correlation_id"] for m in messages] == [str(a), str(b)]
    assert len({m.event_id for m in messages}) == 2
