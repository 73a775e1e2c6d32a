"""``class-scheduler`` killed with SIGKILL in the middle of its work (contract §2, §4, §6).

Two replicas run the relay, the consumer and the timeout sweep over a backlog: outbox events
(many per key), suggestion messages on the broker (some delivered twice, one for an empty
batch) and a timeout of zero, so that every stored batch is due at once. Replicas are killed
at different moments and replaced; the last one finishes and stops cleanly. Afterwards:

- every suggestion message was consumed exactly once (one inbox row each, none missing);
- every batch is finalized, with exactly one ``StudentAssociationsConfirmedV1`` in the outbox;
- every outbox row was published and none is dead;
- on the broker: every event is there, repeats carry the same event id and the same bytes,
  nothing was published that is not in the outbox, and per key the backlog that was committed
  before the schedulers started comes first and in outbox order. (Events that the replicas
  record meanwhile come from concurrent transactions: their sequence numbers are handed out
  before commit, so for one key they have no order to keep.)
- at most one UNKNOWN placeholder per class; nothing was dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from adapters_sql import build_sql_runtime, create_engine
from class_core.events import (
    ASSOCIATIONS_CONFIRMED,
    PUBLISHED_TOPICS,
    SUGGESTIONS_TOPIC,
    ClassUpdatedV1,
)
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.broker import BrokerProcess, header, produce_raw, read_records
from tests.support.postgres import PgDatabaseFactory

SCHEDULER = str(Path(sys.executable).with_name("class-scheduler"))
CLASSES = 6
STUDENTS_PER_CLASS = 3
UPDATES_PER_CLASS = 300  # one key each: their order must survive the crashes
BATCHES = 120
DUPLICATES = 15  # messages the broker delivers twice (same event id)


def _env(url: str, bootstrap: str, group: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASS_MANAGEMENT_SERVICE_")}
    env.update(
        {
            "CLASS_MANAGEMENT_SERVICE_DATABASE_URL": url,
            "CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CLASS_MANAGEMENT_SERVICE_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "CLASS_MANAGEMENT_SERVICE_KAFKA_CONSUMER_GROUP": group,
            "CLASS_MANAGEMENT_SERVICE_ASSOCIATION_TIMEOUT_HOURS": "0",
            "CLASS_MANAGEMENT_SERVICE_TIMEOUT_CHECK_INTERVAL_SECONDS": "0.3",
            "CLASS_MANAGEMENT_SERVICE_DATABASE_POOL_SIZE": "4",
            "CLASS_MANAGEMENT_SERVICE_LOG_FORMAT": "console",
            "CLASS_MANAGEMENT_SERVICE_LOG_LEVEL": "WARNING",
            # Several replicas on one machine: no operations endpoint (its port is per host).
            "CLASS_MANAGEMENT_SERVICE_SCHEDULER_HTTP_PORT": "0",
        }
    )
    return env


class Replicas:
    """``class-scheduler`` processes; stderr goes to files so that pipes never fill up."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self._dir = Path(tempfile.mkdtemp(prefix="cms-crash-"))

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        log = (self._dir / f"replica-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [SCHEDULER, *flags], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        i = self.procs.index(proc)
        return (self._dir / f"replica-{i}.log").read_text(errors="replace")[-3000:]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> list[int]:
        alive = [p for p in self.procs if p.poll() is None]
        for p in alive:
            p.send_signal(signal.SIGTERM)
        codes = []
        for p in alive:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait(5))
        return codes


@pytest.fixture
def replicas() -> Iterator[Callable[[dict[str, str]], Replicas]]:
    made: list[Replicas] = []

    def make(env: dict[str, str]) -> Replicas:
        made.append(Replicas(env))
        return made[-1]

    yield make
    for r in made:
        for p in r.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


