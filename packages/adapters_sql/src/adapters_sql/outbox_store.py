"""The relay's view of the outbox (``OutboxStore``), relay leadership and NOTIFY wake-ups."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from adapters_sql.engine import (
    SQLITE_BEGIN_OPTION,
    is_postgresql,
    release_advisory_lock,
    sqlite_write_lock,
)
from adapters_sql.errors import translate_errors
from adapters_sql.mapping import outbox_from_row
from adapters_sql.schema import inbox, outbox, relay_leadership
from class_core.errors import DependencyUnavailableError
from class_core.ports import OutboxStatus, StoredOutboxMessage

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "cms_outbox"
# pg_try_advisory_lock key of the single active relay ("cms_outb").
LEADERSHIP_LOCK_KEY = 0x636D735F6F757462

_o = outbox
# Keys held back: the first unpublished row of the key that is dead or waiting for its retry.
# Few rows ever qualify, so this is computed once per fetch over the unpublished rows and
# anti-joined, instead of probing every candidate's earlier rows (a correlated NOT EXISTS,
# whose plan degrades to a scan of the whole table, published rows included, when the
# statistics are stale; and which walks all earlier rows of hot keys such as a teacher's).
_blocked = (
    select(_o.c.topic, _o.c.key, func.min(_o.c.seq).label("first_seq"))
    .where(
        _o.c.published_at.is_(None),
        (_o.c.dead_at.is_not(None)) | (_o.c.next_attempt_at > bindparam("now")),
    )
    .group_by(_o.c.topic, _o.c.key)
    .cte("blocked")
)
_FETCH = (
    select(_o.c.seq, _o.c.event_id, _o.c.topic, _o.c.key, _o.c.payload, _o.c.headers)
    .add_columns(_o.c.created_at, _o.c.attempts)
    .where(
        _o.c.published_at.is_(None),
        _o.c.dead_at.is_(None),
        _o.c.next_attempt_at <= bindparam("now"),
        ~exists().where(
            _blocked.c.topic == _o.c.topic,
            _blocked.c.key == _o.c.key,
            _blocked.c.first_seq < _o.c.seq,
        ),
    )
    .order_by(_o.c.seq)
    .limit(bindparam("limit"))
)
_MARK = (
    update(_o)
    .where(_o.c.seq.in_(bindparam("seqs", expanding=True)))
    .values(published_at=bindparam("at"))
)
# PostgreSQL: one array parameter, so one prepared statement whatever the batch size.
_MARK_PG = (
    update(_o)
    .where(_o.c.seq == any_(bindparam("seqs", type_=postgresql.ARRAY(BigInteger()))))
    .values(published_at=bindparam("at"))
)
# The blocked keys are few and found through the partial index of unpublished rows; stale
# statistics (after a burst, before autovacuum's ANALYZE) would have the planner scan the whole
# table (published rows included) instead. One fetch's transaction says so.
_PREFER_INDEXES = text("SET LOCAL enable_seqscan = off")
_FAIL = (
    update(_o)
    .where(_o.c.seq == bindparam("v_seq"))
    .values(
        attempts=_o.c.attempts + 1,
        last_error=bindparam("v_error"),
        next_attempt_at=bindparam("v_next"),
        dead_at=bindparam("v_dead_at"),
    )
)
_pending = and_(_o.c.published_at.is_(None), _o.c.dead_at.is_(None))
_STATUS = select(
    func.coalesce(func.sum(case((_pending, 1), else_=0)), 0).label("pending"),
    func.coalesce(
        func.sum(case((and_(_o.c.dead_at.is_not(None), _o.c.published_at.is_(None)), 1), else_=0)),
        0,
    ).label("dead"),
    func.coalesce(func.sum(case((_o.c.published_at.is_not(None), 1), else_=0)), 0).label(
        "published"
    ),
    func.min(case((_pending, _o.c.created_at), else_=None)).label("oldest"),
)
_RETRY = (
    update(_o)
    .where(_o.c.dead_at.is_not(None))
    .values(dead_at=None, attempts=0, next_attempt_at=bindparam("now"))
)
# A new leader's epoch: every relay that takes the lock bumps it (one row, upserted so that a
# database whose row went missing still works).
_BUMP_EPOCH = text(
    "INSERT INTO cms_relay_leadership (id, epoch, leader_since) VALUES (1, 1, now()) "
    "ON CONFLICT (id) DO UPDATE SET epoch = cms_relay_leadership.epoch + 1, "
    "leader_since = now() RETURNING epoch"
)
# A leader's writes to the outbox take effect only while its epoch is the current one: a relay
# that lost its lock (and may not know yet) cannot mark what the new leader has re-sent since.
_STILL_LEADER = exists().where(
    relay_leadership.c.id == 1, relay_leadership.c.epoch == bindparam("epoch")
)
_MARK_FENCED = _MARK_PG.where(_STILL_LEADER)
_FAIL_FENCED = _FAIL.where(_STILL_LEADER)
_PURGE_INBOX = delete(inbox).where(inbox.c.processed_at < bindparam("before"))
_PURGE = delete(_o).where(_o.c.published_at.is_not(None), _o.c.published_at < bindparam("before"))


class LeadershipLostError(DependencyUnavailableError):
    """This relay is no longer the leader (its lock session ended, or a newer leader's epoch
    fenced its write); the relay steps down and tries again as a standby."""

    def __init__(self) -> None:
        super().__init__("The relay lost its leadership")


class SqlOutboxStore:
    """``OutboxStore`` on SQL; each call is its own short transaction.

    Leadership on PostgreSQL (:meth:`leadership`): a session-level advisory lock on a dedicated
    connection, plus an epoch bumped on taking it. While leading, the lock's session is
    checked before each fetch, right after it (nothing is awaited between that check and the
    relay handing the rows to the sink: "before publishing") and before every mark; the marks
    themselves are fenced on the epoch. So a relay that lost its lock publishes at most the
    round already in flight, and never writes after a newer leader took over.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = sqlite_write_lock(engine)
        self._leader_conn: AsyncConnection | None = None
        self._epoch: int | None = None

    async def _run(
        self,
        statement: Executable,
        params: dict[str, Any],
        *,
        write: bool,
        pg_prelude: Executable | None = None,
    ) -> Any:
        lock = self._lock if write else None
        if lock is not None:
            await lock.acquire()
        try:
            with translate_errors():
                async with self._engine.connect() as conn:
                    if not write:
                        conn = await conn.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
                    if pg_prelude is not None and conn.dialect.name == "postgresql":
                        await conn.execute(pg_prelude)
                    result = await conn.execute(statement, params)
                    rows = list(result.mappings()) if result.returns_rows else None
                    count = result.rowcount
                    await conn.commit()
                    return rows if rows is not None else count
        finally:
            if lock is not None:
                lock.release()

    @asynccontextmanager
    async def leadership(self) -> AsyncIterator[bool]:
        """PostgreSQL: ``pg_try_advisory_lock`` held on a dedicated connection while inside
        (``False`` when another relay holds it). SQLite: always the leader."""
        if not is_postgresql(self._engine):
            yield True
            return
        with translate_errors():
            conn = await self._engine.connect()
        leader = False
        try:
            with translate_errors():
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                leader = bool(
                    await conn.scalar(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADERSHIP_LOCK_KEY}
                    )
                )
            if leader:
                with translate_errors():
                    self._epoch = int(await conn.scalar(_BUMP_EPOCH))
            else:
                await conn.close()
            self._leader_conn = conn if leader else None
            yield leader
        finally:
            self._leader_conn = None
            self._epoch = None
            if leader:
                await release_advisory_lock(conn, LEADERSHIP_LOCK_KEY)
            await conn.close()

    async def _confirm_leadership(self) -> None:
        """While leading, the lock's session must still be alive: when it ended (killed, a
        failover) the lock went with it, perhaps to a standby, and publishing on would publish
        every event twice. Raises ``DependencyUnavailableError`` then; the relay steps down."""
        conn = self._leader_conn
        if conn is not None:
            try:
                with translate_errors():
                    await conn.execute(text("SELECT 1"))
            except DependencyUnavailableError as exc:
                raise LeadershipLostError() from exc

    async def fetch_ready(self, now: datetime, limit: int) -> list[StoredOutboxMessage]:
        await self._confirm_leadership()
        rows = await self._run(
            _FETCH, {"now": now, "limit": limit}, write=False, pg_prelude=_PREFER_INDEXES
        )
        if rows:
            # The fetch may have waited (locks, a slow plan): the relay publishes what this
            # returns without awaiting anything else first, so this is the check "before
            # publishing".
            await self._confirm_leadership()
        return [outbox_from_row(r) for r in rows]

    async def _fenced(self, statement: Executable, params: dict[str, Any]) -> None:
        """A leader's write to the outbox: only while its lock session lives and its epoch is
        the current one, else :class:`LeadershipLostError` and nothing written."""
        await self._confirm_leadership()
        if self._epoch is None:
            await self._run(statement, params, write=True)
            return
        written = await self._run(statement, {**params, "epoch": self._epoch}, write=True)
        if not written:
            raise LeadershipLostError()

    async def mark_published(self, seqs: Collection[int], at: datetime) -> None:
        if not seqs:
            return
        params = {"seqs": list(seqs), "at": at}
        if not is_postgresql(self._engine):
            await self._run(_MARK, params, write=True)
        elif self._epoch is not None:
            await self._fenced(_MARK_FENCED, params)
        else:
            await self._run(_MARK_PG, params, write=True)

    async def record_failure(
        self, seq: int, error: str, next_attempt_at: datetime, dead: bool
    ) -> None:
        params = {
            "v_seq": seq,
            "v_error": error,
            "v_next": next_attempt_at,
            "v_dead_at": next_attempt_at if dead else None,
        }
        if self._epoch is not None:
            await self._fenced(_FAIL_FENCED, params)
        else:
            await self._run(_FAIL, params, write=True)

    async def status(self, now: datetime) -> OutboxStatus:
        row = (await self._run(_STATUS, {}, write=False))[0]
        oldest: datetime | None = row["oldest"]
        return OutboxStatus(
            pending=int(row["pending"]),
            dead=int(row["dead"]),
            published=int(row["published"]),
            oldest_pending_age_seconds=(now - oldest).total_seconds() if oldest else None,
        )

    async def retry_dead(self, now: datetime) -> int:
        return int(await self._run(_RETRY, {"now": now}, write=True))

    async def purge_published(self, before: datetime) -> int:
        return int(await self._run(_PURGE, {"before": before}, write=True))

    async def purge_inbox(self, before: datetime) -> int:
        return int(await self._run(_PURGE_INBOX, {"before": before}, write=True))


