"""Column types shared by the schema and the migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always reads back as an aware UTC ``datetime``.

    PostgreSQL stores ``timestamptz``; SQLite stores naive text, which is written in UTC and
    tagged as UTC on the way back (so that fixed-width text order is time order too).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a timezone-aware column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"unexpected timestamp value {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def code_point_string(length: int | None = None) -> TypeEngine[str]:
    """Text compared and ordered by code point: ``COLLATE "C"`` on PostgreSQL (UTF-8 bytes
    order = code-point order); SQLite's default BINARY collation already is."""
    base: TypeEngine[str] = String(length) if length is not None else Text()
    pg: TypeEngine[str] = (
        String(length, collation="C") if length is not None else Text(collation="C")
    )
    return base.with_variant(pg, "postgresql")
