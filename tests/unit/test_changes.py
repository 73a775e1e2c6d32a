"""The change feed's rules (contract §9.3): which objects an event changes, positions and
cursors, and the feed itself on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from adapters_sql.envelopes import ENVELOPES
from class_core.changes import (
    Entity,
    FeedPolicy,
    FeedPosition,
    LoggedChange,
    Op,
    changes_of,
    decode_cursor,
    encode_cursor,
    with_touched,
)
from class_core.errors import ConfigurationError, CursorExpiredError, ValidationError
from class_core.events import (
    ClassCreatedV1,
    ClassDeletedV1,
    StudentDeletedV1,
    StudentErasedV1,
    StudentUpdatedV1,
)
from class_core.runtime import RequestContext
from class_core.testing import FixedClock, memory_runtime
from class_core.use_cases import CreateClass, create_class
from class_core.use_cases.changes import read_changes

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
KEY = b"k" * 32


def test_events_map_to_the_objects_whose_representation_changed() -> None:
    c1, c2, s = uuid4(), uuid4(), uuid4()
    cid = uuid4()
    found = changes_of(
        [
            ClassCreatedV1(c1, "9A", ("ENG5",), "t", cid, AT),
            StudentUpdatedV1(s, "A", "B", None, (c1,), (c2,), "t", cid, AT, aggregate_version=3),
        ]
    )
    assert {k: v.op for k, v in found.items()} == {
        (Entity.CLASS, c1): Op.UPSERT,
        (Entity.STUDENT, s): Op.UPSERT,
        (Entity.CLASS, c2): Op.UPSERT,  # its student_count moved
    }


def test_a_delete_wins_and_carries_owner_and_last_version() -> None:
    c, s = uuid4(), uuid4()
    cid = uuid4()
    found = changes_of(
        [
            StudentErasedV1(s, (c,), "t", cid, AT),
            StudentDeletedV1(s, (c,), "owner", cid, AT, aggregate_version=5),
            ClassDeletedV1(c, "owner", cid, AT, aggregate_version=2),
        ]
    )
    assert found[(Entity.STUDENT, s)].op is Op.DELETE
    assert (found[(Entity.STUDENT, s)].owner_id, found[(Entity.STUDENT, s)].version) == (
        "owner",
        5,
    )
    assert (found[(Entity.CLASS, c)].op, found[(Entity.CLASS, c)].version) == (Op.DELETE, 2)
    touched = uuid4()
    with_touched(found, {touched: AT, s: AT})
    assert found[(Entity.STUDENT, touched)].op is Op.UPSERT
    assert found[(Entity.STUDENT, s)].op is Op.DELETE  # a touch does not undo a delete


def test_a_cursor_round_trips_and_refuses_forgery_and_age() -> None:
    policy = FeedPolicy(30)
    position = FeedPosition(42, "100:105:101,103", 7)
    cursor = encode_cursor(position, AT, KEY)
    assert decode_cursor(cursor, KEY, AT + timedelta(days=29), policy) == position
    with pytest.raises(CursorExpiredError):
        decode_cursor(cursor, KEY, AT + timedelta(days=30, seconds=1), policy)
    with pytest.raises(CursorExpiredError):
        decode_cursor(cursor, b"other" * 8, AT, policy)
    forged = encode_cursor(FeedPosition(0), AT, b"other" * 8).split(".")[0]
    with pytest.raises(CursorExpiredError):
        decode_cursor(forged + "." + cursor.split(".")[1], KEY, AT, policy)
    for garbage in ("", ".", "abc", "a.b.c", "!!!.???", cursor[:-2]):
        with pytest.raises(CursorExpiredError):
            decode_cursor(garbage, KEY, AT, policy)


def test_retention_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="CHANGES_RETENTION_DAYS"):
        FeedPolicy(0)


def _entry(seq: int) -> LoggedChange:
    return LoggedChange(seq, Entity.CLASS, uuid4(), Op.UPSERT, 1, AT)


def test_positions_move_past_the_page_or_page_through_the_window() -> None:
    here = FeedPosition(10, "old")
    assert here.next(None, False, "new") == FeedPosition(10, "new")
    assert here.next(_entry(15), True, "new") == FeedPosition(15, "new")
    assert here.next(_entry(8), False, "new") == FeedPosition(10, "new")  # window read whole
    # A full page that ends inside the window keeps the old snapshot and pages on.
    assert here.next(_entry(8), True, "new") == FeedPosition(10, "old", 8)


async def test_the_feed_validates_its_limit() -> None:
    rt = memory_runtime(clock=FixedClock(), renderer=ENVELOPES)
    ctx = RequestContext("t")
    for limit in (0, 1001, -1):
        with pytest.raises(ValidationError):
            await read_changes(rt, ctx, None, limit)
    start = (await read_changes(rt, ctx, None, 1000)).next_cursor
    cls = await create_class(rt, ctx, CreateClass("9A", ["ENG5"]))
    page = await read_changes(rt, ctx, start, 1)
    assert [(i.change.id, i.change.op, i.data) for i in page.items] == [(cls.id, Op.UPSERT, cls)]
