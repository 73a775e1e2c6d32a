"""``class-scheduler`` as real processes: two replicas sweep the same expired batches."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from adapters_sql import build_sql_runtime, create_engine
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import RequestContext
from class_core.testing import FixedClock
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.matching import ingest_suggestions
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.postgres import PgDatabaseFactory

SCHEDULER = str(Path(sys.executable).with_name("class-scheduler"))
CONFIRMED_TOPIC = "huleedu.class.student.associations.confirmed.v1"


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASS_MANAGEMENT_SERVICE_")}
    env["CLASS_MANAGEMENT_SERVICE_DATABASE_URL"] = url
    env["CLASS_MANAGEMENT_SERVICE_LOG_FORMAT"] = "console"
    # Replicas share this machine: no operations endpoint unless a test asks for a port.
    env["CLASS_MANAGEMENT_SERVICE_SCHEDULER_HTTP_PORT"] = "0"
    env.update({f"CLASS_MANAGEMENT_SERVICE_{k}": v for k, v in extra.items()})
    return env


async def _seed(url: str, classes: int, batches_per_class: int) -> dict[UUID, dict[str, UUID]]:
    """Expired batches: per batch one essay at 0.7, one at 0.69, one without a suggestion."""
    engine = create_engine(url)
    clock = FixedClock(datetime.now(UTC) - timedelta(days=2))
    rt = build_sql_runtime(engine, clock=clock)
    expected: dict[UUID, dict[str, UUID]] = {}
    try:
        for c in range(classes):
            ctx = RequestContext(f"teacher-{c}")
            cls = await create_class(rt, ctx, CreateClass(f"Class {c}", ["SV1"]))
            high = await create_student(
                rt, ctx, CreateStudent(PersonName("Hög", "Säker"), None, [cls.id])
            )
            low = await create_student(
                rt, ctx, CreateStudent(PersonName("Låg", "Osäker"), None, [cls.id])
            )
            for _ in range(batches_per_class):
                kept, dropped, empty = uuid4(), uuid4(), uuid4()
                msg = SuggestionsMessage(
                    str(uuid4()),
                    uuid4(),
                    uuid4(),
                    cls.id,
                    "SV1",
                    (
                        EssayMatch(kept, (Suggestion(high.id, 0.7, ("name",)),)),
                        EssayMatch(dropped, (Suggestion(low.id, 0.69, ("email",)),)),
                        EssayMatch(empty),
                    ),
                )
                await ingest_suggestions(rt, msg)
                expected[msg.batch_id] = {"kept": kept, "high": high.id, "class": cls.id}
    finally:
        await engine.dispose()
    return expected


async def _pending_batches(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT count(*) FROM cms_batches WHERE status = 'pending'")
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_two_schedulers_finalize_each_batch_once(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=True)
    expected = await _seed(url, classes=4, batches_per_class=10)
    env = _env(url, TIMEOUT_CHECK_INTERVAL_SECONDS="0.5")
    procs = [
        subprocess.Popen(
            [SCHEDULER, "--no-relay", "--no-consumer"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while await _pending_batches(url) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # let both replicas sweep again over finalized batches
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=30) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    assert await _pending_batches(url) == 0

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT payload FROM cms_outbox WHERE topic = :t"),
                    {"t": CONFIRMED_TOPIC},
                )
            ).all()
            placeholders = (
                await conn.execute(
                    text(
                        "SELECT placeholder_class_id, count(*) FROM cms_students "
                        "WHERE is_placeholder GROUP BY placeholder_class_id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()

    events = [json.loads(r.payload)["data"] for r in rows]
    per_batch: dict[str, int] = {}
    for e in events:
        per_batch[e["batch_id"]] = per_batch.get(e["batch_id"], 0) + 1
    assert per_batch == {str(b): 1 for b in expected}, "exactly one event per batch"
    class_ids = {v["class"] for v in expected.values()}
    assert {UUID(str(r[0])) for r in placeholders} == class_ids
    assert all(r[1] == 1 for r in placeholders), "one placeholder per class"

    for e in events:
        exp = expected[UUID(e["batch_id"])]
        assert e["timeout_triggered"] is True
        by_essay = {a["essay_id"]: a for a in e["associations"]}
        kept = by_essay[str(exp["kept"])]
        assert kept["student_id"] == str(exp["high"])  # 0.7 ≥ 0.7: kept
        assert kept["confidence_score"] == 0.7
        others = [a for k, a in by_essay.items() if k != str(exp["kept"])]
        assert len({a["student_id"] for a in others}) == 1  # both → the UNKNOWN student
        assert all(a["student_id"] != str(exp["high"]) for a in others)
        assert all(a["confidence_score"] == 0.0 for a in others)
        assert all(a["validation_method"] == "timeout" for a in e["associations"])
        assert all(a["validated_by"] == "SYSTEM_TIMEOUT" for a in e["associations"])
        assert e["validation_summary"]["total_associations"] == 3
        assert e["validation_summary"]["confirmed"] == 3


def test_scheduler_refuses_bad_configuration() -> None:
    env = _env("postgresql://127.0.0.1:1/none", CONFIDENCE_THRESHOLD="1.5")
    proc = subprocess.run([SCHEDULER], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["CLASS_MANAGEMENT_SERVICE_CONFIDENCE_THRESHOLD: must be between 0 and 1"]


async def test_scheduler_refuses_unmigrated_database(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=False)
    proc = subprocess.run([SCHEDULER], env=_env(url), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "class-admin db upgrade" in lines[0]
