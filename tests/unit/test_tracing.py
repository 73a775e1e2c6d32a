"""W3C trace context: which values are taken, and how they reach the outbox headers."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from adapters_sql.envelopes import ENVELOPES
from class_core.events import ClassDeletedV1
from class_core.tracing import current_traceparent, parse_traceparent, trace_context

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID, VALID),
        (VALID.encode(), VALID),
        (f" {VALID} ", VALID),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", VALID),
        (VALID.upper(), None),  # W3C: lowercase hex only
        (VALID + "-extra", None),  # version 00 has four fields
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("", None),
        (None, None),
        (b"\xff\xfe", None),
    ],
)
def test_parse_traceparent(value: str | bytes | None, expected: str | None) -> None:
    assert parse_traceparent(value) == expected


def _message() -> dict[str, str]:
    event = ClassDeletedV1(uuid4(), "t", uuid4(), datetime.now(UTC))
    m = build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=event.timestamp)
    return dict(m.headers)


def test_outbox_headers_carry_the_current_trace_context_only_inside_it() -> None:
    assert "traceparent" not in _message()
    with trace_context(VALID) as current:
        assert current == VALID
        assert current_traceparent() == VALID
        headers = _message()
        assert headers["traceparent"] == VALID
        assert {"event_id", "event_type", "correlation_id", "source_service"} <= headers.keys()
        with trace_context("garbage"):
            assert "traceparent" not in _message()
        assert _message()["traceparent"] == VALID
    assert current_traceparent() is None
    assert "traceparent" not in _message()
