"""``UnitOfWork`` on SQL: one connection, one transaction, shared by the repositories."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters_sql.batches import SqlBatchRepository
from adapters_sql.changes import SqlChangeLog
from adapters_sql.classes import SqlClassRepository
from adapters_sql.engine import discard_connection, is_postgresql, sqlite_write_lock
from adapters_sql.envelopes import ENVELOPES
from adapters_sql.errors import translate_errors
from adapters_sql.history import SqlStudentHistory
from adapters_sql.imports import SqlImportHistory
from adapters_sql.messaging import SqlInbox, SqlOutbox
from adapters_sql.privacy import SqlPersonalData
from adapters_sql.students import SqlStudentRepository
from adapters_sql.transaction import SqlTransaction
from class_core.changes import changes_of, with_touched
from class_core.events import DomainEvent, TeacherNotification
from class_core.model import Aggregate
from class_core.recording import RecordedEvents

log = logging.getLogger(__name__)

OutboxCommitCallback = Callable[[], None]


class SqlUnitOfWork:
    """One transaction; leaving without :meth:`commit` rolls back. Not reusable concurrently."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_outbox_commit: OutboxCommitCallback | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self._lock: asyncio.Lock | None = sqlite_write_lock(engine)
        # PostgreSQL: reads without a transaction (see adapters_sql.transaction). SQLite keeps
        # its serialised transactions.
        self._postgresql = is_postgresql(engine)
        self._autocommit = read_only and self._postgresql
        self._engine = engine
        self._on_outbox_commit = on_outbox_commit
        self._tx = SqlTransaction(read_only=read_only)
        self._conn: AsyncConnection | None = None
        self._committed = False
        self.classes = SqlClassRepository(self._tx)
        self.students = SqlStudentRepository(self._tx)
        self.batches = SqlBatchRepository(self._tx)
        self.outbox = SqlOutbox(self._tx)
        self.inbox = SqlInbox(self._tx)
        self.history = SqlStudentHistory(self._tx)
        self.personal_data = SqlPersonalData(self._tx)
        self.imports = SqlImportHistory(self._tx)
        self.changes = SqlChangeLog(self._tx)
        self._recorded = RecordedEvents(ENVELOPES)  # rendered at commit, in this adapter

    def collect(self, aggregate: Aggregate) -> None:
        """See ``UnitOfWork.collect``: pulled by :meth:`commit`."""
        self._recorded.collect(aggregate)

    def record(
        self, events: Sequence[DomainEvent], correlation_id: UUID, at: datetime
    ) -> list[TeacherNotification]:
        """See ``UnitOfWork.record``: written to the outbox by :meth:`commit`."""
        return self._recorded.record(events, correlation_id, at)

    async def __aenter__(self) -> Self:
        if self._lock is not None:
            await self._lock.acquire()
        try:
            with translate_errors():
                driver = None
                if self._postgresql:
                    self._conn = await _connect_pooled(self._engine)
                    driver = self._conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
                else:
                    self._conn = await self._engine.connect()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._tx.bind(self._conn, driver)
        try:
            await self._tx.begin()  # PostgreSQL: the write transaction, on the driver
        except BaseException:
            conn, self._conn = self._conn, None
            self._tx.bind(None)
            try:
                if conn is not None:
                    await _release(conn, rollback=False, discard=True)  # a failed BEGIN
            finally:
                if self._lock is not None:
                    self._lock.release()
            raise
        self._tx.added_outbox = False
        self._committed = False
        self._recorded.take()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await self._leave(conn, raised=exc_type is not None)
        finally:
            if self._lock is not None:
                self._lock.release()
        if self._committed and self._tx.added_outbox and self._on_outbox_commit is not None:
            try:
                self._on_outbox_commit()
            except Exception:  # a wake-up hint must never fail a committed change
                log.exception("on_outbox_commit callback failed")

    async def _leave(self, conn: AsyncConnection, *, raised: bool) -> None:
        """End what is still open and return the connection to the pool."""
        try:
            reusable = await self._tx.end()  # PostgreSQL: ROLLBACK when not committed
        except BaseException:
            _return_unused(conn)  # closed by end(): the pool replaces it at checkout
            raise
        finally:
            used_sqlalchemy = self._tx.used_sqlalchemy
            self._tx.bind(None)
        if not reusable:
            await _release(conn, rollback=False, discard=True)
        elif self._postgresql and not raised and (self._committed or not used_sqlalchemy):
            # Nothing open and nothing SQLAlchemy must reset with I/O (its connection is in
            # autocommit once it executed anything): returned without a greenlet.
            _return_unused(conn)
        else:
            await _release(conn, rollback=conn.in_transaction())

    async def commit(self) -> list[TeacherNotification]:
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered (use `async with uow:`)")
        if self._tx.read_only:
            raise RuntimeError("a read-only unit of work does not commit")
        history = self._recorded.pull_collected()  # what the aggregates recorded
        notes = self._recorded.notifications()
        changes = with_touched(changes_of(self._recorded.events()), self._tx.touched)
        # Last before the commit, with the outbox and history rows (one statement for an API
        # write): the feed's rows are locked last, in one order (see adapters_sql.changes),
        # and on SQLite their seq order is commit order.
        await self.changes.write_commit(changes, self._recorded.take(), history)
        await self._tx.commit()
        self._committed = True
        return notes


