"""The consumer of ``BatchAuthorMatchesSuggestedV1`` (contract §4.1, §5.3).

For each record, in partition order: decode, store through ``ingest_suggestions`` (one database
transaction, idempotent per envelope ``event_id`` via the inbox), then commit ``offset + 1``.
Nothing is committed before the transaction committed. Messages that can never be processed
(undecodable, invalid data, unknown class) go to ``<topic>.dlt`` with their original bytes, key
and headers plus a ``dlt_reason`` header, and are committed. A database outage is retried
with back-off from the same offset, never skipped. Any other failure of a record (an exception
of any kind from decoding or storing it) counts against that record: after ``max_attempts``
(``CONSUMER_MAX_ATTEMPTS``) it is dead-lettered with reason ``processing_failed`` and the
records after it flow (contract §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from attrs import define, field

from adapters_messaging.decoding import (
    PROCESSING_FAILED,
    UNKNOWN_CLASS,
    UndecodableMessage,
    decode_suggestions,
)
from adapters_messaging.kafka import KafkaSecurity, describe
from class_core import telemetry
from class_core.errors import DependencyUnavailableError
from class_core.events import SUGGESTIONS_TOPIC
from class_core.runtime import Runtime
from class_core.tracing import TRACEPARENT, trace_context
from class_core.use_cases.matching import IngestOutcome, ingest_suggestions

log = logging.getLogger(__name__)

DLT_SUFFIX = ".dlt"


@define
class ConsumerStats:
    """Counters the apps export (no metrics library here)."""

    processed: int = 0
    """Records handled and committed (stored, finalized, ignored, duplicates; not DLT)."""
    duplicates: int = 0
    ignored: int = 0
    """Messages for an already finalized batch."""
    dropped_suggestions: int = 0
    dead_lettered: dict[str, int] = field(factory=dict)
    failures: int = 0
    """Failed processing attempts (each is retried)."""
    commit_failures: int = 0
    rebalances: int = 0
    lag: dict[str, int] = field(factory=dict)
    """Per partition (``topic:partition``): records behind the last known high-water mark."""
    outcomes: dict[str, int] = field(factory=dict)
    last_error: str | None = None

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    @property
    def dead_lettered_total(self) -> int:
        return sum(self.dead_lettered.values())


class _Retry(Exception):
    """Processing of a record must be retried from its offset after back-off."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: SuggestionsConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Wait for the record in flight: its transaction and commit finish before the
        # partitions move (commits are allowed during this callback).
        async with self._owner._processing:
            self._owner.stats.rebalances += 1
            for tp in revoked:
                self._owner.stats.lag.pop(f"{tp.topic}:{tp.partition}", None)
        if revoked:
            log.info("suggestions consumer: partitions revoked: %s", _tps(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        if assigned:
            log.info("suggestions consumer: partitions assigned: %s", _tps(assigned))


class SuggestionsConsumer:
    """Consumes suggestion messages into the database through the core use case.

    ``consumer_options`` go to :class:`aiokafka.AIOKafkaConsumer` as they are (e.g.
    ``session_timeout_ms``); the essentials (manual commit, earliest offset) cannot be changed.
    ``max_attempts``: after that many failed attempts of one record for a reason of its own
    (any exception but an outage of the database), dead-letter it with reason
    ``processing_failed``. Outages are retried without limit.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        runtime: Runtime,
        *,
        topic: str = SUGGESTIONS_TOPIC,
        security: KafkaSecurity | None = None,
        enable_idempotence: bool = True,
        client_id: str = "class_management_service-consumer",
        max_records: int = 100,
        base_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_attempts: int = 3,
        request_timeout_ms: int = 30_000,
        consumer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        self._runtime = runtime
        self.topic = topic
        self.dlt_topic = topic + DLT_SUFFIX
        self._security = security or KafkaSecurity()
        self._enable_idempotence = enable_idempotence
        self._client_id = client_id
        self._max_records = max_records
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._max_attempts = max_attempts
        self._request_timeout_ms = request_timeout_ms
        self._consumer_options = dict(consumer_options or {})
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._processing = asyncio.Lock()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._done = asyncio.Event()
        self._done.set()
        self._failures_in_row = 0
        self._record_failures: dict[tuple[str, int, int], int] = {}
        self.stats = ConsumerStats()

    @property
    def max_attempts(self) -> int:
        """Attempts at a record failing for a reason of its own before it is dead-lettered
        (``CONSUMER_MAX_ATTEMPTS``)."""
        return self._max_attempts

    @property
    def assigned_partitions(self) -> int:
        """How many partitions of the topic this member holds now (0 while it waits for the
        group, is disconnected or stopped)."""
        consumer = self._consumer
        return len(consumer.assignment()) if consumer is not None else 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Consume until :meth:`stop`; broker outages at start-up are retried."""
        self._done.clear()
        try:
            while not self._stopping:
                try:
                    await self._start_clients()
                except Exception as exc:
                    await self._close_clients()
                    self._note_failure(f"kafka unreachable: {describe(exc)}")
                    await self._pause()
                    continue
                try:
                    await self._consume()
                except Exception as exc:  # a client broke: reconnect from committed offsets
                    self._note_failure(describe(exc))
                    log.exception("suggestions consumer: loop failed; reconnecting")
                    await self._close_clients()
                    await self._pause()
        finally:
            await self._close_clients()
            self._done.set()

    async def stop(self, grace: float | None = 30.0) -> None:
        """Ask :meth:`run` to finish the record in flight and return; waits up to ``grace``
        seconds for it. A stopped consumer stays stopped."""
        self._stopping = True
        self._stop_event.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._done.wait()

    async def _start_clients(self) -> None:
        security = self._security.client_kwargs()
        options: dict[str, Any] = {
            "client_id": self._client_id,
            "request_timeout_ms": self._request_timeout_ms,
            **self._consumer_options,
            "group_id": self._group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
        }
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers, **options, **security
        )
        self._consumer = consumer
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id + "-dlt",
            acks="all",
            enable_idempotence=self._enable_idempotence,
            request_timeout_ms=self._request_timeout_ms,
            **security,
        )
        self._producer = producer
        timeout = self._request_timeout_ms / 1000 + 5
        async with asyncio.timeout(timeout):
            await producer.start()
        consumer.subscribe([self.topic], listener=_Listener(self))
        async with asyncio.timeout(timeout):
            await consumer.start()

    async def _close_clients(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client in (consumer, producer):
            if client is None:
                continue
            try:
                async with asyncio.timeout(10):
                    await client.stop()
            except Exception as exc:
                log.warning("suggestions consumer: client did not stop cleanly: %s", describe(exc))

    # ------------------------------------------------------------------ consuming

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping:
            batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
            retry = False
            for tp, records in batches.items():
                for record in records:
                    if self._stopping or retry:
                        # Not processed: fetch it again next time (or by the next owner).
                        self._seek(consumer, tp, record.offset)
                        break
                    try:
                        handled = await self._handle(consumer, tp, record)
                    except _Retry:
                        self._seek(consumer, tp, record.offset)
                        retry = True
                        break
                    if not handled:  # partition revoked or commit refused: drop the rest
                        break
            if retry:
                await self._pause()

    async def _handle(self, consumer: AIOKafkaConsumer, tp: TopicPartition, record: Any) -> bool:
        async with self._processing:
            if tp not in consumer.assignment():
                return False
            await self._process(record)
            committed = await self._commit(consumer, tp, record.offset + 1)
        if committed:
            self._failures_in_row = 0
            self._record_failures.pop((tp.topic, tp.partition, record.offset), None)
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self.stats.lag[f"{tp.topic}:{tp.partition}"] = max(0, highwater - record.offset - 1)
        return committed

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Store the record's suggestions or dead-letter it; raises :class:`_Retry`.

        The error boundary is total: whatever decoding or storing raises either is an outage
        (retried without limit) or counts against this record (dead-lettered after
        ``max_attempts``), so no record can stop the partition.
        """
        try:
            decoded = decode_suggestions(record.value)
            # The events this message causes carry its trace context (class_core.tracing).
            with (
                trace_context(_header(record, TRACEPARENT)) as traceparent,
                telemetry.span(
                    "cms.suggestions.process",
                    {"messaging.destination.name": record.topic, "cms.offset": record.offset},
                    traceparent=traceparent,
                ),
            ):
                result = await ingest_suggestions(self._runtime, decoded.message)
        except UndecodableMessage as exc:
            await self._dead_letter(record, exc.reason, exc.detail)
            return
        except (DependencyUnavailableError, ConnectionError, TimeoutError) as exc:
            self._note_failure(describe(exc))
            log.warning(
                "suggestions consumer: database unavailable, retrying %s@%d: %s",
                record.topic,
                record.offset,
                describe(exc),
            )
            raise _Retry from exc
        except Exception as exc:
            await self._count_failure(record, exc)
            return
        outcome = result.outcome
        self.stats.outcomes[outcome.value] = self.stats.outcomes.get(outcome.value, 0) + 1
        if outcome is IngestOutcome.UNKNOWN_CLASS:
            await self._dead_letter(record, UNKNOWN_CLASS, "data.class_id: no such class")
            return
        self.stats.processed += 1
        self.stats.dropped_suggestions += decoded.dropped_suggestions
        if outcome is IngestOutcome.DUPLICATE:
            self.stats.duplicates += 1
        elif outcome is IngestOutcome.BATCH_FINALIZED:
            self.stats.ignored += 1
            log.info("suggestions consumer: batch %s already finalized", decoded.message.batch_id)
        if result.ignored_essays and outcome is not IngestOutcome.BATCH_FINALIZED:
            log.info(
                "suggestions consumer: %d essays of batch %s belong to another batch",
                result.ignored_essays,
                decoded.message.batch_id,
            )

    async def _count_failure(self, record: ConsumerRecord[bytes, bytes], exc: Exception) -> None:
        """One more failed attempt at ``record``: dead-letter it once it reached
        ``max_attempts``, else raise :class:`_Retry`."""
        self._note_failure(f"{type(exc).__name__} processing a record")
        key = (record.topic, record.partition, record.offset)
        attempts = self._record_failures.get(key, 0) + 1
        self._record_failures[key] = attempts
        # The exception's type only: its message may quote the record (student data).
        log.warning(
            "suggestions consumer: processing %s@%d failed with %s (attempt %d of %d)",
            record.topic,
            record.offset,
            type(exc).__name__,
            attempts,
            self._max_attempts,
        )
        if attempts >= self._max_attempts:
            await self._dead_letter(record, PROCESSING_FAILED, type(exc).__name__)
            self._record_failures.pop(key, None)
            return
        raise _Retry from exc

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str
    ) -> None:
        producer = self._producer
        assert producer is not None
        headers = [
            *list(record.headers or ()),
            ("dlt_reason", reason.encode()),
            ("dlt_detail", detail[:500].encode()),
            ("dlt_original_topic", record.topic.encode()),
            ("dlt_original_partition", str(record.partition).encode()),
            ("dlt_original_offset", str(record.offset).encode()),
            ("dlt_consumer_group", self._group_id.encode()),
        ]
        try:
            async with asyncio.timeout(self._request_timeout_ms / 1000 + 5):
                await producer.send_and_wait(
                    self.dlt_topic, value=record.value, key=record.key, headers=headers
                )
        except Exception as exc:
            self._note_failure(f"dead-letter publish failed: {describe(exc)}")
            log.warning(
                "suggestions consumer: could not dead-letter %s@%d (%s), retrying: %s",
                record.topic,
                record.offset,
                reason,
                describe(exc),
            )
            raise _Retry from exc
        self.stats.dead_lettered[reason] = self.stats.dead_lettered.get(reason, 0) + 1
        log.warning(
            "suggestions consumer: %s@%d dead-lettered to %s (%s: %s)",
            record.topic,
            record.offset,
            self.dlt_topic,
            reason,
            detail,
        )

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> bool:
        try:
            # aiokafka retries a commit while the coordinator is unreachable; bound it so that
            # an outage turns into a retry from this offset (the inbox absorbs the repeat).
            async with asyncio.timeout(self._request_timeout_ms / 1000):
                await consumer.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the partition may belong to another member now, which
            # re-reads from the last committed offset (the inbox makes the repeat harmless).
            self.stats.commit_failures += 1
            log.warning("suggestions consumer: commit refused after a rebalance: %s", exc)
            return False
        except (KafkaError, TimeoutError) as exc:
            self.stats.commit_failures += 1
            self._note_failure(f"commit failed: {describe(exc)}")
            raise _Retry from exc
        return True

    # ------------------------------------------------------------------ helpers

    def _seek(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        with contextlib.suppress(IllegalStateError):  # no longer ours: nothing to rewind
            consumer.seek(tp, offset)

    def _note_failure(self, error: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = error
        self._failures_in_row += 1

    async def _pause(self) -> None:
        delay = min(self._max_backoff, self._base_backoff * 2 ** max(0, self._failures_in_row - 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay)


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> bytes | None:
    """The last value of a header of ``record`` (``None`` when absent)."""
    values = [v for k, v in (record.headers or ()) if k == name]
    return values[-1] if values else None


def _tps(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in sorted(tps))
