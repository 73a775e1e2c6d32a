"""Prometheus metrics of one API process.

One :class:`ServiceMetrics` per app (its own registry, so that several apps in one process, as in
tests, never collide). The HTTP metrics are fed by :mod:`class_api.edge`; the outbox, consumer
and sweep metrics are fed by the background workers (see :mod:`class_api.workers`) and by
whoever registers into :attr:`ServiceMetrics.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters_messaging import OutboxRelay, SuggestionsConsumer
from class_core.ports import OutboxStatus
from class_core.use_cases.matching import FinalizedBatch

# The classic text format every Prometheus understands; Litestar appends "; charset=utf-8".
CONTENT_TYPE = "text/plain; version=0.0.4"
UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CACHED_LABELS = 1024  # bounded: methods outside _KNOWN_METHODS are open-ended
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ServiceMetrics:
    """The metrics registry of the service; other components register their collectors here."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self.http_requests = Counter(
            "cms_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "cms_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # (method, route template, status) → the counter's and the histogram's children.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.outbox_pending = Gauge(
            "cms_outbox_pending", "Outbox events not yet published (not dead).", registry=r
        )
        self.outbox_dead = Gauge("cms_outbox_dead", "Outbox events marked dead.", registry=r)
        self.outbox_oldest_pending_age = Gauge(
            "cms_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox event (0 when none).",
            registry=r,
        )
        self.publish_lag = Histogram(
            "cms_outbox_commit_to_publish_seconds",
            "Seconds from recording an event to the broker's acknowledgement.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._messaging = _MessagingCollector(self)
        r.register(self._messaging)
        self.sweep_runs = Counter(
            "cms_sweep_runs_total", "Timeout sweeps, by result (ok, error).", ["result"], registry=r
        )
        self.sweep_batches_finalized = Counter(
            "cms_sweep_batches_finalized_total",
            "Batches finalized by the timeout sweep.",
            registry=r,
        )
        self.sweep_associations = Counter(
            "cms_sweep_associations_total",
            "Associations decided by the timeout sweep (auto_confirmed, unknown_assigned).",
            ["outcome"],
            registry=r,
        )

    def sweep_finished(self, finalized: Sequence[FinalizedBatch]) -> None:
        """A timeout sweep ran (``class_runtime.SweepObserver``)."""
        self.sweep_runs.labels("ok").inc()
        self.sweep_batches_finalized.inc(len(finalized))
        self.sweep_associations.labels("auto_confirmed").inc(
            sum(f.auto_confirmed for f in finalized)
        )
        self.sweep_associations.labels("unknown_assigned").inc(
            sum(f.unknown_assigned for f in finalized)
        )

    def sweep_failed(self) -> None:
        self.sweep_runs.labels("error").inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request; ``route`` is the route template, never a raw path."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:  # labels() per request costs more than the counting itself
            label = method if method in _KNOWN_METHODS else "OTHER"
            children = (
                self.http_requests.labels(label, route, str(status)),
                self.http_latency.labels(label, route),
            )
            if len(self._request_children) < _MAX_CACHED_LABELS:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def watch_messaging(
        self, relay: OutboxRelay | None, consumer: SuggestionsConsumer | None
    ) -> None:
        """Export the relay's and the consumer's counters (read at scrape time)."""
        self._messaging.relay = relay
        self._messaging.consumer = consumer

    def set_outbox_status(self, status: OutboxStatus) -> None:
        self.outbox_pending.set(status.pending)
        self.outbox_dead.set(status.dead)
        self.outbox_oldest_pending_age.set(status.oldest_pending_age_seconds or 0.0)

    def render(self) -> bytes:
        """The Prometheus text exposition of every registered collector."""
        return generate_latest(self.registry)


class _MessagingCollector(Collector):
    """Reads the messaging workers' plain counters when Prometheus scrapes."""

    def __init__(self, owner: ServiceMetrics) -> None:
        self.owner = owner
        self.relay: OutboxRelay | None = None
        self.consumer: SuggestionsConsumer | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        published = CounterMetricFamily(
            "cms_events_published", "Events the outbox relay published (broker acknowledged)."
        )
        failed = CounterMetricFamily(
            "cms_events_publish_failures",
            "Failed publish attempts of single events (each counts toward that event's limit).",
        )
        dead = CounterMetricFamily("cms_events_dead", "Events the relay marked dead.")
        outages = CounterMetricFamily(
            "cms_relay_outages", "Publish rounds stopped by a broker outage (retried)."
        )
        if self.relay is not None:
            stats = self.relay.stats
            published.add_metric([], stats.published)
            failed.add_metric([], stats.failures)
            dead.add_metric([], stats.dead)
            outages.add_metric([], stats.outages)
            for seconds in stats.take_lag_samples():
                self.owner.publish_lag.observe(seconds)
        yield from (published, failed, dead, outages)
        messages = CounterMetricFamily(
            "cms_consumer_messages", "Suggestion messages consumed, by outcome.", labels=["outcome"]
        )
        failures = CounterMetricFamily(
            "cms_consumer_failures",
            "Consumer failures: processing attempts retried, commits failed, dead-lettered.",
            labels=["reason"],
        )
        lag = GaugeMetricFamily(
            "cms_consumer_lag", "Records behind the partitions' end (suggestions topic)."
        )
        if self.consumer is not None:
            stats_c = self.consumer.stats
            messages.add_metric(["processed"], stats_c.processed)
            messages.add_metric(["duplicate"], stats_c.duplicates)
            messages.add_metric(["ignored"], stats_c.ignored)
            failures.add_metric(["retried"], stats_c.failures)
            failures.add_metric(["commit_failed"], stats_c.commit_failures)
            for reason, n in stats_c.dead_lettered.items():
                failures.add_metric([f"dead_letter_{reason}"], n)
            lag.add_metric([], stats_c.total_lag)
        yield messages
        yield failures
        yield lag