async def _connect_pooled(engine: AsyncEngine) -> AsyncConnection:
    """A connection for a unit of work on PostgreSQL, without a greenlet when the pool holds
    an idle connection: SQLAlchemy's ``AsyncEngine.connect`` runs the synchronous checkout in
    a greenlet (and ``close`` the checkin), which costs more than a primary-key read's own
    Python work (≈ 45 µs against ≈ 9 µs for the same checkout and checkin called directly,
    measured for issue 15). Taking an idle connection does no I/O; when it would (the pool
    has to open a connection, or the idle one was closed by the server and is replaced), the
    ordinary greenlet path is taken. A write transaction still begins with its first statement
    through SQLAlchemy (in a greenlet), as always."""
    sync_engine = engine.sync_engine
    checkedin = getattr(sync_engine.pool, "checkedin", None)
    if checkedin is None or checkedin() == 0:
        return await engine.connect()
    try:
        sync_conn = sync_engine.connect()
    except MissingGreenlet:  # the idle connection needed a reconnect: I/O, so a greenlet
        return await engine.connect()
    return AsyncConnection(engine, sync_conn)


def _return_unused(conn: AsyncConnection) -> None:
    """Return a connection with no transaction open and nothing to reset (a read-only unit of
    work's that only the driver path used, or a committed one's): the checkin's reset does no
    I/O (the asyncpg adapter rolls back only a transaction it began), so no greenlet."""
    sync_conn = conn.sync_connection
    try:
        if sync_conn is not None:
            sync_conn.close()
    except Exception:  # pragma: no cover - as in _release: a failed return never fails a read
        log.debug("returning the connection failed", exc_info=True)


async def _release(conn: AsyncConnection, *, rollback: bool, discard: bool = False) -> None:
    """Roll back (when needed) and return the connection; a broken one (``discard``: known to
    be) is invalidated first, so that the pool never hands it out again."""
    try:
        if discard:
            await discard_connection(conn)
        elif rollback:
            await conn.rollback()
    except Exception:
        log.debug("rollback failed; discarding the connection", exc_info=True)
        await discard_connection(conn)
    finally:
        try:
            await conn.close()
        except Exception:  # pragma: no cover - closing a broken connection
            log.debug("closing the connection failed", exc_info=True)


class SqlUnitOfWorkFactory:
    """Callable returning a new :class:`SqlUnitOfWork` (a ``UnitOfWorkFactory``).

    ``on_outbox_commit`` is called in-process after each successful commit that added
    outbox rows (e.g. to wake a relay in the same process without waiting for a poll).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        on_outbox_commit: OutboxCommitCallback | None = None,
        read_only: bool = False,
    ) -> None:
        self.engine = engine
        self.on_outbox_commit = on_outbox_commit
        self.read_only = read_only

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.on_outbox_commit, read_only=self.read_only)
