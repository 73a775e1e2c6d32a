"""Outbox relay on PostgreSQL → the Kafka-protocol test broker (tansu, loopback).

- Throughput: ``prefill`` outbox rows (student events and teacher notifications spread over
  many keys, as the use cases record them; ``ANALYZE`` after the fill), then one
  ``OutboxRelay.run_once()`` drains them through ``KafkaEventSink`` (idempotence off: the test
  broker has none). Reference: a bare aiokafka producer sending the same messages with the
  same producer settings (the broker's ceiling on this machine).
- Lag: the real use case (``create_student`` into a class: two events per write) at a steady
  ``rate`` writes/s for ``seconds`` while a running relay, woken by ``LISTEN/NOTIFY``,
  publishes; lag = event ``created_at`` → broker acknowledgement (``RelayStats`` samples).
  Reference: ``send_and_wait`` latency of single messages to the same broker at the same rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
from aiokafka import AIOKafkaProducer

from adapters_messaging import KafkaEventSink, OutboxRelay
from adapters_sql import OutboxWakeups, SqlOutboxStore, build_sql_runtime, create_engine
from adapters_sql.envelopes import ENVELOPES
from adapters_sql.mapping import OUTBOX_RECORD_COLUMNS, outbox_record
from bench.loadgen import percentile
from bench.results import Measurement
from class_core.events import (
    OutboxMessage,
    StudentCreatedV1,
    TeacherNotification,
)
from class_core.notifications import student_added_to_class
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

THROUGHPUT_TARGET = 5_000  # events/s
LAG_TARGET_MS = 500
OWNER = "bench-relay-teacher"


def _sample_messages(n: int, at: datetime) -> list[OutboxMessage]:
    """``n`` outbox messages as ``create_student`` records them (created + notification)."""
    from class_core.model import SchoolClass, Student

    cls = SchoolClass(uuid4(), OWNER, "Bench relay 9D", "ENG5", at, at)
    out: list[OutboxMessage] = []
    while len(out) < n:
        student = Student(
            id=uuid4(),
            owner_id=OWNER,
            first_name="Relay",
            last_name=f"Student {len(out)}",
            legal_full_name=None,
            email=None,
            created_at=at,
            updated_at=at,
            class_ids=(cls.id,),
        )
        events: list[StudentCreatedV1 | TeacherNotification] = [
            StudentCreatedV1(
                student.id,
                student.first_name,
                student.last_name,
                None,
                (cls.id,),
                OWNER,
                uuid4(),
                at,
            ),
            student_added_to_class(student, cls, uuid4(), at),
        ]
        for event in events:
            out.append(build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=at))
    return out[:n]


async def _prefill(pg_url: str, messages: list[OutboxMessage]) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.copy_records_to_table(
            "cms_outbox",
            columns=list(OUTBOX_RECORD_COLUMNS),
            records=[outbox_record(m) for m in messages],
        )
        await conn.execute("ANALYZE cms_outbox")
    finally:
        await conn.close()


async def _producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    return producer


async def _warm_topics(bootstrap: str, messages: list[OutboxMessage]) -> None:
    """Create the topics (first metadata request) outside every timed section."""
    producer = await _producer(bootstrap)
    try:
        for topic in sorted({m.topic for m in messages}):
            await producer.send_and_wait(topic, value=b"{}", key=b"warm-up")
    finally:
        await producer.stop()


async def _reference_throughput(bootstrap: str, messages: list[OutboxMessage]) -> float:
    producer = await _producer(bootstrap)
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(
                m.topic,
                value=m.payload.encode(),
                key=m.key.encode(),
                headers=[(k, v.encode()) for k, v in m.headers],
            )
            for m in messages
        ]
        await asyncio.gather(*futures)
        return len(messages) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _reference_lag(bootstrap: str, rate: float, seconds: float) -> list[float]:
    producer = await _producer(bootstrap)
    samples: list[float] = []
    try:
        messages = _sample_messages(int(rate * seconds), datetime.now(UTC))
        start = time.perf_counter()
        for i, m in enumerate(messages):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await producer.send_and_wait(m.topic, value=m.payload.encode(), key=m.key.encode())
            samples.append(time.perf_counter() - t0)
    finally:
        await producer.stop()
    return samples


async def write_steadily(pg_url: str, class_id: UUID, rate: float, seconds: float) -> int:
    """``create_student`` into ``class_id`` at ``rate``/s for ``seconds``; returns the count.

    Runs in its own process (``python -m bench.relay_bench``), as an API would, so that the
    relay's event loop is not shared with the writers."""
    engine = create_engine(pg_url, pool_size=8, max_overflow=0)
    writes = 0
    try:
        rt = build_sql_runtime(engine)
        start = time.perf_counter()
        pending: set[asyncio.Task[object]] = set()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            cmd = CreateStudent(PersonName("Lag", f"Writer {i}"), None, (class_id,))
            task = asyncio.create_task(create_student(rt, RequestContext(OWNER), cmd))
            pending.add(task)
            task.add_done_callback(pending.discard)
            writes += 1
        await asyncio.gather(*pending)
    finally:
        await engine.dispose()
    return writes


