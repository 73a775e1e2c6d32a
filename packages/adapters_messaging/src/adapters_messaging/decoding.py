"""Decoding ``BatchAuthorMatchesSuggestedV1`` (contract §5.1 envelope, §5.3 data).

A message that cannot be used as a whole raises :class:`UndecodableMessage` with the
dead-letter reason; an individual suggestion that is invalid is dropped and the rest is kept.
Error details name fields only, never values, so they are safe to log and to put in headers.
"""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID, uuid4

from attrs import frozen

from class_core.courses import COURSES_BY_CODE
from class_core.events import SUGGESTIONS_EVENT_TYPES
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage

INVALID_JSON = "invalid_json"
INVALID_ENVELOPE = "invalid_envelope"
INVALID_DATA = "invalid_data"
UNKNOWN_CLASS = "unknown_class"
PROCESSING_FAILED = "processing_failed"

MAX_MESSAGE_ID_LENGTH = 255


class UndecodableMessage(Exception):
    """The message cannot be processed; it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@frozen
class DecodedSuggestions:
    message: SuggestionsMessage
    dropped_suggestions: int


def _uuid(value: Any) -> UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return UUID(value.strip())
    except ValueError:
        return None


def _required_uuid(data: dict[str, Any], name: str) -> UUID:
    value = _uuid(data.get(name))
    if value is None:
        raise UndecodableMessage(INVALID_DATA, f"data.{name}: missing or not a UUID")
    return value


def _storable(text: str) -> bool:
    """Whether the text can be stored: PostgreSQL text and JSON hold no NUL, and UTF-8 has no
    lone surrogates (which JSON escapes can carry). Such a value would fail the transaction
    every time, and the consumer would retry it forever."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _message_id(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        parsed = _uuid(value)
        text = str(parsed) if parsed is not None else value.strip()
        if len(text) <= MAX_MESSAGE_ID_LENGTH and _storable(text):
            return text
    raise UndecodableMessage(
        INVALID_ENVELOPE, "event_id: missing, empty, too long or not storable text"
    )


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of 309+ digits: no double holds it
        return None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return None
    return number


def _suggestion(raw: Any) -> Suggestion | None:
    if not isinstance(raw, dict):
        return None
    student_id = _uuid(raw.get("student_id"))
    confidence = _confidence(raw.get("confidence_score"))
    if student_id is None or confidence is None:
        return None
    reasons = raw.get("match_reasons")
    kept = tuple(r for r in reasons if isinstance(r, str)) if isinstance(reasons, list) else ()
    if not all(_storable(r) for r in kept):
        return None
    return Suggestion(student_id=student_id, confidence_score=confidence, match_reasons=kept)


def decode_suggestions(value: bytes | None) -> DecodedSuggestions:
    """Bytes of a Kafka message value → :class:`SuggestionsMessage`.

    ``message_id`` is the envelope's ``event_id``; ``correlation_id`` the envelope's, or a new
    one when it is missing or not a UUID.
    """
    if value is None:
        raise UndecodableMessage(INVALID_JSON, "message has no value")
    try:
        envelope = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UndecodableMessage(INVALID_JSON, type(exc).__name__) from None
    if not isinstance(envelope, dict):
        raise UndecodableMessage(INVALID_ENVELOPE, "envelope is not a JSON object")
    event_type = envelope.get("event_type")
    if event_type not in SUGGESTIONS_EVENT_TYPES:
        raise UndecodableMessage(INVALID_ENVELOPE, "event_type: not a suggestions event")
    message_id = _message_id(envelope.get("event_id"))
    correlation_id = _uuid(envelope.get("correlation_id")) or uuid4()
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise UndecodableMessage(INVALID_ENVELOPE, "data: missing or not an object")

    batch_id = _required_uuid(data, "batch_id")
    class_id = _required_uuid(data, "class_id")
    course_code = data.get("course_code")
    if not isinstance(course_code, str) or course_code.strip().upper() not in COURSES_BY_CODE:
        raise UndecodableMessage(INVALID_DATA, "data.course_code: missing or unknown")
    results = data.get("match_results")
    if not isinstance(results, list):
        raise UndecodableMessage(INVALID_DATA, "data.match_results: missing or not a list")

    matches: list[EssayMatch] = []
    dropped = 0
    for i, raw in enumerate(results):
        essay_id = _uuid(raw.get("essay_id")) if isinstance(raw, dict) else None
        if essay_id is None:
            raise UndecodableMessage(
                INVALID_DATA, f"data.match_results[{i}].essay_id: missing or not a UUID"
            )
        raw_suggestions = raw.get("suggestions")
        if not isinstance(raw_suggestions, list):
            raw_suggestions = []
        suggestions = [_suggestion(s) for s in raw_suggestions]
        kept = tuple(s for s in suggestions if s is not None)
        dropped += len(suggestions) - len(kept)
        matches.append(EssayMatch(essay_id=essay_id, suggestions=kept))

    return DecodedSuggestions(
        SuggestionsMessage(
            message_id=message_id,
            correlation_id=correlation_id,
            batch_id=batch_id,
            class_id=class_id,
            course_code=course_code.strip().upper(),
            matches=tuple(matches),
        ),
        dropped,
    )
