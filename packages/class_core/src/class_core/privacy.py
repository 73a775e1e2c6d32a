"""Erasure's rules for copies of a student's personal data outside the student row (§10).

Pure functions on plain data, shared by every storage adapter: which suggestion reasons to
drop, and how an event's ``data`` that carries a student's former names is rewritten with the
erased values or recognised as not carrying them at all. The outbox adapter applies the
latter to its stored envelopes (``EnvelopeRenderer.erase``: same envelope, same event id).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from uuid import UUID

from class_core.model import ERASED_FIRST_NAME, ERASED_LAST_NAME

ERASED_FULL_NAME = f"{ERASED_FIRST_NAME} {ERASED_LAST_NAME}"
# Shorter values are only replaced where they are a whole text (a first name "Bo" must not
# rewrite every "Bo" inside other words of the same event).
_MIN_SUBSTRING = 3
# A student's own fields in an event's data, a notification's payload or a name object, and
# what erasure leaves in them (a constant table).
_ERASED_FIELDS: Mapping[str, Any] = MappingProxyType(
    {
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
)


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
                erased = _ERASED_FIELDS[key]
                out[key] = list(erased) if isinstance(erased, list) else erased
            else:
                out[key] = _scrub(item, sid, former, own)
        return out
    if isinstance(value, list):
        return [_scrub(v, sid, former, own) for v in value]
    if isinstance(value, str):
        return _scrub_text(value, former)
    return value


def scrub_data(data: Any, student_id: UUID, former: Sequence[str]) -> Any | None:
    """An event's ``data`` (plain data, as an envelope carries it) with the erased values,
    or ``None`` when it carries none of the student's personal data (leave it alone).

    In it, the student's own fields (names, email, legal name, external id, aliases: in any
    object whose ``student_id`` is the student's, or in the whole of an event about the
    student) take the erased values whatever they held (an earlier name too), and any former
    value left in a text is replaced. Another student's objects are never touched."""
    scrubbed = _scrub(data, str(student_id), former, False)
    return None if scrubbed == data else scrubbed
