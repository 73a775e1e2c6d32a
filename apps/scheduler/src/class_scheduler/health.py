"""What ``class-scheduler`` reports about itself on ``/healthz`` and ``/metrics`` (contract §12).

:class:`SchedulerStatus` gathers the parts of one process (the relay, the consumer, the sweep's
record, the outbox and the probes) and answers both endpoints; :mod:`class_scheduler.http`
serves them. Metric names are those of ``class-api``'s ``/metrics`` where they mean the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from attrs import define, field
from prometheus_client import CollectorRegistry, generate_latest, process_collector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters_messaging import OutboxRelay, SuggestionsConsumer
from class_core.clock import Clock, SystemClock
from class_core.ports import OutboxStatus, OutboxStore
from class_core.use_cases.matching import FinalizedBatch
from class_runtime.health import PROBE_TIMEOUT_SECONDS, Probe, probe_status

log = logging.getLogger("class_scheduler.health")

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@define
class SweepRecord:
    """What the timeout sweeps of this process did (fed by :func:`class_runtime.sweep_once`)."""

    runs_ok: int = 0
    runs_failed: int = 0
    batches_finalized: int = 0
    auto_confirmed: int = 0
    unknown_assigned: int = 0
    last_sweep_at: datetime | None = None
    """When the last successful sweep ended."""

    def succeeded(self, at: datetime, finalized: int, auto: int, unknown: int) -> None:
        self.runs_ok += 1
        self.batches_finalized += finalized
        self.auto_confirmed += auto
        self.unknown_assigned += unknown
        self.last_sweep_at = at

    def failed(self) -> None:
        self.runs_failed += 1

    # class_runtime.SweepObserver: what class_runtime.sweep_once reports after each run.
    def sweep_finished(self, finalized: Sequence[FinalizedBatch]) -> None:
        self.succeeded(
            datetime.now(UTC),
            len(finalized),
            sum(f.auto_confirmed for f in finalized),
            sum(f.unknown_assigned for f in finalized),
        )

    def sweep_failed(self) -> None:
        self.failed()


@define
class SchedulerStatus:
    """The parts of one ``class-scheduler`` process, as the endpoints see them."""

    database: Probe
    outbox: OutboxStore
    kafka: Probe | None = None
    relay: OutboxRelay | None = None
    consumer: SuggestionsConsumer | None = None
    sweep: SweepRecord | None = None
    clock: Clock = field(factory=SystemClock)
    _last_outbox: OutboxStatus | None = None

    def relay_state(self) -> str:
        if self.relay is None:
            return "off"
        return "leader" if self.relay.stats.is_leader else "standby"

    def consumer_state(self) -> str:
        if self.consumer is None:
            return "off"
        return "assigned" if self.consumer.assigned_partitions > 0 else "waiting"

    async def health(self) -> tuple[dict[str, Any], int]:
        """The ``/healthz`` body and status: 503 ``unhealthy`` when the database is
        unreachable, 200 ``degraded`` when a configured Kafka is, else 200 ``healthy``."""
        database, kafka = await asyncio.gather(
            probe_status(self.database), probe_status(self.kafka)
        )
        last = self.sweep.last_sweep_at if self.sweep is not None else None
        checks = {
            "database": database,
            "kafka": kafka,
            "relay": self.relay_state(),
            "consumer": self.consumer_state(),
            "last_sweep_at": last.isoformat() if last is not None else None,
        }
        if database != "ok":
            return {"status": "unhealthy", "checks": checks}, 503
        status = "degraded" if kafka == "unavailable" else "healthy"
        return {"status": status, "checks": checks}, 200

    async def metrics(self) -> bytes:
        """The Prometheus text of this process; the outbox figures are read now (the last
        known ones stay when the database does not answer in time)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                self._last_outbox = await self.outbox.status(self.clock.now())
        except Exception:
            log.warning("outbox status unavailable for metrics", exc_info=True)
        registry = CollectorRegistry(auto_describe=False)
        process_collector.ProcessCollector(registry=registry)
        registry.register(_Collector(self))
        return generate_latest(registry)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class _Collector(Collector):
    """Reads the workers' plain counters when Prometheus scrapes."""

    def __init__(self, status: SchedulerStatus) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        s = self._status
        outbox = s._last_outbox
        if outbox is not None:
            yield _gauge("cms_outbox_pending", "Outbox events not yet published.", outbox.pending)
            yield _gauge("cms_outbox_dead", "Outbox events marked dead.", outbox.dead)
            yield _gauge(
                "cms_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending outbox event (0 when none).",
                outbox.oldest_pending_age_seconds or 0.0,
            )
        yield from self._relay(s.relay)
        yield from self._consumer(s.consumer)
        yield from self._sweep(s.sweep)

    def _relay(self, relay: OutboxRelay | None) -> Iterable[Metric]:
        yield _gauge(
            "cms_relay_leader",
            "1 while this relay leads, 0 standby or off.",
            int(relay is not None and relay.stats.is_leader),
        )
        if relay is None:
            return
        stats = relay.stats
        yield _counter("cms_events_published", "Events published (acknowledged).", stats.published)
        yield _counter(
            "cms_events_publish_failures",
            "Failed publish attempts of single events.",
            stats.failures,
        )
        yield _counter("cms_events_dead", "Events this relay marked dead.", stats.dead)
        yield _counter(
            "cms_relay_outages", "Publish rounds stopped by a broker outage.", stats.outages
        )
        yield _counter("cms_relay_errors", "Relay rounds failed on the storage side.", stats.errors)

    def _consumer(self, consumer: SuggestionsConsumer | None) -> Iterable[Metric]:
        yield _gauge(
            "cms_consumer_assigned_partitions",
            "Partitions of the suggestions topic this member holds.",
            consumer.assigned_partitions if consumer is not None else 0,
        )
        if consumer is None:
            return
        stats = consumer.stats
        messages = CounterMetricFamily(
            "cms_consumer_messages", "Suggestion messages consumed, by outcome.", labels=["outcome"]
        )
        messages.add_metric(["processed"], stats.processed)
        messages.add_metric(["duplicate"], stats.duplicates)
        messages.add_metric(["ignored"], stats.ignored)
        yield messages
        failures = CounterMetricFamily(
            "cms_consumer_failures",
            "Consumer failures: processing attempts retried, commits failed.",
            labels=["reason"],
        )
        failures.add_metric(["retried"], stats.failures)
        failures.add_metric(["commit_failed"], stats.commit_failures)
        yield failures
        dead = CounterMetricFamily(
            "cms_consumer_dead_letters",
            "Messages sent to the dead-letter topic, by reason.",
            labels=["reason"],
        )
        for reason, n in sorted(stats.dead_lettered.items()):
            dead.add_metric([reason], n)
        yield dead
        yield _gauge("cms_consumer_lag", "Records behind the partitions' end.", stats.total_lag)

    def _sweep(self, sweep: SweepRecord | None) -> Iterable[Metric]:
        if sweep is None:
            return
        runs = CounterMetricFamily(
            "cms_sweep_runs", "Timeout sweeps, by result (ok, error).", labels=["result"]
        )
        runs.add_metric(["ok"], sweep.runs_ok)
        runs.add_metric(["error"], sweep.runs_failed)
        yield runs
        yield _counter(
            "cms_sweep_batches_finalized",
            "Batches finalized by the timeout sweep.",
            sweep.batches_finalized,
        )
        outcomes = CounterMetricFamily(
            "cms_sweep_associations",
            "Associations decided by the timeout sweep.",
            labels=["outcome"],
        )
        outcomes.add_metric(["auto_confirmed"], sweep.auto_confirmed)
        outcomes.add_metric(["unknown_assigned"], sweep.unknown_assigned)
        yield outcomes
        last = sweep.last_sweep_at
        yield _gauge(
            "cms_sweep_last_success_timestamp_seconds",
            "Unix time of the last successful sweep (0 before the first).",
            last.timestamp() if last is not None else 0.0,
        )
