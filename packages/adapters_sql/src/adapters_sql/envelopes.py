"""The outbox's wire format: events rendered as the §5.1 envelope's JSON text, and that text
rewritten on erasure (§10). The core's ``EnvelopeRenderer`` port, implemented here because
the outbox writer is the one that needs it; :mod:`class_core` holds no JSON.

An event is rendered once, when its unit of work commits: its id and its text are stored in
the outbox row and never change across relay retries. The text is compact JSON with the keys
in the contract's order, not ASCII-escaped: exactly ``json.dumps(envelope, ensure_ascii=False,
separators=(",", ":"))`` of the envelope as plain data (``class_core.events.plain_value``),
built faster than that (``tests/unit/test_events.py`` checks the two agree for any text, and
``tests/unit/test_envelope_golden.py`` that every event type renders byte for byte as it did
before this moved out of the core).

Why hand-written and not ``json.dumps`` of a dictionary: a POST student renders two
envelopes and an import thousands; building the dictionary and encoding it cost about twice
the direct rendering below (28 → 15 µs per ``StudentCreatedV1`` message, docs/performance.md).
msgspec is not used because it belongs to the ``api`` extra only; an embedding service may
install ``sql`` alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from types import MappingProxyType
from typing import Any
from uuid import UUID

import attrs

from class_core.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    SOURCE_SERVICE,
    ConfirmedAssociation,
    DomainEvent,
    OutboxMessage,
    data_field_names,
    envelope_metadata,
    plain_value,
    topic_and_key,
)
from class_core.privacy import scrub_data
from class_core.tracing import TRACEPARENT, current_traceparent

_uuid_text = UUID.__str__
# What the encoder writes for text (no ASCII escaping).
_encode_str: Callable[[str], str] = json.encoder.encode_basestring

# The '"name":' prefix of each data field of an attrs class, in order, and a getter of all
# their values at once (one C call).
_Shape = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]


def _shape(cls: type) -> _Shape:
    names = data_field_names(cls)
    prefixes = tuple(f"{_encode_str(n)}:" for n in names)
    if len(names) > 1:
        return prefixes, attrgetter(*names)
    return prefixes, lambda obj: tuple(getattr(obj, n) for n in names)


class JsonEnvelopes:
    """Renders events as outbox messages (§5.1 envelope as JSON text) and rewrites a stored
    envelope for an erased student. Stateless once built: one instance serves every unit of
    work (:data:`ENVELOPES`)."""

    def __init__(self) -> None:
        # One encoder for every envelope (``json.dumps`` with options builds one per call).
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), check_circular=False
        )
        # Worked out here, once (never changed): the shapes of the event classes.
        self._shapes: Mapping[type, _Shape] = MappingProxyType(
            {c: _shape(c) for c in (*EVENT_TYPES, ConfirmedAssociation)}
        )
        self._envelope_fixed = self._encoder.encode(
            {"source_service": SOURCE_SERVICE, "schema_version": SCHEMA_VERSION}
        )[1:-1]

    def render(
        self,
        event: DomainEvent,
        *,
        event_id: UUID,
        correlation_id: UUID,
        at: datetime,
        metadata: Mapping[str, Any] | None = None,
    ) -> OutboxMessage:
        """Wrap an event in the §5.1 envelope, with the id given (fixed by the caller, once);
        ``metadata`` replaces the event's own (:func:`class_core.events.envelope_metadata`)."""
        topic, key = topic_and_key(event)
        data_json = self._object_json(event)  # the data object, straight from the event's fields
        if metadata is None:
            metadata = envelope_metadata(event)
        eid, cid = str(event_id), _uuid_text(correlation_id)
        headers: tuple[tuple[str, str], ...] = (
            ("event_id", eid),
            ("event_type", topic),
            ("correlation_id", cid),
            ("source_service", SOURCE_SERVICE),
        )
        traceparent = current_traceparent()  # the request's or consumed message's, if any
        if traceparent is not None:
            headers += ((TRACEPARENT, traceparent),)
        # Text straight to the C string encoder (what ``encoder.encode`` of a ``str`` returns,
        # without its Python-level call); the metadata mapping field by field (_json_text).
        meta = self._mapping_json(metadata) if metadata is not None else "null"
        payload = (
            f'{{"event_id":{_encode_str(eid)},"event_type":{_encode_str(topic)},'
            f'"event_timestamp":{_encode_str(at.isoformat())},{self._envelope_fixed},'
            f'"correlation_id":{_encode_str(cid)},"data_schema_uri":null,'
            f'"data":{data_json},"metadata":{meta}}}'
        )
        return OutboxMessage(
            event_id=event_id, topic=topic, key=key, payload=payload, headers=headers, created_at=at
        )

    def erase(self, payload: str, student_id: UUID, former: Sequence[str]) -> str | None:
        """The stored envelope rewritten with the erased values when it carries the student's
        personal data, else ``None`` (leave the row alone): the rules are the core's
        (:func:`class_core.privacy.scrub_data`); the envelope keeps its id and key order."""
        if str(student_id) not in payload:
            return None
        envelope = json.loads(payload)
        scrubbed = scrub_data(envelope.get("data"), student_id, former)
        if scrubbed is None:
            return None
        envelope["data"] = scrubbed
        return str(self._encoder.encode(envelope))

    def _json_text(self, value: Any) -> str:
        """``encoder.encode(plain_value(value))`` (an attrs object as the dictionary of its
        data fields), with the common kinds of value done at once."""
        kind = type(value)
        if kind is str:
            return _encode_str(value)
        if value is None:
            return "null"
        if kind is UUID:
            return f'"{_uuid_text(value)}"'
        if kind is tuple:
            return f"[{','.join(map(self._json_text, value))}]"
        if kind is datetime:
            return f'"{value.isoformat()}"'  # digits, "-", ":", "+", "T", ".": nothing to escape
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return int.__repr__(value)  # what the encoder writes for an int (not a bool)
        if kind is float and math.isfinite(value):
            return float.__repr__(value)  # what the encoder writes for a finite float
        if kind in self._shapes or attrs.has(kind):
            return self._object_json(value)
        return str(self._encoder.encode(plain_value(value)))

    def _mapping_json(self, mapping: Mapping[str, Any]) -> str:
        """``encoder.encode(dict(mapping))`` for a mapping with text keys (the metadata)."""
        json_text = self._json_text
        text = ",".join([f"{_encode_str(k)}:{json_text(v)}" for k, v in mapping.items()])
        return f"{{{text}}}"

    def _object_json(self, obj: Any) -> str:
        """An attrs object (an event, or an item of one) as the compact JSON text of the
        dictionary of its data fields, nested objects alike."""
        cls = type(obj)
        shape = self._shapes.get(cls) or _shape(cls)  # a subclass: worked out each time
        json_text = self._json_text
        text = ",".join([p + json_text(v) for p, v in zip(shape[0], shape[1](obj), strict=True)])
        return f"{{{text}}}"


# The renderer the SQL units of work use unless given another (immutable once built).
ENVELOPES = JsonEnvelopes()
