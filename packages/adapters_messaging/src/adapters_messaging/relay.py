"""The outbox relay: publishes committed events from the outbox to an :class:`EventSink`.

Only the leader publishes (``OutboxStore.leadership``), so one relay at a time hands events to
the sink and the order per key holds. Rows are marked published only after the sink
acknowledged them; a crash in between republishes the same bytes with the same event id
(at-least-once). Payloads are never re-rendered.

Two kinds of failure are kept apart:

- an event's own failure (too large, invalid topic, a sink refusing it) is recorded on its row
  with exponential back-off; after ``max_attempts`` the row is dead. ``fetch_ready`` holds back
  later rows with the same key, so the order per key is never broken; other keys flow.
- an outage (broker unreachable, timeouts, not ready) is retried without limit with back-off
  of the whole relay and never counts toward dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from attrs import define, field

from adapters_messaging.kafka import describe
from adapters_messaging.sink import Delivery, DeliveryStatus, EventSink, SinkUnavailableError
from class_core import telemetry
from class_core.clock import Clock, SystemClock
from class_core.ports import OutboxStore, StoredOutboxMessage

log = logging.getLogger(__name__)

_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (SinkUnavailableError, OSError, TimeoutError)


class WakeupSource(Protocol):
    """Something that returns early from ``wait`` when new outbox rows may be ready, e.g.
    ``adapters_sql.OutboxWakeups`` (PostgreSQL ``LISTEN``)."""

    def wait(self, timeout: float) -> Awaitable[object]: ...


Wakeup = asyncio.Event | WakeupSource


@define
class RelayStats:
    """Counters the apps export (no metrics library here). Monotonic unless noted."""

    published: int = 0
    failures: int = 0
    """Event-specific failed attempts (each counts toward that event's dead limit)."""
    dead: int = 0
    """Events this relay marked dead."""
    outages: int = 0
    """Publish rounds that stopped on a sink/broker outage."""
    errors: int = 0
    """Rounds that failed on the storage side (database unreachable, …)."""
    purged: int = 0
    inbox_purged: int = 0
    """Consumed message ids forgotten after the retention (the inbox)."""
    batches: int = 0
    is_leader: bool = False
    last_error: str | None = None
    last_published_at: datetime | None = None
    lag_samples: deque[float] = field(factory=lambda: deque(maxlen=2048))
    """Seconds from recording an event (its ``created_at``) to the sink's acknowledgement."""

    def take_lag_samples(self) -> list[float]:
        """The lag samples gathered since the last call (for a histogram), oldest first."""
        samples = list(self.lag_samples)
        self.lag_samples.clear()
        return samples


class OutboxRelay:
    """Relays outbox rows to a sink; ``run()`` until ``stop()``, or ``run_once()`` per pass."""

    def __init__(
        self,
        store: OutboxStore,
        sink: EventSink,
        *,
        clock: Clock | None = None,
        max_attempts: int = 10,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        wakeup: Wakeup | Sequence[Wakeup] | None = None,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        outage_max_backoff: float = 30.0,
        standby_interval: float = 5.0,
        retention: timedelta | None = timedelta(days=7),
        cleanup_interval: float = 3600.0,
        stats: RelayStats | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._store = store
        self._sink = sink
        self._clock: Clock = clock or SystemClock()
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        if wakeup is None:
            wakeups: list[Wakeup] = []
        elif isinstance(wakeup, asyncio.Event) or not isinstance(wakeup, Sequence):
            wakeups = [wakeup]
        else:
            wakeups = list(wakeup)
        self._events = [w for w in wakeups if isinstance(w, asyncio.Event)]
        self._sources = [w for w in wakeups if not isinstance(w, asyncio.Event)]
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._outage_max_backoff = outage_max_backoff
        self._standby_interval = standby_interval
        self._retention = retention
        self._cleanup_interval = cleanup_interval
        self._last_cleanup: float | None = None
        self._outage_streak = 0
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._done = asyncio.Event()
        self._done.set()
        self.stats = stats or RelayStats()

    @property
    def max_attempts(self) -> int:
        """Attempts at an event before its row is dead (``OUTBOX_MAX_ATTEMPTS``)."""
        return self._max_attempts

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Relay until :meth:`stop`. Standbys retry leadership every ``standby_interval``;
        storage errors are logged and retried with back-off."""
        self._done.clear()
        try:
            await self._run()
        finally:
            self.stats.is_leader = False
            self._done.set()

    async def _run(self) -> None:
        errors = 0
        while not self._stopping:
            try:
                async with self._store.leadership() as leader:
                    self.stats.is_leader = leader
                    if leader:
                        await self._lead()
                self.stats.is_leader = False
                errors = 0
                if not leader:
                    await self._idle(self._standby_interval, wake=False)
            except Exception as exc:
                self.stats.is_leader = False
                self.stats.errors += 1
                self.stats.last_error = describe(exc)
                errors += 1
                delay = self._backoff(errors, self._outage_max_backoff)
                log.warning("outbox relay error, retrying in %.1fs: %s", delay, describe(exc))
                await self._idle(delay, wake=False)

    async def stop(self, grace: float | None = 30.0) -> None:
        """Ask :meth:`run` to return after the round in flight (a publish is never cancelled)
        and wait up to ``grace`` seconds for it. A stopped relay stays stopped."""
        self._stopping = True
        self._stop_event.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._done.wait()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _stop_requested(self) -> bool:  # a call, so that type checkers do not narrow it
        return self._stopping

    async def run_once(self) -> int:
        """One pass: when leader, publish everything ready now; returns how many were
        published. Outages end the pass early (see ``stats.outages``); storage errors raise."""
        async with self._store.leadership() as leader:
            self.stats.is_leader = leader
            if not leader:
                return 0
            try:
                published, _ = await self._drain()
            finally:
                self.stats.is_leader = False
            return published

    # ------------------------------------------------------------------ leader loop

    async def _lead(self) -> None:
        while not self._stopping:
            for event in self._events:
                event.clear()  # before fetching: a commit after this point wakes us again
            await self._maybe_cleanup()
            _, outage = await self._drain()
            if self._stop_requested():
                return
            if outage:
                await self._idle(self._backoff(self._outage_streak, self._outage_max_backoff))
            else:
                await self._idle(self._poll_interval, wake=True)

    async def _drain(self) -> tuple[int, bool]:
        """Publish ready rows batch after batch; returns (published, stopped on an outage)."""
        total = 0
        while not self._stopping:
            now = self._clock.now()
            batch = await self._store.fetch_ready(now, self._batch_size)
            if not batch:
                return total, False
            published, progressed, outage = await self._publish(batch)
            total += published
            if outage or not progressed:
                self._outage_streak += 1
                self.stats.outages += 1
                return total, True
            self._outage_streak = 0
            if len(batch) < self._batch_size:
                return total, False
        return total, False

    async def _publish(self, batch: list[StoredOutboxMessage]) -> tuple[int, bool, bool]:
        """Deliver one batch and record the outcome; returns (published, progressed, outage)."""
        self.stats.batches += 1
        with telemetry.span("cms.outbox.publish", {"cms.events": len(batch)}):
            results = await self._deliver(batch)
        acked = self._clock.now()
        delivered = [row for row, r in zip(batch, results, strict=True) if _ok(r)]
        if delivered:
            with telemetry.span("cms.outbox.mark_published", {"cms.events": len(delivered)}):
                await self._store.mark_published([row.seq for row in delivered], acked)
            self.stats.published += len(delivered)
            self.stats.last_published_at = acked
            for row in delivered:
                self.stats.lag_samples.append(
                    max(0.0, (acked - row.message.created_at).total_seconds())
                )
        failed = 0
        outage = False
        for row, result in zip(batch, results, strict=True):
            if result.status is DeliveryStatus.FAILED:
                failed += 1
                await self._record_failure(row, result.error or "failed", acked)
            elif result.status is DeliveryStatus.UNAVAILABLE:
                outage = True
                self.stats.last_error = result.error
        if outage:
            log.warning(
                "event sink unavailable; %d of %d events wait for the next round: %s",
                sum(1 for r in results if r.status is DeliveryStatus.UNAVAILABLE),
                len(batch),
                self.stats.last_error,
            )
        return len(delivered), bool(delivered) or failed > 0, outage

    async def _record_failure(self, row: StoredOutboxMessage, error: str, now: datetime) -> None:
        attempts = row.attempts + 1
        dead = attempts >= self._max_attempts
        delay = self._backoff(attempts, self._max_backoff)
        next_attempt = now + timedelta(seconds=delay)
        await self._store.record_failure(row.seq, error[:1000], next_attempt, dead)
        self.stats.failures += 1
        self.stats.last_error = error
        if dead:
            self.stats.dead += 1
            log.error(
                "outbox event %s (%s) is dead after %d attempts: %s",
                row.message.event_id,
                row.message.topic,
                attempts,
                error,
            )
        else:
            log.warning(
                "outbox event %s (%s) failed (attempt %d of %d, next in %.1fs): %s",
                row.message.event_id,
                row.message.topic,
                attempts,
                self._max_attempts,
                delay,
                error,
            )

    async def _deliver(self, batch: list[StoredOutboxMessage]) -> list[Delivery]:
        messages = [row.message for row in batch]
        try:
            results = list(await self._sink.publish(messages))
        except _OUTAGE_ERRORS as exc:
            return [Delivery(DeliveryStatus.UNAVAILABLE, describe(exc))] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [Delivery(DeliveryStatus.FAILED, describe(exc))]
            log.warning("event sink raised on a batch; retrying one by one: %s", describe(exc))
            return await self._deliver_one_by_one(batch)
        if len(results) != len(batch):
            log.error("event sink returned %d results for %d events", len(results), len(batch))
            return [Delivery(DeliveryStatus.UNAVAILABLE, "sink returned a wrong result count")] * (
                len(batch)
            )
        return results

    async def _deliver_one_by_one(self, batch: list[StoredOutboxMessage]) -> list[Delivery]:
        results: list[Delivery] = []
        failed_keys: set[tuple[str, str]] = set()
        outage: Delivery | None = None
        for row in batch:
            ident = (row.message.topic, row.message.key)
            if outage is not None:
                results.append(outage)
                continue
            if ident in failed_keys:
                results.append(Delivery(DeliveryStatus.SKIPPED))
                continue
            (result,) = await self._deliver([row])
            if result.status is DeliveryStatus.UNAVAILABLE:
                outage = result
            elif not _ok(result):
                failed_keys.add(ident)
            results.append(result)
        return results

    async def _maybe_cleanup(self) -> None:
        if self._retention is None:
            return
        loop = asyncio.get_running_loop()
        if self._last_cleanup is not None and (
            loop.time() - self._last_cleanup < self._cleanup_interval
        ):
            return
        self._last_cleanup = loop.time()
        try:
            purged = await self.cleanup()
        except Exception as exc:  # cleanup must never stop publishing
            log.warning("outbox cleanup failed: %s", describe(exc))
            return
        if purged:
            log.info("outbox cleanup removed %d published events", purged)

    async def cleanup(self) -> int:
        """Delete published rows, and inbox entries, older than the retention now; returns
        how many published rows went (the inbox count is in ``stats.inbox_purged``)."""
        if self._retention is None:
            return 0
        before = self._clock.now() - self._retention
        purged = await self._store.purge_published(before)
        self.stats.purged += purged
        self.stats.inbox_purged += await self._store.purge_inbox(before)
        return purged

    # ------------------------------------------------------------------ waiting

    def _backoff(self, attempt: int, cap: float) -> float:
        return float(min(cap, self._base_backoff * 2 ** max(0, attempt - 1)))

    async def _idle(self, seconds: float, *, wake: bool = False) -> None:
        """Sleep up to ``seconds``; return early on stop and, when ``wake``, on a wakeup."""
        timeout = seconds
        if self._stopping or timeout <= 0:
            return
        waiters: list[Callable[[], Awaitable[object]]] = [self._stop_event.wait]
        if wake:
            waiters += [e.wait for e in self._events]
            waiters += [_bind(s, timeout) for s in self._sources]
        if len(waiters) == 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), timeout)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        tasks = [asyncio.ensure_future(w()) for w in waiters]
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if done and all(t.exception() is not None for t in done if not t.cancelled()):
                for t in done:  # a broken wakeup source must not turn into a busy loop
                    error = None if t.cancelled() else t.exception()
                    if error is not None:
                        log.debug("outbox wakeup source failed: %s", describe(error))
                remaining = deadline - loop.time()
                if remaining > 0 and not tasks[0].done():
                    await asyncio.wait([tasks[0]], timeout=remaining)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _bind(source: WakeupSource, timeout: float) -> Callable[[], Awaitable[object]]:
    async def wait() -> object:
        return await source.wait(timeout)

    return wait


def _ok(result: Delivery) -> bool:
    return result.status is DeliveryStatus.DELIVERED
