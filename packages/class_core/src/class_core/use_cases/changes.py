"""The change feed (contract §9.3): read a page after a cursor; purge old entries."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from attrs import frozen

from class_core.changes import (
    MAX_CHANGES_LIMIT,
    Entity,
    LoggedChange,
    Op,
    decode_cursor,
    encode_cursor,
)
from class_core.errors import ValidationError
from class_core.model import SchoolClass, Student
from class_core.runtime import RequestContext, Runtime

PURGE_BATCH = 5000
PURGE_MAX_BATCHES = 200
_MARGIN = timedelta(hours=1)


@frozen
class FeedItem:
    """One change of a page: ``data`` is the object as the owner reads it now (``None`` for
    a delete); ``version`` is its current version (a delete's: the last one)."""

    cursor: str
    change: LoggedChange
    version: int
    data: SchoolClass | Student | None


@frozen
class ChangePage:
    items: tuple[FeedItem, ...]
    next_cursor: str
    has_more: bool


async def read_changes(
    rt: Runtime, ctx: RequestContext, since: str | None, limit: int
) -> ChangePage:
    """The caller's changes after ``since`` (at most ``limit``, 1..1000), with the objects as
    they are now; without ``since``, an empty page and a cursor to start from. A cursor not
    issued by this service, or issued longer ago than the retention → ``CursorExpiredError``.

    An upsert whose object is gone by now is left out: its delete comes later in the feed.
    An object logged more than once within a page (a class written by transactions that ran
    at the same time keeps a row of each) is shown once, at its last entry.
    """
    if not 1 <= limit <= MAX_CHANGES_LIMIT:
        raise ValidationError.for_field("limit", f"must be between 1 and {MAX_CHANGES_LIMIT}")
    now = rt.now()
    async with rt.read() as uow:
        key = await uow.changes.cursor_key()
        if since is None:
            start = await uow.changes.position(ctx.user_id)
            return ChangePage((), encode_cursor(start, now, key), False)
        after = decode_cursor(since, key, now, rt.feed)
        read = await uow.changes.read(ctx.user_id, after, limit + 1)
        entries, has_more = read.entries[:limit], len(read.entries) > limit
        upserts = [e for e in entries if e.op is Op.UPSERT]
        classes, students = await uow.changes.load(
            ctx.user_id,
            {e.id for e in upserts if e.entity is Entity.CLASS},
            {e.id for e in upserts if e.entity is Entity.STUDENT},
        )
    found: dict[tuple[Entity, UUID], SchoolClass | Student] = {
        **{(Entity.CLASS, i): c for i, c in classes.items()},
        **{(Entity.STUDENT, i): s for i, s in students.items()},
    }
    items: list[FeedItem] = []
    last = {(e.entity, e.id): n for n, e in enumerate(entries)}
    for n, e in enumerate(entries):
        if last[(e.entity, e.id)] != n:
            continue  # the object comes again later in this page: shown once, at its latest
        # Resuming from an item's cursor continues right after that item.
        position = after.next(e, True, read.snapshot)
        if e.op is Op.DELETE:
            items.append(FeedItem(encode_cursor(position, now, key), e, e.version, None))
            continue
        obj = found.get((e.entity, e.id))
        if obj is not None:
            items.append(FeedItem(encode_cursor(position, now, key), e, obj.version, obj))
    next_position = after.next(entries[-1] if entries else None, has_more, read.snapshot)
    return ChangePage(tuple(items), encode_cursor(next_position, now, key), has_more)


async def purge_changes(rt: Runtime) -> int:
    """Delete change-log entries older than the retention (and an hour, so that a change
    whose transaction began just before the boundary is kept while a cursor may still need
    it), in bounded batches; returns how many went."""
    before = rt.now() - rt.feed.retention - _MARGIN
    purged = 0
    for _ in range(PURGE_MAX_BATCHES):
        async with rt.uow() as uow:
            n = await uow.changes.purge(before, PURGE_BATCH)
            await uow.commit()
        purged += n
        if n < PURGE_BATCH:
            break
    return purged
