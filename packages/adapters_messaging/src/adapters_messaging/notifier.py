"""Best-effort real-time teacher notifications over Redis pub/sub (contract §5.4).

``publish`` is called on the request path after commit: it only puts the notifications into a
bounded in-memory queue and returns. A background task drains the queue with
``PUBLISH ws:{teacher_id} <json>`` under short timeouts. Redis being down or slow never fails or
slows a request and never touches the Kafka events (those live in the outbox). Pub/sub is
at-most-once anyway: clients re-sync over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from attrs import define
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters_messaging.kafka import describe
from class_core.events import TeacherNotification

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "ws:"


def channel_for(teacher_id: str) -> str:
    return f"{CHANNEL_PREFIX}{teacher_id}"


def _client(url: str, timeout: float, **kwargs: Any) -> aioredis.Redis:
    # No client-side retries (redis-py retries 3 times with back-off by default): a down Redis
    # must cost one short timeout, not seconds.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **kwargs,
    )


@define
class NotifierStats:
    published: int = 0
    failed: int = 0
    """Notifications that Redis did not take (error or timeout)."""
    dropped: int = 0
    """Notifications dropped without trying: queue full, or Redis known to be down."""
    last_error: str | None = None


class RedisNotifier:
    """:class:`class_core.ports.RealtimeNotifier` on Redis ``PUBLISH``.

    Call :meth:`start` in the application's lifespan and :meth:`stop` at shutdown. After a
    failure the notifier stays quiet for ``retry_after`` seconds (notifications in that window
    are dropped and counted) so that a down Redis costs nothing per request.
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        timeout: float = 0.5,
        retry_after: float = 2.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._queue: asyncio.Queue[TeacherNotification] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._down_until = 0.0
        self._failures_in_row = 0
        self.stats = NotifierStats()

    # ------------------------------------------------------------------ request path

    def publish(self, notifications: Sequence[TeacherNotification]) -> None:
        """Enqueue; never blocks, never raises."""
        try:
            for note in notifications:
                try:
                    self._queue.put_nowait(note)
                except asyncio.QueueFull:
                    self.stats.dropped += 1
                    if self.stats.dropped % 1000 == 1:
                        log.warning(
                            "real-time notification queue full; %d dropped so far",
                            self.stats.dropped,
                        )
        except Exception as exc:  # the request must not notice anything
            log.warning("real-time notification not queued: %s", describe(exc))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._task is not None:
            return
        self._redis = _client(self._url, self._timeout)
        self._task = asyncio.create_task(self._drain(), name="redis-notifier")

    async def stop(self, drain_timeout: float = 1.0) -> None:
        """Deliver what is queued (up to ``drain_timeout`` seconds), then close."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await self._queue.join()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(Exception):
                await redis.aclose()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ background

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            note = await self._queue.get()
            try:
                if loop.time() < self._down_until:
                    self.stats.dropped += 1
                    continue
                await self._send(note)
            finally:
                self._queue.task_done()

    async def _send(self, note: TeacherNotification) -> None:
        assert self._redis is not None
        try:
            body = json.dumps(note.realtime_message(), ensure_ascii=False, separators=(",", ":"))
            async with asyncio.timeout(self._timeout):
                await self._redis.publish(channel_for(note.teacher_id), body)
        except Exception as exc:  # includes timeouts; never propagates
            self.stats.failed += 1
            self.stats.last_error = describe(exc)
            self._failures_in_row += 1
            pause = min(self._max_retry_after, self._retry_after * 2 ** (self._failures_in_row - 1))
            self._down_until = asyncio.get_running_loop().time() + pause
            # No payload in logs: notifications carry student names.
            log.warning(
                "redis notification failed (type %s); pausing %.1fs: %s",
                note.notification_type,
                pause,
                type(exc).__name__,
            )
            return
        self.stats.published += 1
        self._failures_in_row = 0


async def redis_ping(url: str, timeout: float = 1.0) -> bool:  # noqa: ASYNC109
    """Whether Redis answers ``PING`` within ``timeout`` seconds."""
    try:
        client = _client(url, timeout)
    except Exception:
        return False
    try:
        async with asyncio.timeout(timeout):
            return bool(await client.ping())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
