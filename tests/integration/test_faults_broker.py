"""A broker outage under the real app (contract §6): the API (``RUN_WORKERS=true`` on
PostgreSQL, so its own relay runs) keeps accepting writes while Kafka is down, ``/healthz`` is
``degraded``, and once the broker is back the outbox delivers every event recorded meanwhile:
none lost, in order per key, repeats only as the same event id with the same bytes.

The broker is unreachable behind a fault proxy rather than stopped: the in-memory test broker
restarts empty and then acknowledges records for topics it no longer has without storing them,
which would hide (or fake) a loss. It advertises the proxy's address, so every client
connection goes through the proxy.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple
from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord
from litestar.testing import TestClient
from sqlalchemy import text

from adapters_sql import create_engine
from class_api.app import create_app
from class_core.events import PUBLISHED_TOPICS
from tests.e2e.conftest import settings_for
from tests.support.broker import (
    free_port,
    header,
    kafka_answers,
    read_records,
    resolve_broker_binary,
)
from tests.support.faultproxy import ThreadedFaultProxy, bounded
from tests.support.postgres import PgDatabaseFactory


class OutboxRow(NamedTuple):
    seq: int
    event_id: str
    topic: str
    key: str
    payload: str
    published: bool
    dead: bool
    attempts: int


async def outbox_rows(url: str) -> list[OutboxRow]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT seq, event_id, topic, key, payload, published_at IS NOT NULL, "
                    "dead_at IS NOT NULL, attempts FROM cms_outbox ORDER BY seq"
                )
            )
            return [OutboxRow(r[0], str(r[1]), *r[2:]) for r in result]
    finally:
        await engine.dispose()


async def wait_for(
    check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def assert_delivered(
    records: Sequence[ConsumerRecord[bytes, bytes]], rows: Sequence[OutboxRow]
) -> None:
    """Every row is on the broker; per (topic, key) the first copies come in outbox order;
    a repeat carries the same event id and the same bytes; nothing unknown was published."""
    by_id = {row.event_id: row for row in rows}
    seen: dict[tuple[str, str], list[str]] = {}
    for record in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        event_id = header(record, "event_id")
        if event_id not in by_id:
            continue
        row = by_id[event_id]
        assert record.topic == row.topic
        assert record.key == row.key.encode()
        assert record.value == row.payload.encode(), "a repeat must be the same bytes"
        order = seen.setdefault((row.topic, row.key), [])
        if event_id not in order:
            order.append(event_id)
    missing = set(by_id) - {i for ids in seen.values() for i in ids}
    assert not missing, f"{len(missing)} events never reached the broker"
    for (topic, key), ids in seen.items():
        expected = [row.event_id for row in rows if (row.topic, row.key) == (topic, key)]
        assert ids == expected, f"order broken for {topic} key {key}"


class ProxiedBroker:
    """A private test broker whose clients all connect through a fault proxy."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proxy = ThreadedFaultProxy("127.0.0.1", self.port)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return self.proxy.address

    def __enter__(self) -> ProxiedBroker:
        self.proxy.start()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://{self.proxy.address}"
        self._proc = subprocess.Popen(
            [resolve_broker_binary(), "broker", "--listener-url", url,
             "--advertised-listener-url", advertised],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not kafka_answers("127.0.0.1", self.port, 0.5):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                pytest.fail("the test broker did not start", pytrace=False)
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(5)
        self.proxy.stop()


@pytest.fixture
def proxied_broker() -> Iterator[ProxiedBroker]:
    with ProxiedBroker() as broker:
        yield broker


@pytest.mark.slow
async def test_api_writes_survive_a_broker_outage_and_are_delivered_later_in_order(
    pg_database_factory: PgDatabaseFactory, proxied_broker: ProxiedBroker
) -> None:
    url = await pg_database_factory(migrated=True)
    broker = proxied_broker
    settings = settings_for(
        use_mock_repository=False,
        database_url=url,
        run_workers=True,
        kafka_bootstrap_servers=broker.bootstrap,
        kafka_enable_idempotence=False,  # the test broker lacks InitProducerId
        kafka_consumer_group=f"cms-faults-{uuid4()}",
    )
    teacher = {"X-User-ID": f"teacher-{uuid4()}"}
    client: TestClient[Any] = TestClient(create_app(settings))
    await asyncio.to_thread(client.__enter__)
    try:

        async def call(method: str, path: str, **kwargs: Any) -> Any:
            r, took = await bounded(client.request, method, path, headers=teacher, **kwargs)
            assert r.status_code < 300, r.text
            assert took < 2.0, f"{method} {path} took {took:.2f}s"
            return r.json()

        async def pending() -> int:
            return sum(1 for row in await outbox_rows(url) if not row.published)

        first = await call("POST", "/v1/classes", json={"name": "före", "course_codes": ["SV2"]})
        await wait_for(lambda: _is(pending, 0), timeout=20, what="the first events")

        broker.proxy.drop()  # the broker is unreachable: open connections reset, new ones refused
        broker.proxy.cut()
        before = {row.event_id for row in await outbox_rows(url)}
        cls = await call("POST", "/v1/classes", json={"name": "under", "course_codes": ["SV2"]})
        for i in range(4):  # one key, several events: their order must hold
            await call("PUT", f"/v1/classes/{cls['id']}", json={"name": f"under {i}"})
        for i in range(5):
            student = await call(
                "POST",
                "/v1/classes/students",
                json={
                    "person_name": {"first_name": "Åsa", "last_name": f"Ö{i}"},
                    "class_ids": [cls["id"], first["id"]],
                },
            )
            await call(
                "PUT",
                f"/v1/classes/students/{student['id']}",
                json={"remove_class_ids": [first["id"]]},
            )
        health, _ = await bounded(client.get, "/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["checks"]["kafka"] == "unavailable"
        await asyncio.sleep(1.0)  # a few relay rounds against the unreachable broker
        during = [row for row in await outbox_rows(url) if row.event_id not in before]
        assert len(during) >= 1 + 1 + 4 + 5 * 4
        assert not any(row.published for row in during)

        broker.proxy.pass_through()
        await wait_for(lambda: _is(pending, 0), timeout=60, what="delivery after the outage")
        health, _ = await bounded(client.get, "/healthz")
        assert health.json()["status"] == "healthy"
    finally:
        await asyncio.to_thread(client.__exit__, None, None, None)

    rows = await outbox_rows(url)
    # An outage is never an event's own failure: no attempts counted, nothing dead.
    assert [(row.dead, row.attempts) for row in rows] == [(False, 0)] * len(rows)
    during = [row for row in rows if row.event_id not in before]
    wanted = {row.event_id for row in during}
    records = await read_records(
        broker.bootstrap,
        PUBLISHED_TOPICS,
        until=lambda rs: wanted <= {header(r, "event_id") for r in rs},
        timeout=20,
    )
    assert_delivered(records, during)


async def _is(count: Callable[[], Any], expected: int) -> bool:
    return bool(await count() == expected)
