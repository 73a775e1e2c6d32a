"""What every command shares: the global options, the settings and the database engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import create_engine
from class_core.settings import Settings


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
        engine = create_engine(
            settings.database_url,
            pool_size=min(settings.database_pool_size, 5),
            max_overflow=0,
        )
        try:
            yield engine
        finally:
            await engine.dispose()


def state_of(ctx: typer.Context) -> CliState:
    """The :class:`CliState` set up by the main callback."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj
