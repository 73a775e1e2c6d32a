"""What every command shares: the global options, the settings, the database engine and the
runtime the core's use cases run with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters_sql
from class_core.env import PREFIX
from class_core.errors import ConfigurationError
from class_core.runtime import Runtime
from class_runtime import Settings, open_runtime


class CliState:
    """Global options of ``class-admin``; settings are read lazily, when a command runs."""

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        """The service's configuration (environment), ``--database-url`` winning."""
        if self._settings is None:
            self._settings = Settings.from_env(database_url=self.database_url)
        return self._settings

    def database_label(self) -> str:
        """The database URL without its password (for messages)."""
        url = self.database_url or self.settings().database_url
        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL is reported by the settings themselves
            return "the configured database"

    @asynccontextmanager
    async def engine(self) -> AsyncIterator[AsyncEngine]:
        """An engine on the configured database, disposed afterwards."""
        settings = self.settings()
        engine = adapters_sql.create_engine(
            settings.database_url,
            pool_size=min(settings.database_pool_size, 5),
            max_overflow=0,
        )
        try:
            yield engine
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def runtime(self) -> AsyncIterator[tuple[Runtime, AsyncEngine]]:
        """The services' runtime (:func:`class_runtime.open_runtime`: SQL adapters, matching
        policy, Redis notifier when ``REDIS_URL`` is set) on a schema that must be at head,
        with a small pool."""
        settings = self.settings()
        if settings.use_mock_repository:
            raise ConfigurationError(
                PREFIX + "USE_MOCK_REPOSITORY",
                "class-admin works on a database; the in-memory store lives inside one process",
            )
        async with open_runtime(
            settings, pool_size=min(settings.database_pool_size, 5), max_overflow=0
        ) as opened:
            assert opened.engine is not None  # SQL: the in-memory store was refused above
            yield opened.runtime, opened.engine


def state_of(ctx: typer.Context) -> CliState:
    """The :class:`CliState` set up by the main callback."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj
