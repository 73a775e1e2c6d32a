"""Text rules: NFC, trimming, lengths, control characters, emails and search keys."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from class_core.errors import FieldError, ValidationError

MAX_NAME_LENGTH = 255
MAX_EMAIL_LENGTH = 254
RESERVED_EMAIL_DOMAIN = "huleedu.system"
# ``\s`` of a ``str`` pattern is exactly ``str.isspace`` (both use Py_UNICODE_ISSPACE), but it
# scans in C instead of one Python call per character.
_SPACE = re.compile(r"\s")


def has_control(value: str) -> bool:
    """Whether the text holds a control character (Unicode category Cc, NUL and C1 included)."""
    if value.isprintable():  # fast path: printable text has no Cc character at all
        return False
    return any(unicodedata.category(ch) == "Cc" for ch in value)


_has_control = has_control

MAX_USER_ID_LENGTH = 255


def user_id_problem(value: str) -> str | None:
    """Why ``value`` cannot name a user (the API's ``X-User-ID``, the CLI's ``--owner`` and
    ``--as``), as the end of a sentence; ``None`` when it can. Blank, longer than 255
    characters or holding a control character is refused; the id is otherwise kept as given."""
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_USER_ID_LENGTH:
        return f"must be at most {MAX_USER_ID_LENGTH} characters"
    if has_control(value):
        return "must not contain control characters"
    return None


def clean_name(value: str, field: str) -> str:
    """NFC-normalise and trim a name; 1..255 code points, no control characters."""
    if _has_control(value):
        raise ValidationError.for_field(field, "must not contain control characters")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise ValidationError.for_field(field, "must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise ValidationError.for_field(field, f"must be at most {MAX_NAME_LENGTH} characters")
    return text


def clean_external_id(value: str, field: str = "external_id") -> str:
    """A school system's id (§9.1): NFC-normalised and trimmed, 1..255 code points, no
    control characters; compared exactly afterwards (no case folding)."""
    return clean_name(value, field)


def clean_email(value: str, field: str = "email", *, allow_reserved: bool = False) -> str:
    """Trim, NFC-normalise and lower-case an email; one ``@`` and a dotted domain."""
    if _has_control(value):
        raise ValidationError.for_field(field, "must not contain control characters")
    text = unicodedata.normalize("NFC", value).strip().lower()
    if len(text) > MAX_EMAIL_LENGTH:
        raise ValidationError.for_field(field, f"must be at most {MAX_EMAIL_LENGTH} characters")
    if text.count("@") != 1:
        raise ValidationError.for_field(field, "must be an email address with one '@'")
    local, domain = text.split("@")
    if not local or _SPACE.search(text):
        raise ValidationError.for_field(field, "is not a valid email address")
    labels = domain.split(".")
    if len(labels) < 2 or any(not label for label in labels):
        raise ValidationError.for_field(field, "must have a domain with a dot")
    if not allow_reserved and (
        domain == RESERVED_EMAIL_DOMAIN or domain.endswith("." + RESERVED_EMAIL_DOMAIN)
    ):
        raise ValidationError.for_field(field, f"the domain {RESERVED_EMAIL_DOMAIN} is reserved")
    return text


MAX_ALIASES = 10
MAX_ALIAS_LENGTH = 100


def clean_aliases(values: Sequence[str], field: str = "aliases") -> tuple[str, ...]:
    """A student's aliases (§11): at most 10; each NFC, trimmed, 1..100 code points, no
    control characters; two that are equal after case folding are refused. Every bad entry
    is named (``aliases[2]``)."""
    if len(values) > MAX_ALIASES:
        raise ValidationError.for_field(field, f"at most {MAX_ALIASES} aliases")
    errors: list[FieldError] = []
    cleaned: list[str] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        text = unicodedata.normalize("NFC", value).strip()
        where = f"{field}[{i}]"
        if not 1 <= len(text) <= MAX_ALIAS_LENGTH:
            errors.append(FieldError(where, f"must be 1..{MAX_ALIAS_LENGTH} characters"))
        elif has_control(text):
            errors.append(FieldError(where, "must not contain control characters"))
        elif text.casefold() in seen:
            errors.append(FieldError(where, "duplicates another alias (case-insensitively)"))
        seen.add(text.casefold())
        cleaned.append(text)
    if errors:
        raise ValidationError("Invalid aliases", errors)
    return tuple(cleaned)


def search_key(*parts: str | None) -> str:
    """Accent-stripped, case-folded text for literal substring search (computed at write time)."""
    return fold(" ".join(filter(None, parts)))


def fold(value: str) -> str:
    """The folding used for search keys and for the ``q`` of a query: compatibility
    decomposition, combining marks dropped, case-folded, NFC."""
    if value.isascii():  # NFKD and NFC leave ASCII as it is, and it has no combining marks
        return value.casefold()
    combining = unicodedata.combining
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join([ch for ch in decomposed if not combining(ch)]).casefold()
    return stripped if stripped.isascii() else unicodedata.normalize("NFC", stripped)