async def _seed(url: str) -> dict[UUID, list[UUID]]:
    """Classes with students, a backlog of updates per class; returns class → students."""
    engine = create_engine(url, pool_size=2, max_overflow=0)
    rt = build_sql_runtime(engine)
    roster: dict[UUID, list[UUID]] = {}
    try:
        for c in range(CLASSES):
            ctx = RequestContext(f"teacher-{c % 3}", uuid4())
            cls = await create_class(rt, ctx, CreateClass(f"Klass {c}", ["SV2"]))
            roster[cls.id] = [
                (
                    await create_student(
                        rt, ctx, CreateStudent(PersonName("Elev", f"{c}-{s}"), None, [cls.id])
                    )
                ).id
                for s in range(STUDENTS_PER_CLASS)
            ]
        for chunk in range(0, UPDATES_PER_CLASS, 50):
            now = datetime.now(UTC)
            corr = uuid4()
            async with rt.uow() as uow:
                events = [
                    ClassUpdatedV1(cls_id, f"v{chunk + i}", None, "teacher-x", corr, now)
                    for i in range(50)
                    for cls_id in roster
                ]
                uow.record(events, corr, now)
                await uow.commit()
    finally:
        await engine.dispose()
    return roster


async def _backlog(url: str) -> set[int]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return {r[0] for r in await conn.execute(text("SELECT seq FROM cms_outbox"))}
    finally:
        await engine.dispose()


def _suggestions(roster: dict[UUID, list[UUID]]) -> tuple[list[bytes], set[str], set[str]]:
    """Message values (with repeats), their distinct event ids, and the batch ids."""
    classes = list(roster)
    values: list[bytes] = []
    ids: set[str] = set()
    batches: set[str] = set()
    for b in range(BATCHES):
        cls_id = classes[b % len(classes)]
        students = roster[cls_id]
        batch_id = str(uuid4())
        results = [] if b == 0 else [  # batch 0 is empty: finalized by the consumer at once
            {"essay_id": str(uuid4()), "suggestions": [
                {"student_id": str(students[e % len(students)]),
                 "confidence_score": (0.95, 0.5, 0.8)[e], "match_reasons": ["name"]}]}
            for e in range(3)
        ] + [{"essay_id": str(uuid4()), "suggestions": []}]  # fmt: skip
        event_id = str(uuid4())
        envelope = {
            "event_id": event_id,
            "event_type": SUGGESTIONS_TOPIC,
            "correlation_id": str(uuid4()),
            "source_service": "nlp_service",
            "schema_version": 1,
            "data": {
                "batch_id": batch_id,
                "class_id": str(cls_id),
                "course_code": "SV2",
                "match_results": results,
            },
        }
        values.append(json.dumps(envelope).encode())
        ids.add(event_id)
        batches.add(batch_id)
    values += values[1 : 1 + DUPLICATES]  # redelivered later
    return values, ids, batches


async def _progress(engine: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM cms_inbox) AS inbox,"
                    " (SELECT count(*) FROM cms_batches WHERE status = 'finalized') AS finalized,"
                    " (SELECT count(*) FROM cms_batches) AS batches,"
                    " (SELECT count(*) FROM cms_outbox WHERE published_at IS NOT NULL) AS sent,"
                    " (SELECT count(*) FROM cms_outbox WHERE published_at IS NULL) AS unsent"
                )
            )
        ).one()
    return dict(row._mapping)


