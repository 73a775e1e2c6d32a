"""Programmatic migrations (Alembic, shipped in ``adapters_sql/migrations``).

Processes never migrate on their own: they call :func:`ensure_at_head` and stop with one line
naming ``class-admin db upgrade`` when the schema is behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql.engine import (
    SQLITE_BEGIN_OPTION,
    create_engine,
    is_postgresql,
    release_advisory_lock,
)
from adapters_sql.errors import translate_errors
from adapters_sql.schema import VERSION_TABLE
from class_core.errors import ClassManagementError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_lock key serialising concurrent upgrades ("cms_migr").
MIGRATION_LOCK_KEY = 0x636D735F6D696772
UPGRADE_COMMAND = "class-admin db upgrade"

if TYPE_CHECKING:
    from alembic.config import Config

EngineOrUrl = AsyncEngine | str


class SchemaNotAtHeadError(ClassManagementError):
    """The database schema is missing or behind the code's migrations."""

    code = "SCHEMA_NOT_AT_HEAD"

    def __init__(self, current: str | None, head: str) -> None:
        where = f"at revision {current}, not at {head}" if current else "not initialised"
        super().__init__(f"The database schema is {where}; run `{UPGRADE_COMMAND}`")
        self.current = current
        self.head = head


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # Alembic loads only when migrations are needed

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@asynccontextmanager
async def _engine(target: EngineOrUrl) -> AsyncIterator[AsyncEngine]:
    if isinstance(target, AsyncEngine):
        yield target
        return
    engine = create_engine(target, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


def head() -> str:
    """The newest revision the code knows."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    if found is None:  # pragma: no cover - the package ships revisions
        raise RuntimeError("no migration revisions found")
    return found


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def current(target: EngineOrUrl) -> str | None:
    """The database's revision, or ``None`` when it was never migrated."""
    async with _engine(target) as engine:
        with translate_errors():
            async with engine.connect() as conn:
                reader = await conn.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
                return await reader.run_sync(_current_sync)


async def is_at_head(target: EngineOrUrl) -> bool:
    """Whether the database's revision is :func:`head`."""
    return await current(target) == head()


async def ensure_at_head(target: EngineOrUrl) -> None:
    """Raise :class:`SchemaNotAtHeadError` unless the schema is at :func:`head`."""
    found, wanted = await current(target), head()
    if found != wanted:
        raise SchemaNotAtHeadError(found, wanted)


def _migrate_sync(connection: Connection, action: str, revision: str) -> None:
    from alembic import command

    config = _config(connection)
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def _migrate(target: EngineOrUrl, action: str, revision: str) -> None:
    async with _engine(target) as engine:
        pg = is_postgresql(engine)
        with translate_errors():
            async with engine.connect() as conn:
                # One transaction for the whole run (Alembic joins it); on PostgreSQL a
                # session-level advisory lock makes concurrent runs wait for each other.
                await conn.begin()
                if pg:
                    await conn.execute(
                        text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                try:
                    await conn.run_sync(_migrate_sync, action, revision)
                    await conn.commit()
                finally:
                    if pg:
                        await release_advisory_lock(conn, MIGRATION_LOCK_KEY)


async def upgrade(target: EngineOrUrl, revision: str = "head") -> None:
    """Migrate up to ``revision`` (default: head). Safe to run from several processes at
    once on PostgreSQL; a database already at head is left untouched."""
    await _migrate(target, "upgrade", revision)


async def downgrade(target: EngineOrUrl, revision: str = "base") -> None:
    """Migrate down to ``revision`` (default: ``base``, which drops every ``cms_`` table)."""
    await _migrate(target, "downgrade", revision)
