"""Real-time notifications over Redis (contract §5.4) and the health probes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from adapters_messaging import RedisNotifier, kafka_ping, redis_ping
from adapters_sql.envelopes import ENVELOPES
from class_core import notifications
from class_core.clock import SystemClock
from class_core.runtime import RequestContext
from class_core.testing import InMemoryOutboxStore, InMemoryStore, memory_runtime
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.broker import free_port

UNREACHABLE_REDIS = f"redis://127.0.0.1:{free_port()}/0"


@pytest_asyncio.fixture(loop_scope="session")
async def notifier(redis_url: str) -> AsyncIterator[RedisNotifier]:
    n = RedisNotifier(redis_url)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def next_message(pubsub: aioredis.client.PubSub, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            loaded: dict[str, Any] = json.loads(message["data"])
            return loaded
    pytest.fail("no message on the channel")


async def test_notifications_arrive_on_the_teacher_channel(
    redis_url: str, redis_namespace: str, notifier: RedisNotifier
) -> None:
    teacher = f"{redis_namespace}-teacher"
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(f"ws:{teacher}")
    try:
        rt = memory_runtime(notifier=notifier, renderer=ENVELOPES)
        ctx = RequestContext(teacher, uuid4())
        cls = await create_class(rt, ctx, CreateClass("7C", ["ENG7"]))
        created = await next_message(pubsub)
        await create_student(
            rt, ctx, CreateStudent(PersonName("Greta", "Garbo"), class_ids=[cls.id])
        )
        added = await next_message(pubsub)
    finally:
        await pubsub.aclose()
        await client.aclose()

    assert created == {
        "event": "class_created",
        "data": {
            "class_id": str(cls.id),
            "class_designation": "7C",
            "course_codes": ["ENG7"],
            "message": created["data"]["message"],
            "category": "class_management",
            "priority": "standard",
            "action_required": False,
            "deadline": None,
            "batch_id": None,
            "correlation_id": str(ctx.correlation_id),
            "timestamp": created["data"]["timestamp"],
        },
    }
    assert added["event"] == "student_added_to_class"
    assert added["data"]["student_name"] == "Greta Garbo"
    assert (added["data"]["category"], added["data"]["priority"]) == ("class_management", "low")
    assert notifier.stats.published == 2
    assert notifier.stats.failed == notifier.stats.dropped == 0


async def test_redis_unreachable_never_blocks_or_fails_a_request() -> None:
    notifier = RedisNotifier(UNREACHABLE_REDIS, timeout=0.2)
    await notifier.start()
    store = InMemoryStore(ENVELOPES)
    rt = memory_runtime(store, SystemClock(), notifier)
    try:
        started = time.monotonic()
        classes = [
            await create_class(rt, RequestContext("teacher-r"), CreateClass(f"c{i}", ["SV1"]))
            for i in range(20)
        ]
        assert time.monotonic() - started < 1.0  # no request waited for Redis

        note = notifications.class_created(classes[0], uuid4(), rt.now())
        started = time.monotonic()
        notifier.publish([note] * 100)
        assert time.monotonic() - started < 0.05
        for _ in range(100):
            if notifier.stats.failed + notifier.stats.dropped >= 120:
                break
            await asyncio.sleep(0.05)
    finally:
        stop_started = time.monotonic()
        await notifier.stop()
        assert time.monotonic() - stop_started < 2.0
    assert notifier.stats.published == 0
    assert notifier.stats.failed >= 1
    assert notifier.stats.failed + notifier.stats.dropped == 120
    # The Kafka side is untouched: every class's events wait in the outbox.
    assert (await InMemoryOutboxStore(store).status(rt.now())).pending == 40


async def test_a_full_queue_drops_and_counts() -> None:
    notifier = RedisNotifier(UNREACHABLE_REDIS, max_queue=2)
    rt = memory_runtime(notifier=notifier, renderer=ENVELOPES)
    for i in range(5):  # not started: nothing drains the queue
        await create_class(rt, RequestContext("teacher-q"), CreateClass(f"q{i}", ["SV2"]))
    assert notifier.queued == 2
    assert notifier.stats.dropped == 3
    await notifier.stop()


async def test_health_probes(redis_url: str, kafka_bootstrap: str) -> None:
    assert await redis_ping(redis_url)
    assert not await redis_ping(UNREACHABLE_REDIS, timeout=0.5)
    assert not await redis_ping("redis://10.255.255.1:6379/0", timeout=0.3)  # unroutable: slow
    assert await kafka_ping(kafka_bootstrap)
    started = time.monotonic()
    assert not await kafka_ping(f"127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - started < 2.0
