"""Where the outbox relay delivers events: the :class:`EventSink` port and its Kafka adapter."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import UnknownTopicOrPartitionError
from attrs import frozen

from adapters_messaging.kafka import KafkaSecurity, describe, is_outage, valid_topic_name
from class_core.events import OutboxMessage

log = logging.getLogger(__name__)


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    """The destination acknowledged the message."""
    FAILED = "failed"
    """The destination refused this message for a reason of its own (counts toward dead)."""
    UNAVAILABLE = "unavailable"
    """Not delivered because the destination is unreachable or slow (retried, never counts)."""
    SKIPPED = "skipped"
    """Not attempted because an earlier message with the same topic and key failed."""


@frozen
class Delivery:
    status: DeliveryStatus
    error: str | None = None

    @classmethod
    def delivered(cls) -> Delivery:
        return _DELIVERED


_DELIVERED = Delivery(DeliveryStatus.DELIVERED)
_SKIPPED = Delivery(DeliveryStatus.SKIPPED)


class SinkUnavailableError(Exception):
    """Raised by a sink when its destination cannot be reached at all (an outage)."""


class EventSink(Protocol):
    """Delivers outbox messages. A custom sink (an embedding service's own bus) may replace
    Kafka behind the relay; it never replaces the outbox.

    ``publish`` returns one :class:`Delivery` per message, in order. It must keep the order of
    messages with the same ``(topic, key)`` and should not deliver a message after an earlier
    one with the same topic and key failed in the same call (return ``SKIPPED`` for it).
    Raising :class:`SinkUnavailableError`, ``OSError`` or ``TimeoutError`` means "nothing was
    delivered, try again later"; raising anything else makes the relay retry the messages one
    at a time, so that the exception is charged to the message that causes it.
    """

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]: ...


class KafkaEventSink:
    """Publishes outbox messages to Kafka exactly as recorded (payload bytes, key, headers).

    ``acks="all"``; every message of a call is handed to the producer in order and the
    acknowledgements are awaited in the same order, so the order per key is kept (aiokafka
    keeps one request in flight per broker). Each call is bounded by ``send_timeout`` seconds;
    what was not acknowledged by then is reported ``UNAVAILABLE``.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        enable_idempotence: bool = True,
        security: KafkaSecurity | None = None,
        client_id: str = "class_management_service-relay",
        request_timeout_ms: int = 30_000,
        send_timeout: float | None = None,
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = 1_048_576,
        compression_type: str | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._security = security or KafkaSecurity()
        self._options: dict[str, Any] = {
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": enable_idempotence,
            "request_timeout_ms": request_timeout_ms,
            "linger_ms": linger_ms,
            "max_batch_size": max_batch_size,
            "max_request_size": max_request_size,
            "compression_type": compression_type,
        }
        # One send is bounded by the producer's request timeout; a whole call gets some slack.
        self._send_timeout = send_timeout or request_timeout_ms / 1000 + 5.0
        self._request_timeout = request_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect now (optional: :meth:`publish` connects on first use).

        Raises :class:`SinkUnavailableError` when the cluster cannot be reached.
        """
        await self._ensure_producer()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(self._send_timeout):
                    await producer.stop()
            except Exception as exc:
                log.warning("kafka producer did not stop cleanly: %s", describe(exc))

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        try:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                **self._options,
                **self._security.client_kwargs(),
            )
        except Exception as exc:
            # A producer that cannot even be built (bad security options) is no event's
            # fault: an outage, retried and never counted against the events.
            raise SinkUnavailableError(f"kafka producer not usable: {describe(exc)}") from exc
        try:
            async with asyncio.timeout(self._send_timeout):
                await producer.start()
        except BaseException as exc:
            try:
                async with asyncio.timeout(2):
                    await producer.stop()
            except Exception:  # noqa: S110 - it never started; nothing to flush
                pass
            if isinstance(exc, Exception):
                raise SinkUnavailableError(f"kafka unreachable: {describe(exc)}") from exc
            raise
        self._producer = producer
        return producer

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[Delivery]:
        async with self._lock:  # one call at a time keeps the per-key order across callers
            producer = await self._ensure_producer()
            return await self._publish(producer, messages)

    async def _publish(
        self, producer: AIOKafkaProducer, messages: Sequence[OutboxMessage]
    ) -> list[Delivery]:
        deadline = time.monotonic() + self._send_timeout
        results: list[Delivery | None] = [None] * len(messages)
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        failed_keys: set[tuple[str, str]] = set()
        outage: str | None = None

        for i, m in enumerate(messages):
            ident = (m.topic, m.key)
            if outage is not None:
                results[i] = Delivery(DeliveryStatus.UNAVAILABLE, outage)
                continue
            if ident in failed_keys:
                results[i] = _SKIPPED
                continue
            if not valid_topic_name(m.topic):
                results[i] = Delivery(DeliveryStatus.FAILED, f"invalid topic name {m.topic!r}")
                failed_keys.add(ident)
                continue
            try:
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    future = await producer.send(
                        m.topic,
                        value=m.payload.encode("utf-8"),
                        key=m.key.encode("utf-8"),
                        headers=[(k, v.encode("utf-8")) for k, v in m.headers],
                    )
            except Exception as exc:
                if await self._outage(producer, exc):
                    outage = describe(exc)
                    results[i] = Delivery(DeliveryStatus.UNAVAILABLE, outage)
                else:
                    results[i] = Delivery(DeliveryStatus.FAILED, describe(exc))
                    failed_keys.add(ident)
                continue
            pending.append((i, future))

        for i, future in pending:  # in order: never report a later message before an earlier one
            try:
                remaining = max(0.001, deadline - time.monotonic())
                await asyncio.wait_for(asyncio.shield(future), remaining)
                results[i] = _DELIVERED
            except Exception as exc:
                if await self._outage(producer, exc):
                    results[i] = Delivery(DeliveryStatus.UNAVAILABLE, describe(exc))
                else:
                    results[i] = Delivery(DeliveryStatus.FAILED, describe(exc))
        return [r if r is not None else _SKIPPED for r in results]

    async def _outage(self, producer: AIOKafkaProducer, exc: BaseException) -> bool:
        if not is_outage(exc):
            return False
        if isinstance(exc, UnknownTopicOrPartitionError):
            # The topic has no metadata: an outage if the cluster does not answer at all,
            # else the topic cannot be used (not created, not allowed): the event's own failure.
            return not await self._cluster_answers(producer)
        return True

    async def _cluster_answers(self, producer: AIOKafkaProducer) -> bool:
        try:
            async with asyncio.timeout(min(5.0, self._request_timeout)):
                return bool(await producer.client.force_metadata_update())
        except Exception:
            return False
