"""Bulk random UUIDs (``class_core.ids``): ordinary version-4 ``uuid.UUID`` values."""

from __future__ import annotations

import copy
import pickle
import uuid

from class_core.ids import uuid4_many


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
