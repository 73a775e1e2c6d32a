"""PostgreSQL faults under the real app (contract §3.1 ``SERVICE_UNAVAILABLE``, §6).

The app talks to PostgreSQL through a fault proxy on a background thread. Requests go through
Litestar's synchronous test client on a worker thread, each bounded by a timeout, so that a
hang is a test failure rather than a stuck run. A connection cut mid-request must answer 503
with ``Retry-After`` (never a 500, never a hang), never leave half a change behind, and the
app must recover on its own once the database is back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters_sql import create_engine
from class_api.app import create_app
from tests.e2e.conftest import A, assert_problem, settings_for
from tests.support.faultproxy import ThreadedFaultProxy, bounded
from tests.support.postgres import PgDatabaseFactory

REQUEST_TIMEOUT = 15.0
CLASS_CREATED = "huleedu.class.created.v1"


class BoundedClient:
    """The app's synchronous test client, called off the event loop with a time limit."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client

    async def request(
        self, method: str, path: str, *, timeout: float = REQUEST_TIMEOUT, **kwargs: Any
    ) -> tuple[httpx.Response, float]:
        return await bounded(self.client.request, method, path, timeout=timeout, **kwargs)


@pytest.fixture
def pg_proxy(pg_server_url: str) -> Iterator[ThreadedFaultProxy]:
    server = make_url(pg_server_url)
    with ThreadedFaultProxy(server.host or "127.0.0.1", server.port or 5432) as proxy:
        yield proxy


def through(url: str, proxy: ThreadedFaultProxy, query: str = "") -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parsed = make_url(url).set(host="127.0.0.1", port=proxy.port)
    rendered = parsed.render_as_string(hide_password=False)
    return rendered + (f"?{query}" if query else "")


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_db(pg_database_factory: PgDatabaseFactory) -> str:
    return await pg_database_factory(migrated=True)


async def open_client(url: str) -> BoundedClient:
    client: TestClient[Any] = TestClient(
        create_app(settings_for(use_mock_repository=False, database_url=url))
    )
    await asyncio.to_thread(client.__enter__)
    return BoundedClient(client)


@pytest_asyncio.fixture(loop_scope="session")
async def proxied_app(fresh_db: str, pg_proxy: ThreadedFaultProxy) -> AsyncIterator[BoundedClient]:
    client = await open_client(through(fresh_db, pg_proxy))
    try:
        yield client
    finally:
        pg_proxy.pass_through()
        await asyncio.to_thread(client.client.__exit__, None, None, None)


async def _classes_and_events(url: str) -> tuple[dict[str, str], dict[str, int]]:
    """Straight from the database (not through the proxy): class id → name, and how many
    ``class.created`` events each class id has in the outbox."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            classes = {
                str(r.id): r.name
                for r in await conn.execute(text("SELECT id, name FROM cms_classes"))
            }
            events: dict[str, int] = {}
            rows = await conn.execute(
                text("SELECT key FROM cms_outbox WHERE topic = :t"), {"t": CLASS_CREATED}
            )
            for r in rows:
                events[r.key] = events.get(r.key, 0) + 1
    finally:
        await engine.dispose()
    return classes, events


def _later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.slow
async def test_a_connection_cut_mid_request_is_503_and_the_api_recovers(
    proxied_app: BoundedClient, pg_proxy: ThreadedFaultProxy, fresh_db: str
) -> None:
    api = proxied_app
    warm, _ = await api.request(
        "POST", "/v1/classes", json={"name": "warm", "course_codes": ["ENG5"]}, headers=A
    )
    assert warm.status_code == 201

    # How long one write takes when every packet is held 100 ms …
    pg_proxy.latency(100)
    slow, write_time = await api.request(
        "POST", "/v1/classes", json={"name": "slow", "course_codes": ["SV1"]}, headers=A
    )
    assert slow.status_code == 201
    # … then cut every database connection at moments spread over such a write (first
    # statement … commit … after): each answer is a 201 or a 503 problem, quickly; never a
    # 500 or a hang.
    answers: dict[str, int] = {}
    for i, fraction in enumerate((0.05, 0.3, 0.6, 0.9, 1.2, 1.6, 2.0)):
        delay = write_time * fraction
        pg_proxy.latency(100)
        timer = _later(delay, pg_proxy.cut)
        name = f"cut-{i}"
        r, took = await api.request(
            "POST", "/v1/classes", json={"name": name, "course_codes": ["SV1"]}, headers=A
        )
        timer.join()
        pg_proxy.pass_through()
        answers[name] = r.status_code
        assert r.status_code in (201, 503), r.text
        if r.status_code == 503:
            assert_problem(r, 503, "SERVICE_UNAVAILABLE")
            assert int(r.headers["retry-after"]) > 0
            assert "Traceback" not in r.text
            assert "cms_" not in r.text
        assert took < 5.0
        # Recovers without a restart: the very next request works (also when the cut hit
        # an idle pooled connection).
        after, _ = await api.request("GET", "/v1/classes", headers=A, params={"limit": 1})
        assert after.status_code == 200, after.text
    assert 503 in answers.values(), "no cut landed mid-request"
    assert 201 in answers.values(), "no write completed before its cut"

    # The database is down (connections refused), then back.
    pg_proxy.drop()
    pg_proxy.cut()
    down, took = await api.request("GET", "/v1/classes", headers=A)
    assert_problem(down, 503, "SERVICE_UNAVAILABLE")
    assert took < 5.0
    health, _ = await api.request("GET", "/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    pg_proxy.pass_through()
    health, _ = await api.request("GET", "/healthz")
    assert health.json()["status"] == "healthy"
    listed, _ = await api.request("GET", "/v1/classes", headers=A, params={"limit": 100})
    assert listed.status_code == 200

    # Never half a change: every stored class has exactly one ClassCreatedV1 in the outbox,
    # every 201 was stored, and a 503 either stored the whole change or nothing.
    classes, events = await _classes_and_events(fresh_db)
    assert events == {class_id: 1 for class_id in classes}
    stored_names = set(classes.values())
    assert {n for n, status in answers.items() if status == 201} <= stored_names
    assert {c["name"] for c in listed.json()["classes"]} == stored_names


@pytest.mark.slow
async def test_a_stalled_database_answers_503_within_the_statement_timeout(
    fresh_db: str, pg_proxy: ThreadedFaultProxy
) -> None:
    # A partition (no RST, no FIN) is only noticed by a timeout: docs/operations.md
    # recommends ``command_timeout`` in the URL for that reason.
    api = await open_client(through(fresh_db, pg_proxy, "command_timeout=1"))
    try:
        ok, _ = await api.request("GET", "/v1/classes", headers=A)
        assert ok.status_code == 200
        pg_proxy.stall()
        stalled, took = await api.request("GET", "/v1/classes", headers=A)
        assert_problem(stalled, 503, "SERVICE_UNAVAILABLE")
        assert took < 8.0
        health, took = await api.request("GET", "/healthz")
        assert health.status_code == 503
        assert took < 4.0  # the probe has its own 2 s limit
        pg_proxy.pass_through()
        statuses = []
        for _ in range(3):
            r, _ = await api.request("GET", "/v1/classes", headers=A)
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
        assert statuses[-1] == 200, statuses
    finally:
        pg_proxy.pass_through()
        await asyncio.to_thread(api.client.__exit__, None, None, None)
