"""List queries with the contract's ranges (§3.1), checked once here for every edge."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from attrs import frozen

from class_core.errors import ValidationError
from class_core.text import clean_external_id, fold, has_control

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


def _external_id(value: str | None) -> str | None:
    """The ``external_id`` filter, cleaned like a stored one (NFC, trimmed), then exact."""
    return clean_external_id(value) if value is not None else None


CLASS_STATUSES = ("active", "archived", "all")


@frozen
class ClassQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    q: str | None = None  # folded on construction
    course_code: str | None = None
    updated_since: datetime | None = None
    status: str | None = "active"  # ``None``: all (contract §9.2: active by default)
    external_id: str | None = None

    @classmethod
    def build(
        cls,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        q: str | None = None,
        course_code: str | None = None,
        updated_since: datetime | None = None,
        status: str = "active",
        external_id: str | None = None,
    ) -> ClassQuery:
        _check_window(limit, offset)
        _check_since(updated_since)
        _check_course_code(course_code)
        if status not in CLASS_STATUSES:
            raise ValidationError.for_field("status", "must be active, archived or all")
        return cls(
            limit,
            offset,
            _folded(q),
            course_code,
            updated_since,
            None if status == "all" else status,
            _external_id(external_id),
        )


@frozen
class StudentQuery:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    q: str | None = None  # folded on construction
    class_id: UUID | None = None
    updated_since: datetime | None = None
    external_id: str | None = None

    @classmethod
    def build(
        cls,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        q: str | None = None,
        class_id: UUID | None = None,
        updated_since: datetime | None = None,
        external_id: str | None = None,
    ) -> StudentQuery:
        _check_window(limit, offset)
        _check_since(updated_since)
        return cls(limit, offset, _folded(q), class_id, updated_since, _external_id(external_id))


BATCH_STATUSES = ("pending", "finalized", "all")


@frozen
class BatchQuery:
    """``GET /v1/batches`` (contract §11): ``status`` is ``pending``, ``finalized`` or
    ``None`` (all)."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    status: str | None = "pending"
    class_id: UUID | None = None

    @classmethod
    def build(
        cls,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        status: str = "pending",
        class_id: UUID | None = None,
    ) -> BatchQuery:
        _check_window(limit, offset)
        if status not in BATCH_STATUSES:
            raise ValidationError.for_field("status", "must be pending, finalized or all")
        return cls(limit, offset, None if status == "all" else status, class_id)
