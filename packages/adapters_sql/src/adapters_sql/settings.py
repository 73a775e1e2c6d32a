"""The SQL adapter's configuration: ``DATABASE_URL`` and its pool (contract §1)."""

from __future__ import annotations

from urllib.parse import urlsplit

from attrs import frozen

from class_core.env import EnvReader, variable
from class_core.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./class_management.db"
POSTGRESQL_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite"})


def database_kind(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a database URL, else :class:`ConfigurationError`."""
    var = variable("DATABASE_URL")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        _ = parts.port  # an unparsable port raises here, not at connect time
    except ValueError as exc:
        raise ConfigurationError(var, "is not a valid URL") from exc
    if scheme in POSTGRESQL_SCHEMES:
        return "postgresql"
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    raise ConfigurationError(
        var, "must be a postgresql://, postgresql+asyncpg:// or sqlite+aiosqlite:/// URL"
    )


@frozen(kw_only=True)
class SqlSettings:
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = 10
    database_max_overflow: int = 20

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql`` (:func:`database_kind`)."""
        return database_kind(self.database_url)

    @classmethod
    def from_env(cls, reader: EnvReader, *, database_url: str | None = None) -> SqlSettings:
        """Read the variables; a ``database_url`` given (``--database-url``) wins over
        ``DATABASE_URL`` and is the one checked."""
        url = database_url or reader.text("DATABASE_URL") or DEFAULT_DATABASE_URL
        database_kind(url)
        return cls(
            database_url=url,
            database_pool_size=reader.integer("DATABASE_POOL_SIZE", 10, 1, 10_000),
            database_max_overflow=reader.integer("DATABASE_MAX_OVERFLOW", 20, 0, 10_000),
        )
