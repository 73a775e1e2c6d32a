"""Erasure's rules for copies of a student's personal data outside the student row (§10).

Pure functions, shared by every storage adapter: which suggestion reasons to drop, and how an
outbox envelope that carries a student's former names is rewritten with the erased values
(same envelope, same event id) or recognised as not carrying them at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from class_core.model import ERASED_FIRST_NAME, ERASED_LAST_NAME

ERASED_FULL_NAME = f"{ERASED_FIRST_NAME} {ERASED_LAST_NAME}"
# Shorter values are only replaced where they are a whole text (a first name "Bo" must not
# rewrite every "Bo" inside other words of the same event).
_MIN_SUBSTRING = 3
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
# A student's own fields in an event's data, a notification's payload or a name object, and
# what erasure leaves in them.
_ERASED_FIELDS: dict[str, Any] = {
    "first_name": ERASED_FIRST_NAME,
    "last_name": ERASED_LAST_NAME,
    "legal_full_name": None,
    "full_legal_name": ERASED_FULL_NAME,
    "full_name": ERASED_FULL_NAME,
    "student_name": ERASED_FULL_NAME,
    "student_email": None,
    "email": None,
    "external_id": None,
    "aliases": [],
}


def _folded(values: Sequence[str]) -> list[str]:
    return sorted({v.casefold() for v in values if v}, key=len, reverse=True)


def mentions(text: str, former: Sequence[str]) -> bool:
    """Whether ``text`` holds any of the former values (case-insensitively)."""
    folded = text.casefold()
    return any(v in folded for v in _folded(former))


def scrub_reasons(reasons: Sequence[str], former: Sequence[str]) -> tuple[str, ...]:
    """The suggestion reasons without those that name the student."""
    return tuple(r for r in reasons if not mentions(r, former))


def _scrub_text(text: str, former: Sequence[str]) -> str:
    for value in _folded(former):
        if text.casefold() == value:
            return ERASED_FULL_NAME
        if len(value) >= _MIN_SUBSTRING:
            text = re.sub(re.escape(value), ERASED_FULL_NAME, text, flags=re.IGNORECASE)
    return text


def _scrub(value: Any, sid: str, former: Sequence[str], own: bool) -> Any:
    if isinstance(value, dict):
        own = own or value.get("student_id") == sid
        out: dict[str, Any] = {}
        for key, item in value.items():
            if own and key in _ERASED_FIELDS:
                out[key] = _ERASED_FIELDS[key]
            else:
                out[key] = _scrub(item, sid, former, own)
        return out
    if isinstance(value, list):
        return [_scrub(v, sid, former, own) for v in value]
    if isinstance(value, str):
        return _scrub_text(value, former)
    return value


def scrub_envelope(payload: str, student_id: UUID, former: Sequence[str]) -> str | None:
    """The outbox envelope rewritten with the erased values when it carries the student's
    personal data, else ``None`` (leave the row alone).

    Only envelopes that name the student's id are considered (another student's event is
    never touched). In them, the student's own fields (names, email, legal name, external
    id, aliases) take the erased values whatever they held (an earlier name too), and any
    former value left in a text is replaced."""
    sid = str(student_id)
    if sid not in payload:
        return None
    envelope = json.loads(payload)
    data = envelope.get("data")
    scrubbed = _scrub(data, sid, former, False)
    if scrubbed == data:
        return None
    envelope["data"] = scrubbed
    return str(_ENCODER.encode(envelope))
