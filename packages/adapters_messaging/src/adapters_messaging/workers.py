"""The messaging workers of one process, built from
:class:`~adapters_messaging.settings.KafkaSettings` and
:class:`~adapters_messaging.settings.RedisSettings`.

``class-api`` (with ``RUN_WORKERS``) and ``class-scheduler`` both run the outbox relay and the
suggestions consumer; this is the one place that builds them from configuration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from adapters_messaging.consumer import SuggestionsConsumer
from adapters_messaging.kafka import KafkaSecurity
from adapters_messaging.notifier import RedisNotifier
from adapters_messaging.relay import OutboxRelay, Wakeup
from adapters_messaging.settings import KafkaSettings, RedisSettings
from adapters_messaging.sink import KafkaEventSink
from class_core.ports import NullNotifier, OutboxStore, RealtimeNotifier
from class_core.runtime import Runtime

log = logging.getLogger(__name__)


def build_notifier(settings: RedisSettings) -> RedisNotifier | None:
    """A Redis notifier when ``REDIS_URL`` is set (start it before use), else ``None``."""
    return RedisNotifier(settings.redis_url) if settings.redis_url else None


def notifier_or_null(notifier: RedisNotifier | None) -> RealtimeNotifier:
    return notifier if notifier is not None else NullNotifier()


class MessagingWorkers:
    """Relay and consumer as asyncio tasks; either can be switched off.

    Without ``KAFKA_BOOTSTRAP_SERVERS`` nothing runs: events wait in the outbox.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        runtime: Runtime,
        outbox_store: OutboxStore,
        *,
        wakeup: Wakeup | Sequence[Wakeup] | None = None,
        relay: bool = True,
        consumer: bool = True,
    ) -> None:
        self.relay: OutboxRelay | None = None
        self.consumer: SuggestionsConsumer | None = None
        self._sink: KafkaEventSink | None = None
        self._tasks: list[asyncio.Task[None]] = []
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            return
        security = KafkaSecurity.from_settings(settings)
        if relay:
            self._sink = KafkaEventSink(
                bootstrap,
                enable_idempotence=settings.kafka_enable_idempotence,
                security=security,
            )
            self.relay = OutboxRelay(
                outbox_store,
                self._sink,
                clock=runtime.clock,
                max_attempts=settings.outbox_max_attempts,
                retention=timedelta(days=settings.outbox_retention_days),
                wakeup=wakeup,
            )
        if consumer:
            self.consumer = SuggestionsConsumer(
                bootstrap,
                settings.kafka_consumer_group,
                runtime,
                security=security,
                enable_idempotence=settings.kafka_enable_idempotence,
                max_attempts=settings.consumer_max_attempts,
            )

    def start(self) -> list[asyncio.Task[None]]:
        """Start the configured workers; returns their tasks."""
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="cms-outbox-relay"))
        if self.consumer is not None:
            self._tasks.append(
                asyncio.create_task(self.consumer.run(), name="cms-suggestions-consumer")
            )
        return list(self._tasks)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop gracefully (flags, then the clients), then wait for the tasks."""
        if self.consumer is not None:
            await self.consumer.stop(grace)
        if self.relay is not None:
            await self.relay.stop(grace)
        if self._tasks:
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    log.error("worker ended with %s", type(result).__name__)
        self._tasks.clear()
        if self._sink is not None:
            await self._sink.stop()
