"""Engines for PostgreSQL (asyncpg) and SQLite (aiosqlite), and the reachability check."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from adapters_sql.errors import translate_errors
from class_core import telemetry
from class_core.errors import ConfigurationError

log = logging.getLogger(__name__)

DATABASE_URL_VARIABLE = "CLASS_MANAGEMENT_SERVICE_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_SECONDS = 10.0
POOL_TIMEOUT_SECONDS = 15.0
# Execution option: how a SQLite transaction begins (``IMMEDIATE`` unless said otherwise).
SQLITE_BEGIN_OPTION = "cms_sqlite_begin"

_PG_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_SQLITE_BUSY = re.compile(r"database is locked|busy", re.IGNORECASE)
_sqlite_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def normalize_url(url: str | URL) -> URL:
    """The async driver URL for a ``postgresql://``, ``postgres://``, ``postgresql+asyncpg://``
    or ``sqlite[+aiosqlite]:///`` URL; anything else is a :class:`ConfigurationError`."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ConfigurationError(DATABASE_URL_VARIABLE, "is not a valid database URL") from exc
    scheme = parsed.drivername.lower()
    if scheme in _PG_SCHEMES:
        return parsed.set(drivername="postgresql+asyncpg")
    if scheme in _SQLITE_SCHEMES:
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ConfigurationError(
        DATABASE_URL_VARIABLE,
        "must be a postgresql://, postgresql+asyncpg:// or sqlite+aiosqlite:/// URL",
    )


def is_postgresql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    """An async engine for ``url``; nothing connects until first use.

    PostgreSQL goes through asyncpg. SQLite gets WAL, a busy timeout, foreign keys on every
    connection and real transactions: SQLAlchemy emits ``BEGIN IMMEDIATE`` itself (the
    driver's own implicit transactions are switched off), so that a transaction that reads
    and then writes never fails half-way when another process (API and CLI) writes too.
    """
    parsed = normalize_url(url)
    if parsed.drivername == "postgresql+asyncpg":
        parsed, driver_options = _asyncpg_url_options(parsed)
        pg_engine = create_async_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            connect_args={"timeout": CONNECT_TIMEOUT_SECONDS, **driver_options},
            # Statement parameters (names, emails) stay out of error messages and so out of logs.
            hide_parameters=True,
        )
        event.listen(pg_engine.sync_engine, "checkout", _discard_closed_connection)
        telemetry.engine_created(pg_engine)  # traces its statements when tracing is on
        return pg_engine
    memory = parsed.database in (None, "", ":memory:")
    options: dict[str, Any] = {} if memory else {"pool_size": pool_size, "max_overflow": 0}
    engine = create_async_engine(parsed, pool_timeout=60.0, hide_parameters=True, **options)
    _configure_sqlite(engine.sync_engine)
    telemetry.engine_created(engine)
    return engine


# asyncpg connection options that may be given in the URL's query string. SQLAlchemy hands
# query values to the driver as strings, and asyncpg needs numbers for these. Behind PgBouncer
# in transaction mode, add ``?statement_cache_size=0&prepared_statement_cache_size=0`` (the
# latter is SQLAlchemy's own and already understood); ``command_timeout`` (seconds) bounds
# every statement, so a stalled server turns into 503s instead of hung requests.
_ASYNCPG_INT_OPTIONS = (
    "statement_cache_size",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
)


def _asyncpg_url_options(url: URL) -> tuple[URL, dict[str, int]]:
    """Move the numeric asyncpg options out of ``url``'s query, as numbers."""
    query = dict(url.query)
    options: dict[str, int] = {}
    for name in _ASYNCPG_INT_OPTIONS:
        if name not in query:
            continue
        value = query.pop(name)
        text_value = value if isinstance(value, str) else (value[-1] if value else "")
        try:
            number = int(text_value)
        except ValueError:
            number = -1
        if number < 0:
            raise ConfigurationError(
                DATABASE_URL_VARIABLE, f"{name} must be a whole number >= 0"
            ) from None
        options[name] = number
    return (url.set(query=query) if options else url), options


def _discard_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection that the server (or the network) has already closed is replaced at
    checkout, without a round trip: after a database restart or a cut connection the next
    request gets a fresh connection instead of a 503. A connection still inside a transaction
    (never pooled so on purpose: a unit of work ends its transaction or closes the connection,
    see ``SqlTransaction.end``) is replaced the same way rather than handed out."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")
    if driver is not None and driver.is_in_transaction():
        raise DisconnectionError("the pooled connection was left inside a transaction")


def use_wal(cursor: Any, sleep: Callable[[float], object]) -> None:
    """Put the database file in WAL mode (a property of the file, so this is done once).

    Converting the journal needs the file to itself and SQLite does *not* run the busy handler
    for ``PRAGMA journal_mode = WAL``: two processes opening a fresh file at once (two
    ``class-admin db upgrade``, the API and its workers) could fail at once with "database is
    locked". So the mode is read first (no lock when it is already WAL) and the conversion is
    retried with back-off within the busy timeout; someone else converting meanwhile is fine.
    ``sleep`` waits without blocking the caller's event loop."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchone()  # the mode the file is in now ("memory" for :memory:)
            return
        except Exception as exc:
            if not _SQLITE_BUSY.search(str(exc)) or time.monotonic() + pause > deadline:
                raise
        sleep(pause)
        pause = min(pause * 2, 0.1)
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return


def _configure_sqlite(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Turn off the driver's implicit BEGIN; the "begin" hook below emits it explicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            use_wal(cursor, lambda seconds: await_only(asyncio.sleep(seconds)))
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {'DEFERRED' if mode == 'DEFERRED' else 'IMMEDIATE'}")


def sqlite_write_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    """One writer at a time inside this process on SQLite (queued in asyncio rather than
    spinning in SQLite's busy handler); ``None`` on PostgreSQL."""
    if is_postgresql(engine):
        return None
    lock = _sqlite_locks.get(engine.sync_engine)
    if lock is None:
        lock = _sqlite_locks[engine.sync_engine] = asyncio.Lock()
    return lock


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raises :class:`~class_core.errors.DependencyUnavailableError` when
    the database cannot be reached."""
    with translate_errors():
        async with engine.connect() as conn:
            reader = await conn.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
            await reader.execute(text("SELECT 1"))


async def discard_connection(conn: AsyncConnection) -> None:
    """Invalidate a connection that failed, so that the pool never hands it out again."""
    try:
        await conn.invalidate()
    except Exception:  # pragma: no cover - already gone
        log.debug("invalidate failed", exc_info=True)


async def release_advisory_lock(conn: AsyncConnection, key: int) -> None:
    """Release a session-level advisory lock; when that fails the session (and the lock with
    it) is gone or unusable, so the connection is discarded rather than pooled."""
    try:
        if conn.in_transaction():
            await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        await conn.commit()
    except Exception:
        log.debug("advisory unlock failed; discarding the connection", exc_info=True)
        await discard_connection(conn)
