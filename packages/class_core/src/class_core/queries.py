"""List queries with the contract's ranges (§3.1), checked once here for every edge."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from attrs import frozen

from class_core.errors import ValidationError
from class_core.text import fold, has_control

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_OFFSET = 1_000_000
MAX_QUERY_LENGTH = 255
MAX_COURSE_CODE_LENGTH = 32


def _check_window(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError.for_field("limit", f"must be between 1 and {MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationError.for_field("offset", f"must be between 0 and {MAX_OFFSET}")


def _check_since(updated_since: datetime | None) -> None:
    if updated_since is None:
        return
    if updated_since.tzinfo is None:
        raise ValidationError.for_field("updated_since", "must include a UTC offset")
    try:
        # An offset can push the instant past year 9999 (``9999-12-31T23:59:59-00:01``):
        # no datetime holds it in UTC, where every store compares.
        updated_since.astimezone(UTC)
    except OverflowError:
        raise ValidationError.for_field(
            "updated_since", "must lie between years 1 and 9999 in UTC"
        ) from None


def _check_course_code(course_code: str | None) -> None:
    if course_code is not None and len(course_code) > MAX_COURSE_CODE_LENGTH:
        raise ValidationError.for_field(
            "course_code", f"must be at most {MAX_COURSE_CODE_LENGTH} characters"
        )


def _folded(q: str | None) -> str | None:
    if q is None:
        return None
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationError.for_field("q", f"must be at most {MAX_QUERY_LENGTH} characters")
    if has_control(q):
        raise ValidationError.for_field("q", "must not contain control characters")
    folded = fold(q.strip())
    return folded or None


@frozen
class ClassQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    q: str | None = None  # folded on construction
    course_code: str | None = None
    updated_since: datetime | None = None

    @classmethod
    def build(
        cls,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        q: str | None = None,
        course_code: str | None = None,
        updated_since: datetime | None = None,
    ) -> ClassQuery:
        _check_window(limit, offset)
        _check_since(updated_since)
        _check_course_code(course_code)
        return cls(limit, offset, _folded(q), course_code, updated_since)


@frozen
class StudentQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    q: str | None = None  # folded on construction
    class_id: UUID | None = None
    updated_since: datetime | None = None

    @classmethod
    def build(
        cls,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        q: str | None = None,
        class_id: UUID | None = None,
        updated_since: datetime | None = None,
    ) -> StudentQuery:
        _check_window(limit, offset)
        _check_since(updated_since)
        return cls(limit, offset, _folded(q), class_id, updated_since)
