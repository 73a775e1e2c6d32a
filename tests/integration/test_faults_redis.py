"""Redis faults under the real app (contract §5.4, §3.3 ``/healthz``).

Redis sits behind a fault proxy. While it stalls (a partition) or refuses connections,
requests keep working and stay fast (notifications are best effort), ``/healthz`` says
``degraded`` with 200, and once Redis is back the notifications flow again without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from litestar.testing import TestClient

from class_api.app import create_app
from tests.e2e.conftest import settings_for
from tests.support.faultproxy import ThreadedFaultProxy, bounded

FAST = 0.45  # below the notifier's own 0.5 s Redis timeout: a request never waits for Redis


class App:
    def __init__(self, client: TestClient[Any], teacher: str) -> None:
        self.client = client
        self.headers = {"X-User-ID": teacher}
        self.created = 0

    async def create_class(self) -> tuple[httpx.Response, float]:
        self.created += 1
        body = {"name": f"R{self.created}", "course_codes": ["ENG6"]}
        return await bounded(self.client.post, "/v1/classes", json=body, headers=self.headers)

    async def health(self) -> dict[str, Any]:
        r, took = await bounded(self.client.get, "/healthz")
        assert r.status_code == 200, r.text  # Redis never makes the service unhealthy
        assert took < 4.0
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[ThreadedFaultProxy]:
    parts = urlsplit(redis_url)
    with ThreadedFaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield proxy


@pytest_asyncio.fixture(loop_scope="session")
async def app(
    redis_url: str, redis_proxy: ThreadedFaultProxy, redis_namespace: str
) -> AsyncIterator[App]:
    parts = urlsplit(redis_url)
    proxied = parts._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    client: TestClient[Any] = TestClient(create_app(settings_for(redis_url=proxied)))
    await asyncio.to_thread(client.__enter__)
    try:
        yield App(client, f"{redis_namespace}-teacher")
    finally:
        redis_proxy.pass_through()
        await asyncio.to_thread(client.__exit__, None, None, None)


async def _notified(pubsub: Any, timeout: float) -> list[dict[str, Any]]:
    """Messages that arrive on the subscription within ``timeout`` seconds."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            received.append(json.loads(message["data"]))
    return received


@pytest.mark.slow
async def test_redis_stalled_or_down_leaves_requests_fast_and_health_degraded(
    app: App, redis_proxy: ThreadedFaultProxy, redis_url: str
) -> None:
    listener = aioredis.Redis.from_url(redis_url)  # straight to Redis, not through the proxy
    pubsub = listener.pubsub()
    await pubsub.subscribe(f"ws:{app.headers['X-User-ID']}")
    try:
        r, _ = await app.create_class()
        assert r.status_code == 201
        seen = await _notified(pubsub, 2.0)
        assert [m["event"] for m in seen] == ["class_created"]
        assert (await app.health())["status"] == "healthy"

        for fault in ("stall", "down"):
            if fault == "stall":  # a partition: connections hang
                redis_proxy.stall()
            else:  # refused: open connections are reset, new ones closed at once
                redis_proxy.drop()
                redis_proxy.cut()
            for _ in range(5):
                r, took = await app.create_class()
                assert r.status_code == 201, r.text
                assert took < FAST, f"a request waited {took:.2f}s (Redis: {fault})"
            health = await app.health()
            assert health["status"] == "degraded"
            assert health["checks"] == {
                "database": "ok",
                "kafka": "not_configured",
                "redis": "unavailable",
            }
            listed, _ = await bounded(app.client.get, "/v1/classes", headers=app.headers)
            assert listed.json()["pagination"]["total"] == app.created

        redis_proxy.pass_through()
        assert (await app.health())["status"] == "healthy"
        # Best effort: what was sent while Redis was down is gone, but new notifications
        # arrive again once the notifier's back-off has passed (no restart).
        deadline = time.monotonic() + 20
        back: list[dict[str, Any]] = []
        while not back and time.monotonic() < deadline:
            r, took = await app.create_class()
            assert r.status_code == 201
            assert took < FAST
            back = await _notified(pubsub, 0.5)
        assert back, "notifications did not resume after Redis came back"
        assert back[0]["event"] == "class_created"
    finally:
        await pubsub.aclose()
        await listener.aclose()