async def _lag(pg_url: str, bootstrap: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Lag samples (seconds) while another process writes at ``rate``/s."""
    engine = create_engine(pg_url, pool_size=3, max_overflow=0)
    wakeups = OutboxWakeups(engine)
    sink = KafkaEventSink(bootstrap, enable_idempotence=False)
    relay = OutboxRelay(
        SqlOutboxStore(engine), sink, wakeup=wakeups, retention=None, poll_interval=1.0
    )
    samples: list[float] = []
    task = asyncio.create_task(relay.run())
    try:
        rt = build_sql_runtime(engine)
        cls = await create_class(rt, RequestContext(OWNER), CreateClass("Bench lag 9E", ["ENG5"]))
        await asyncio.sleep(0.5)  # leadership and LISTEN
        relay.stats.take_lag_samples()
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.relay_bench",
            pg_url,
            str(cls.id),
            str(rate),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _project_path()},
        )
        assert writer.stdout is not None
        while writer.returncode is None:
            samples.extend(relay.stats.take_lag_samples())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.wait(), 0.2)
        out = await writer.stdout.read()
        if writer.returncode != 0:
            raise RuntimeError(f"lag writer failed with exit code {writer.returncode}")
        writes = int(out.decode().strip() or 0)
        deadline = time.perf_counter() + 10
        while len(samples) < 2 * writes and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            samples.extend(relay.stats.take_lag_samples())
    finally:
        await relay.stop(grace=10)
        with contextlib.suppress(Exception):
            await task
        await sink.stop()
        await wakeups.close()
        await engine.dispose()
    return samples, writes


def _project_path() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    existing = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + existing if existing else "")


async def run(
    pg_url: str,
    bootstrap: str,
    *,
    prefill: int = 20_000,
    rate: float = 200.0,
    seconds: float = 10.0,
) -> list[Measurement]:
    """Relay throughput after a prefill, and commit-to-publish lag at ``rate`` writes/s."""
    created = datetime.now(UTC) - timedelta(seconds=1)
    messages = _sample_messages(prefill, created)
    await _warm_topics(bootstrap, messages)
    await _prefill(pg_url, messages)

    engine = create_engine(pg_url, pool_size=3, max_overflow=0)
    sink = KafkaEventSink(bootstrap, enable_idempotence=False)
    try:
        await sink.start()
        relay = OutboxRelay(SqlOutboxStore(engine), sink, retention=None)
        started = time.perf_counter()
        published = await relay.run_once()
        relay_rate = published / (time.perf_counter() - started)
        if published != prefill:
            raise RuntimeError(f"relay published {published} of {prefill}")
    finally:
        await sink.stop()
        await engine.dispose()
    reference_rate = await _reference_throughput(bootstrap, messages)

    samples, writes = await _lag(pg_url, bootstrap, rate, seconds)
    if len(samples) < 2 * writes:
        raise RuntimeError(f"lag: {len(samples)} samples for {2 * writes} events")
    samples.sort()
    reference = sorted(await _reference_lag(bootstrap, rate, seconds))
    return [
        Measurement(
            "relay throughput",
            relay_rate,
            "events/s",
            reference_name="bare producer",
            reference_value=reference_rate,
            target=THROUGHPUT_TARGET,
            note=f"{prefill:,} prefilled rows, batch 500",
        ),
        Measurement(
            "relay lag p95",
            percentile(samples, 0.95) * 1000,
            "ms",
            higher_is_better=False,
            reference_name="send_and_wait",
            reference_value=percentile(reference, 0.95) * 1000,
            target=LAG_TARGET_MS,
            note=f"{writes} writes at {rate:.0f}/s, {len(samples)} events, "
            f"p50 {percentile(samples, 0.5) * 1000:.0f} ms",
        ),
    ]


if __name__ == "__main__":  # the lag writer: URL CLASS_ID RATE SECONDS
    _url, _class, _rate, _seconds = sys.argv[1:5]
    print(asyncio.run(write_steadily(_url, UUID(_class), float(_rate), float(_seconds))))
