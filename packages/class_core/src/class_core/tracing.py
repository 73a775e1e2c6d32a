"""W3C trace context carried from what caused a change into the events it records
(contract §12).

An HTTP request's ``traceparent`` header, or a consumed Kafka message's, is made current with
:func:`trace_context` while the request or message is handled; every outbox message built
meanwhile (:func:`class_core.events.build_outbox_message`) carries it as a ``traceparent``
header, stored with the outbox row and published with the event. A context variable keeps
it out of every use case's signature and isolates concurrent requests (each runs in its own
task). Invalid values are ignored, as W3C Trace Context asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

TRACEPARENT = "traceparent"
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_current: ContextVar[str | None] = ContextVar("cms_traceparent", default=None)


def parse_traceparent(value: str | bytes | None) -> str | None:
    """The version-00 form of a valid ``traceparent`` value, else ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _FORMAT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00" and rest:
        return None  # version 00 has exactly four fields
    return f"00-{trace_id}-{parent_id}-{flags}"


def current_traceparent() -> str | None:
    """The trace context of the work in progress, if it came with one."""
    return _current.get()


@contextmanager
def trace_context(value: str | bytes | None) -> Iterator[str | None]:
    """Make ``value`` (when it is a valid ``traceparent``) current while inside."""
    parsed = parse_traceparent(value)
    token = _current.set(parsed)
    try:
        yield parsed
    finally:
        _current.reset(token)
