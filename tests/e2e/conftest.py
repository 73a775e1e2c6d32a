"""API fixtures: the Litestar app through Litestar's ``AsyncTestClient``.

``api`` runs every test twice: on the in-memory runtime (injected into ``create_app``) and on
PostgreSQL (the app's lifespan opens its own engine on the session's migrated database, since
the test client runs the app on another event loop). Direct use-case calls (seeding batches)
go through the client's portal, i.e. onto the app's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters_sql.envelopes import ENVELOPES
from adapters_sql.migrate import upgrade
from class_api.app import create_app
from class_api.bootstrap import Services
from class_core.clock import SystemClock
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.ports import OutboxStore
from class_core.runtime import Runtime
from class_core.testing import InMemoryOutboxStore, InMemoryStore, memory_runtime
from class_core.use_cases.matching import IngestResult, ingest_suggestions
from class_runtime import Settings
from tests.e2e.cli_harness import inproc

T = TypeVar("T")

OWNER_A = "teacher-a"
OWNER_B = "teacher-b"
INTERNAL_KEY = "internal-test-key"
SERVICE_ID = "essay-lifecycle-service"
A = {"X-User-ID": OWNER_A}
B = {"X-User-ID": OWNER_B}
INTERNAL = {"X-Internal-API-Key": INTERNAL_KEY, "X-Service-ID": SERVICE_ID}
PROBLEM = "application/problem+json"

SuggestionSpec = tuple[UUID, UUID | None, float]
"""(essay_id, suggested student or None, confidence)"""


def settings_for(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "use_mock_repository": True,
        "run_workers": False,
        "internal_api_key": INTERNAL_KEY,
    }
    values.update(overrides)
    return Settings.of(**values)


def assert_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and error code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error_code"] == code
    assert {"type", "title", "detail", "correlation_id"} <= body.keys()
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


def fields_of(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


class ApiHarness:
    """An app under test plus helpers to create data through the API."""

    def __init__(
        self,
        client: AsyncTestClient[Litestar],
        backend: str,
        outbox: OutboxStore | None = None,
    ) -> None:
        self.client = client
        self.backend = backend
        self._outbox = outbox

    @property
    def app(self) -> Litestar:
        app: Litestar = self.client.app
        return app

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``await fn(*args)`` on the app's event loop."""
        return self.client.blocking_portal.call(fn, *args)

    async def create_class(
        self, owner: dict[str, str] = A, name: str = "Klass 9A", course: str = "ENG5"
    ) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/classes", json={"name": name, "course_codes": [course]}, headers=owner
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def create_student(
        self,
        owner: dict[str, str] = A,
        first: str = "Ada",
        last: str = "Lovelace",
        email: str | None = None,
        class_ids: Sequence[str] = (),
        legal: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "person_name": {"first_name": first, "last_name": last},
            "class_ids": list(class_ids),
        }
        if legal is not None:
            payload["person_name"]["legal_full_name"] = legal
        if email is not None:
            payload["email"] = email
        r = await self.client.post("/v1/classes/students", json=payload, headers=owner)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def seed_batch(
        self,
        class_id: str | UUID,
        essays: Sequence[SuggestionSpec],
        *,
        batch_id: UUID | None = None,
        course: str = "ENG5",
    ) -> UUID:
        """Store suggestions for a batch as the consumer would (``ingest_suggestions``)."""
        batch_id = batch_id or uuid4()
        message = SuggestionsMessage(
            message_id=str(uuid4()),
            correlation_id=uuid4(),
            batch_id=batch_id,
            class_id=UUID(str(class_id)),
            course_code=course,
            matches=tuple(
                EssayMatch(
                    essay_id,
                    (Suggestion(student, confidence, ("name in text",)),) if student else (),
                )
                for essay_id, student, confidence in essays
            ),
        )
        result: IngestResult = self.call(ingest_suggestions, self.runtime, message)
        assert result.outcome.value in ("stored", "finalized_empty"), result
        return batch_id

    def events(self) -> list[dict[str, Any]]:
        """Every envelope in the outbox so far (none are published in these tests)."""
        store = self._outbox or self.services.outbox_store
        assert store is not None
        now = SystemClock().now() + timedelta(days=1)
        rows = self.call(store.fetch_ready, now, 100_000)
        return [json.loads(row.message.payload) for row in rows]


@pytest.fixture(params=["memory", "postgres"])
def api_backend(request: pytest.FixtureRequest) -> tuple[str, Litestar, OutboxStore | None]:
    """The app for one storage backend (a plain fixture, so that it may pull the session's
    PostgreSQL fixtures in only when needed). A test module that must also hold on the
    embedded SQLite database overrides this fixture with :func:`app_for_backend` and
    ``params=ALL_BACKENDS``."""
    return app_for_backend(request)


ALL_BACKENDS = ["memory", "postgres", "sqlite"]


def app_for_backend(request: pytest.FixtureRequest) -> tuple[str, Litestar, OutboxStore | None]:
    """The app on ``request.param``: the in-memory adapters, the session's PostgreSQL database
    (emptied), or a new SQLite file migrated to head (the embedded default)."""
    if request.param == "sqlite":
        path = request.getfixturevalue("tmp_path") / "cms.db"
        url = f"sqlite+aiosqlite:///{path}"
        with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever runs in this one
            pool.submit(asyncio.run, upgrade(url)).result()
        return "sqlite", create_app(settings_for(use_mock_repository=False, database_url=url)), None
    if request.param == "memory":
        store = InMemoryStore(ENVELOPES)
        app = create_app(settings_for(), runtime=memory_runtime(store))
        return "memory", app, InMemoryOutboxStore(store)
    pg_url: str = request.getfixturevalue("pg_url")
    request.getfixturevalue("clean_pg")
    return (
        "postgres",
        create_app(settings_for(use_mock_repository=False, database_url=pg_url)),
        None,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def api(api_backend: tuple[str, Litestar, OutboxStore | None]) -> AsyncIterator[ApiHarness]:
    name, app, outbox = api_backend
    async with AsyncTestClient(app) as client:
        yield ApiHarness(client, name, outbox)


@pytest_asyncio.fixture(loop_scope="session")
async def memory_api() -> AsyncIterator[ApiHarness]:
    """The in-memory app only (for tests whose subject is not storage)."""
    store = InMemoryStore(ENVELOPES)
    app = create_app(settings_for(), runtime=memory_runtime(store))
    async with AsyncTestClient(app) as client:
        yield ApiHarness(client, "memory", InMemoryOutboxStore(store))


@pytest.fixture(params=["postgres", "sqlite"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[str]]:
    """For CLI tests on both databases: a function that makes a new database of the kind under
    test, migrated to head (PostgreSQL through ``pg_database_factory``; SQLite by
    ``class-admin db upgrade`` on a file of the test's own), in the test's own loop."""
    if request.param == "postgres":
        factory: Callable[..., Awaitable[str]] = request.getfixturevalue("pg_database_factory")
        return lambda: factory(migrated=True)

    async def sqlite_url() -> str:
        found = f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}"
        assert (await inproc(found, "db", "upgrade")).exit_code == 0
        return found

    return sqlite_url
