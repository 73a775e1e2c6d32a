"""Phase-1 matching on PostgreSQL: suggestion ingest and the timeout sweep.

- Ingest: ``ingest_suggestions`` (what the consumer calls per message), one message after the
  other as a partition is consumed, for a class of 30 students; each message is a batch of
  ``essays_per_batch`` essays with three suggestions each (two of the class, one stranger).
  Reference: the same association and batch rows written with raw asyncpg (``executemany``),
  one transaction per message.
- Sweep: ``expire_due_batches`` over every ingested batch (all past their deadline: the
  policy's timeout is 0 h); every pending association is decided, half keep their suggestion,
  half get the UNKNOWN placeholder. Reference: raw asyncpg ``executemany`` ``UPDATE`` of the
  same number of association rows by primary key, one transaction per 50 batches.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from adapters_sql import build_sql_runtime, create_engine
from bench.results import Measurement
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import MatchingPolicy, RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.matching import (
    IngestOutcome,
    expire_due_batches,
    ingest_suggestions,
)
from class_core.use_cases.students import CreateStudent, PersonName, create_student

OWNER = "bench-matching-teacher"
CLASS_SIZE = 30
INGEST_TARGET = 10_000  # essays/s
SWEEP_TARGET = 20_000  # associations/s

_INSERT_BATCH = """
INSERT INTO cms_batches (batch_id, class_id, owner_id, course_code, status, deadline,
                         created_at, updated_at, timeout_triggered)
VALUES ($1, $2, $3, 'ENG5', 'pending', $4, $4, $4, false)
"""
_INSERT_ASSOCIATION = """
INSERT INTO cms_essay_associations (essay_id, batch_id, class_id, suggested_student_id,
    confidence_score, match_reasons, validation_status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending_validation', $7, $7)
"""
_UPDATE_ASSOCIATION = """
UPDATE cms_essay_associations SET student_id = $2, validation_status = 'timeout_confirmed',
    validation_method = 'timeout', validated_by = 'SYSTEM_TIMEOUT', validated_at = $3,
    updated_at = $3
WHERE essay_id = $1
"""


def _messages(
    class_id: UUID, students: list[UUID], batches: int, essays: int, seed: int
) -> list[SuggestionsMessage]:
    rng = random.Random(seed)
    out = []
    for _ in range(batches):
        matches = []
        for _ in range(essays):
            first, second = rng.sample(students, 2)
            matches.append(
                EssayMatch(
                    uuid4(),
                    (
                        Suggestion(first, round(rng.uniform(0.4, 1.0), 3), ("name_match",)),
                        Suggestion(second, round(rng.uniform(0.1, 0.6), 3), ("email_match",)),
                        Suggestion(uuid4(), 0.99, ("not_in_class",)),
                    ),
                )
            )
        out.append(
            SuggestionsMessage(str(uuid4()), uuid4(), uuid4(), class_id, "ENG5", tuple(matches))
        )
    return out


async def _seed_class(rt_engine_url: str) -> tuple[UUID, list[UUID]]:
    engine = create_engine(rt_engine_url, pool_size=2, max_overflow=0)
    try:
        rt = build_sql_runtime(engine)
        ctx = RequestContext(OWNER)
        cls = await create_class(rt, ctx, CreateClass("Bench matching 9C", ["ENG5"]))
        students = []
        for i in range(CLASS_SIZE):
            s = await create_student(
                rt, ctx, CreateStudent(PersonName("Essay", f"Author {i:02d}"), None, (cls.id,))
            )
            students.append(s.id)
        return cls.id, students
    finally:
        await engine.dispose()


async def _analyze(pg_url: str) -> None:
    """Statistics as a running database has them (autovacuum), so that the sweep's plans are
    those of production rather than those of a table that was empty seconds ago."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ANALYZE cms_batches, cms_essay_associations")
    finally:
        await conn.close()