async def _wait(
    engine: Any, done: Callable[[dict[str, int]], bool], what: str, timeout: float
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        state = await _progress(engine)
        if done(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {state}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigkilled_schedulers_lose_nothing_and_repeat_nothing(
    pg_database_factory: PgDatabaseFactory,
    kafka_broker_factory: Callable[[], BrokerProcess],
    replicas: Callable[[dict[str, str]], Replicas],
) -> None:
    url = await pg_database_factory(migrated=True)
    broker = kafka_broker_factory()
    roster = await _seed(url)
    backlog = await _backlog(url)
    values, message_ids, batch_ids = _suggestions(roster)
    await produce_raw(
        broker.bootstrap, SUGGESTIONS_TOPIC, [(v[-60:], v, []) for v in values]
    )  # keys spread the batches over the partitions
    group = f"cms-crash-{uuid4().hex[:8]}"
    fleet = replicas(_env(url, broker.bootstrap, group))
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        # Killed mid-relay: one of the two holds the relay's leadership and is publishing the
        # backlog, the other stands by. (Without their consumers: a killed group member holds
        # its partitions until its session times out, which only makes the test slower.)
        pair = [fleet.start("--no-consumer"), fleet.start("--no-consumer")]
        await _wait(engine, lambda s: s["sent"] >= len(backlog) // 4, "the relay mid-backlog", 60)
        for proc in pair:
            fleet.kill(proc)
        # Killed mid-consume and mid-sweep, both at once: nobody is left for a moment.
        pair = [fleet.start(), fleet.start()]
        await _wait(
            engine,
            lambda s: s["inbox"] >= BATCHES * 0.4 and s["finalized"] >= BATCHES * 0.2,
            "the consumers and sweeps mid-way",
            60,
        )
        for proc in pair:
            fleet.kill(proc)
        last = fleet.start()
        final = await _wait(
            engine,
            lambda s: s["inbox"] == BATCHES and s["finalized"] == BATCHES and s["unsent"] == 0,
            "everything done",
            120,
        )
        await asyncio.sleep(1.0)  # a few more sweeps and relay rounds over the finished work
        assert last.poll() is None, fleet.log(last)
        assert fleet.stop_all() == [0], fleet.log(last)
        assert await _progress(engine) == final

        async with engine.connect() as conn:
            inbox = {r[0] for r in await conn.execute(text("SELECT message_id FROM cms_inbox"))}
            outbox = (
                await conn.execute(
                    text(
                        "SELECT seq, event_id, topic, key, payload, dead_at IS NOT NULL "
                        "FROM cms_outbox ORDER BY seq"
                    )
                )
            ).all()
            pending = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM cms_essay_associations "
                        "WHERE validation_status = 'pending_validation'"
                    )
                )
            ).scalar_one()
            placeholders = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM cms_students WHERE is_placeholder "
                        "GROUP BY placeholder_class_id HAVING count(*) > 1"
                    )
                )
            ).all()
    finally:
        await engine.dispose()

    assert inbox == message_ids  # each message once; the repeats changed nothing
    assert pending == 0
    assert not placeholders
    assert not any(row[5] for row in outbox), "no event is dead"
    confirmed = Counter(
        json.loads(row[4])["data"]["batch_id"] for row in outbox if row[2] == ASSOCIATIONS_CONFIRMED
    )
    assert set(confirmed) == batch_ids
    assert set(confirmed.values()) == {1}, "a batch was finalized twice"

    by_id = {str(row[1]): row for row in outbox}
    records = await read_records(
        broker.bootstrap,
        [*PUBLISHED_TOPICS, SUGGESTIONS_TOPIC + ".dlt"],
        until=lambda rs: set(by_id) <= {header(r, "event_id") for r in rs},
        timeout=30,
    )
    assert not [r for r in records if r.topic.endswith(".dlt")], "nothing is dead-lettered"
    first_seen: dict[tuple[str, str], list[str]] = {}
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        event_id = header(r, "event_id")
        assert event_id in by_id, "an event was published that the outbox never had"
        row = by_id[event_id]
        assert (r.topic, r.key, r.value) == (row[2], row[3].encode(), row[4].encode())
        order = first_seen.setdefault((row[2], row[3]), [])
        if event_id not in order:
            order.append(event_id)
    assert {i for ids in first_seen.values() for i in ids} == set(by_id), "events were lost"
    for (topic, key), ids in first_seen.items():
        committed_before = [
            str(r[1]) for r in outbox if (r[2], r[3]) == (topic, key) and r[0] in backlog
        ]
        assert ids[: len(committed_before)] == committed_before, (topic, key)
