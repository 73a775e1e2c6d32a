"""PostgreSQL fixtures (see docs/testing.md).

Server, in this order: ``CLASS_MANAGEMENT_SERVICE_TEST_DATABASE_URL`` (a URL whose user may
``CREATE DATABASE``), the local server at ``postgresql://postgres@127.0.0.1:5432/postgres``, a
testcontainers PostgreSQL when a Docker engine answers; otherwise the tests that need it fail
with one line. Every test session works in databases of its own with random names (other
sessions run on the same server at the same time) and drops them at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import build_sql_runtime, create_engine, upgrade
from class_core.runtime import Runtime
from class_core.testing import FixedClock, RecordingNotifier

ENV_VAR = "CLASS_MANAGEMENT_SERVICE_TEST_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "cms_test_"
# Every data table (children first); the seeded courses and the version table stay.
DATA_TABLES = (
    "cms_import_items",
    "cms_imports",
    "cms_student_history",
    "cms_essay_associations",
    "cms_batches",
    "cms_class_students",
    "cms_students",
    "cms_classes",
    "cms_outbox",
    "cms_inbox",
    "cms_changes",
)


def plain_url(url: str) -> str:
    """``postgresql://`` form (what asyncpg and the CLI accept) of any PostgreSQL URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def unreachable_message(url: str) -> str:
    return (
        f"PostgreSQL is not reachable at {_redacted(url)}; "
        f"set {ENV_VAR} or start it (make services)"
    )


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(plain_url(url), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


def _start_container() -> Any:
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver=None)
    container.start()
    return container


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_server_url() -> AsyncIterator[str]:
    """A URL of a PostgreSQL server where this session may create databases."""
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        if not await _reachable(explicit):
            pytest.fail(unreachable_message(explicit), pytrace=False)
        yield plain_url(explicit)
        return
    if await _reachable(LOCAL_URL):
        yield LOCAL_URL
        return
    if await asyncio.to_thread(_docker_answers):
        try:
            container = await asyncio.to_thread(_start_container)
        except Exception:  # no image and no registry: fall through to the one line
            container = None
        if container is not None:
            try:
                yield plain_url(container.get_connection_url())
            finally:
                await asyncio.to_thread(container.stop)
            return
    pytest.fail(unreachable_message(LOCAL_URL), pytrace=False)


class PgDatabaseFactory:
    """Creates fresh databases on the test server; all of them are dropped at session end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    def url_of(self, name: str) -> str:
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    async def __call__(self, *, migrated: bool = False) -> str:
        """A new empty database (``migrated``: upgraded to head); returns its URL."""
        name = f"{DATABASE_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.server_url)
        try:
            try:
                # A linguistic default collation on purpose: the adapter must ask for
                # code-point order itself (COLLATE "C"), whatever the database's default.
                await conn.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE template0 '
                    "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
                )
            except asyncpg.PostgresError:  # no ICU (or PostgreSQL < 15)
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.names.append(name)
        url = self.url_of(name)
        if migrated:
            await upgrade(url)
        return url

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            for name in self.names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.names.clear()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_database_factory(pg_server_url: str) -> AsyncIterator[PgDatabaseFactory]:
    """``await pg_database_factory(migrated=False)`` → URL of a fresh database."""
    factory = PgDatabaseFactory(pg_server_url)
    try:
        yield factory
    finally:
        await factory.drop_all()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_url(pg_database_factory: PgDatabaseFactory) -> str:
    """The session's own database, migrated to head (``postgresql://`` URL)."""
    return await pg_database_factory(migrated=True)


@pytest_asyncio.fixture(loop_scope="session")
async def two_connections(pg_database_factory: PgDatabaseFactory) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh migrated database whose pool holds exactly two connections (for
    tests that count what the pool hands out and gets back)."""
    url = await pg_database_factory(migrated=True)
    engine = create_engine(url, pool_size=2, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url, pool_size=5, max_overflow=5)
    try:
        yield engine
    finally:
        await engine.dispose()


async def truncate_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))


@pytest_asyncio.fixture(loop_scope="session")
async def clean_pg(pg_engine: AsyncEngine) -> AsyncEngine:
    """The session engine over emptied tables (courses kept)."""
    await truncate_all(pg_engine)
    return pg_engine


@pytest.fixture
def pg_clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def pg_notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def pg_runtime(
    clean_pg: AsyncEngine, pg_clock: FixedClock, pg_notifier: RecordingNotifier
) -> Runtime:
    """A runtime on the emptied session database with a fixed clock and a recording notifier."""
    return build_sql_runtime(clean_pg, clock=pg_clock, notifier=pg_notifier)