async def _reference_ingest(
    pg_url: str, messages: list[SuggestionsMessage], members: set[UUID]
) -> float:
    """Seconds for raw asyncpg to write the same batches and associations."""
    conn = await asyncpg.connect(pg_url)
    try:
        started = time.perf_counter()
        for msg in messages:
            now = datetime.now(UTC)
            rows = []
            for m in msg.matches:
                best = max(
                    (s for s in m.suggestions if s.student_id in members),
                    key=lambda s: s.confidence_score,
                    default=None,
                )
                rows.append(
                    (
                        m.essay_id,
                        msg.batch_id,
                        msg.class_id,
                        best.student_id if best else None,
                        best.confidence_score if best else None,
                        '["name_match"]',
                        now,
                    )
                )
            async with conn.transaction():
                await conn.execute(_INSERT_BATCH, msg.batch_id, msg.class_id, OWNER, now)
                await conn.executemany(_INSERT_ASSOCIATION, rows)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _reference_sweep(pg_url: str, messages: list[SuggestionsMessage], per_tx: int) -> float:
    """Seconds for raw asyncpg to decide the same number of associations by primary key."""
    conn = await asyncpg.connect(pg_url)
    try:
        started = time.perf_counter()
        for i in range(0, len(messages), per_tx):
            now = datetime.now(UTC)
            rows = [
                (m.essay_id, (m.suggestions[0].student_id), now)
                for msg in messages[i : i + per_tx]
                for m in msg.matches
            ]
            async with conn.transaction():
                await conn.executemany(_UPDATE_ASSOCIATION, rows)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(
    pg_url: str, *, batches: int = 100, essays_per_batch: int = 200, per_transaction: int = 50
) -> list[Measurement]:
    """Ingest ``batches`` × ``essays_per_batch`` essays, then sweep them all."""
    class_id, students = await _seed_class(pg_url)
    members = set(students)
    messages = _messages(class_id, students, batches, essays_per_batch, seed=1)
    total = batches * essays_per_batch
    engine = create_engine(pg_url, pool_size=4, max_overflow=0)
    try:
        rt = build_sql_runtime(engine, policy=MatchingPolicy(timeout_hours=0.0))
        started = time.perf_counter()
        for msg in messages:
            result = await ingest_suggestions(rt, msg)
            if result.outcome is not IngestOutcome.STORED:
                raise RuntimeError(f"ingest: unexpected outcome {result.outcome}")
        ingest_seconds = time.perf_counter() - started
        # Test data the sweep does not use is not kept alive while it runs: hundreds of
        # thousands of objects that every full garbage collection would walk (a scheduler
        # process holds ~100k objects in all), which would be a cost of the benchmark.
        del messages
        await _analyze(pg_url)
        started = time.perf_counter()
        finalized = await expire_due_batches(rt, per_transaction=per_transaction)
        sweep_seconds = time.perf_counter() - started
        decided = sum(f.auto_confirmed + f.unknown_assigned for f in finalized)
        if len(finalized) != batches or decided != total:
            raise RuntimeError(f"sweep: {len(finalized)} batches, {decided} associations")
    finally:
        await engine.dispose()
    reference_messages = _messages(class_id, students, batches, essays_per_batch, seed=2)
    ref_ingest_seconds = await _reference_ingest(pg_url, reference_messages, members)
    ref_sweep_seconds = await _reference_sweep(pg_url, reference_messages, per_transaction)
    return [
        Measurement(
            "ingest suggestions",
            total / ingest_seconds,
            "essays/s",
            reference_name="raw asyncpg",
            reference_value=total / ref_ingest_seconds,
            target=INGEST_TARGET,
            note=f"{batches} messages × {essays_per_batch} essays, class of {CLASS_SIZE}",
        ),
        Measurement(
            "timeout sweep",
            decided / sweep_seconds,
            "assoc/s",
            reference_name="raw asyncpg",
            reference_value=total / ref_sweep_seconds,
            target=SWEEP_TARGET,
            note=f"{batches} batches, {per_transaction} per transaction",
        ),
    ]
