"""New ids (``class_core.ids``): ordinary version-4 and version-7 ``uuid.UUID`` values."""

from __future__ import annotations

import copy
import pickle
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from class_core.ids import uuid4_many, uuid7
from class_core.model import SchoolClass


def test_bulk_ids_are_real_version_4_uuids() -> None:
    ids = uuid4_many(5_000)
    assert len(ids) == len(set(ids)) == 5_000
    for value in ids:
        assert type(value) is uuid.UUID
        assert value.version == 4
        assert value.variant == uuid.RFC_4122
        assert value.is_safe is uuid.SafeUUID.unknown
        same = uuid.UUID(str(value))
        assert (same, hash(same), same.bytes, same.int) == (
            value,
            hash(value),
            value.bytes,
            value.int,
        )
        assert pickle.loads(pickle.dumps(value)) == value == copy.deepcopy(value)


def test_bulk_ids_use_all_the_random_bits() -> None:
    ids = uuid4_many(2_000)
    fixed = (0xF000 << 64) | (0xC000 << 48)  # the version nibble and the variant bits
    ever_set = 0
    ever_clear = 0
    for value in ids:
        ever_set |= value.int
        ever_clear |= ~value.int & ((1 << 128) - 1)
    assert ever_set & ever_clear == ((1 << 128) - 1) & ~fixed


def test_zero_ids() -> None:
    assert uuid4_many(0) == []


AT = datetime(2026, 12, 6, 18, 30, 15, 123456, tzinfo=UTC)


def test_time_ordered_ids_are_real_version_7_uuids_holding_their_millisecond() -> None:
    ids = [uuid7(AT) for _ in range(2_000)]
    assert len(set(ids)) == 2_000
    for value in ids:
        assert type(value) is uuid.UUID
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert value.int >> 80 == int(AT.timestamp() * 1000)  # 1765045815123
        assert uuid.UUID(str(value)) == value
    fixed = (0xFFFFFFFFFFFF << 80) | (0xF000 << 64) | (0xC000 << 48)
    ever_set = ever_clear = 0
    for value in ids:
        ever_set |= value.int
        ever_clear |= ~value.int & ((1 << 128) - 1)
    assert ever_set & ever_clear == ((1 << 128) - 1) & ~fixed  # 74 random bits


def test_time_ordered_ids_sort_by_time_whatever_the_zone() -> None:
    stockholm = timezone(timedelta(hours=1))
    times = [AT + timedelta(milliseconds=n) for n in (0, 1, 999, 60_000, 86_400_000)]
    ids = [uuid7(t.astimezone(stockholm)) for t in times]
    assert sorted(ids) == ids
    assert sorted(str(i) for i in ids) == [str(i) for i in ids]  # as PostgreSQL sorts uuid


def test_a_time_before_1970_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold the time"):
        uuid7(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert uuid7(datetime.max.replace(tzinfo=UTC)).version == 7  # 48 bits last to 10889


def test_a_new_class_has_a_time_ordered_id() -> None:
    first = SchoolClass.create("t-1", "9A", "ENG5", at=AT, correlation_id=uuid.uuid4())
    later = SchoolClass.create(
        "t-1", "9B", "ENG5", at=AT + timedelta(milliseconds=1), correlation_id=uuid.uuid4()
    )
    assert (first.id.version, later.id.version) == (7, 7)
    assert first.id < later.id