class OutboxWakeups:
    """Wait for "the outbox has new rows" hints.

    On PostgreSQL a dedicated connection ``LISTEN``s on ``cms_outbox`` (an insert trigger
    notifies at commit). :meth:`notify` wakes waiters in-process (pass it as
    ``on_outbox_commit``). Nothing here ever raises: without a listener :meth:`wait` simply
    times out, and polling is the safety net.
    """

    RETRY_LISTEN_SECONDS = 5.0

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._event = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._retry_at = 0.0

    def notify(self) -> None:
        """Wake the waiters (thread-unsafe; call from the event loop)."""
        self._event.set()

    def _on_notify(self, *_args: object) -> None:
        self._event.set()

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def _listen(self, budget: float) -> None:
        if not is_postgresql(self._engine) or self.listening:
            return
        if time.monotonic() < self._retry_at:
            return
        await self._drop()
        try:
            conn = await asyncio.wait_for(self._engine.connect().start(), max(budget, 0.1))
            try:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.add_listener(NOTIFY_CHANNEL, self._on_notify)
            except BaseException:
                await conn.invalidate()
                await conn.close()
                raise
        except Exception:
            self._retry_at = time.monotonic() + self.RETRY_LISTEN_SECONDS
            log.debug("outbox LISTEN unavailable; polling", exc_info=True)
            return
        self._conn, self._driver = conn, driver
        self._event.set()  # hints may have been missed while not listening: look once

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - the port says so
        """Return when a hint arrives or after ``timeout`` seconds, whichever is first."""
        try:
            await self._listen(timeout)
            if not self._event.is_set():
                await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
        except Exception:  # never fail the relay loop
            log.debug("outbox wake-up wait failed", exc_info=True)
        self._event.clear()

    async def _drop(self) -> None:
        conn, driver = self._conn, self._driver
        self._conn = self._driver = None
        if conn is None:
            return
        try:
            if driver is not None and not driver.is_closed():
                await driver.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            else:
                await conn.invalidate()
            await conn.close()
        except Exception:
            log.debug("closing the LISTEN connection failed", exc_info=True)

    async def close(self) -> None:
        """Stop listening and return the connection."""
        await self._drop()
