"""The change feed on PostgreSQL (contract §9.3): a page of 1,000 changes whatever the log holds.

One owner has 1,000 changed objects (200 classes, 800 students, each student in a class);
their log entries are spread at random among entries of 10,000 other owners. A page is
``read_changes`` (the use case behind ``GET /v1/changes``) from a cursor before them, with
``limit=1000``: the log's page, the commit-safety window (the cursor's snapshot is a real
one), and the data of the 1,000 objects (one query per kind), rendered as ``GET`` renders
them. P95 over ``reads`` pages from a log of ``small`` entries and from one of ``large``
entries (two databases, ``VACUUM ANALYZE``d as autovacuum would leave them), the reads of the
two alternating so that the machine's other load weighs on both alike. Target: the large P95
within 1.2× of the small one (issue 16).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from adapters_sql import build_sql_runtime, create_engine
from bench.results import Measurement
from bench.services import fresh_database
from class_api.dto import changes_out
from class_core.changes import FeedPolicy, FeedPosition, decode_cursor, encode_cursor
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.changes import read_changes

OWNER = "bench-changes-teacher"
CLASSES = 200
STUDENTS = 800
OTHER_OWNERS = 10_000
TARGET_RATIO = 1.2

_COPY_COLUMNS = ("seq", "entity", "object_id", "owner_id", "op", "version", "at", "xid")


async def _seed_objects(conn: asyncpg.Connection, at: datetime) -> list[tuple[str, uuid.UUID]]:
    classes = [uuid.uuid4() for _ in range(CLASSES)]
    students = [uuid.uuid4() for _ in range(STUDENTS)]
    await conn.copy_records_to_table(
        "cms_classes",
        columns=("id", "owner_id", "name", "course_code", "search_key", "created_at",
                 "updated_at", "version"),
        records=[(c, OWNER, f"Class {i}", "ENG5", f"class {i}", at, at, 1)
                 for i, c in enumerate(classes)],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "cms_students",
        columns=("id", "owner_id", "first_name", "last_name", "search_key", "created_at",
                 "updated_at", "version"),
        records=[(s, OWNER, f"First{i}", f"Last{i}", f"first{i} last{i}", at, at, 2)
                 for i, s in enumerate(students)],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "cms_class_students",
        columns=("class_id", "student_id"),
        records=[(classes[i % CLASSES], s) for i, s in enumerate(students)],
    )
    return [("class", c) for c in classes] + [("student", s) for s in students]


async def _fill(
    conn: asyncpg.Connection,
    total: int,
    first_seq: int,
    mine: list[tuple[str, uuid.UUID]],
    at: datetime,
    rng: random.Random,
) -> int:
    """Append entries up to ``total`` rows, the owner's ``mine`` (if any) spread among them;
    returns the next free seq."""
    existing = await conn.fetchval("SELECT count(*) FROM cms_changes")
    others = total - existing - len(mine)
    slots = sorted(rng.sample(range(others + len(mine)), len(mine)))
    mine_at = dict(zip(slots, mine, strict=True))
    rows = []
    seq = first_seq
    for i in range(others + len(mine)):
        if i in mine_at:
            entity, object_id = mine_at[i]
            rows.append((seq, entity, object_id, OWNER, "upsert", 1, at, 1))
        else:
            owner = f"bench-owner-{rng.randrange(OTHER_OWNERS)}"
            rows.append((seq, "student", uuid.uuid4(), owner, "upsert", 1, at, 1))
        seq += 1
        if len(rows) >= 100_000:
            await conn.copy_records_to_table("cms_changes", columns=_COPY_COLUMNS, records=rows)
            rows = []
    if rows:
        await conn.copy_records_to_table("cms_changes", columns=_COPY_COLUMNS, records=rows)
    await conn.execute("SELECT setval(pg_get_serial_sequence('cms_changes', 'seq'), $1)", seq)
    await conn.execute("VACUUM ANALYZE cms_changes")  # as autovacuum leaves a settled table
    return seq


async def _page_ms(rt: Runtime, cursor: str) -> float:
    started = time.perf_counter()
    page = await read_changes(rt, RequestContext(OWNER), cursor, 1000)
    msgspec.json.encode(changes_out(page))
    elapsed = (time.perf_counter() - started) * 1000
    assert len(page.items) == 1000, len(page.items)
    return elapsed


async def _prepare(url: str, total: int, seed: int) -> tuple[asyncpg.Connection, str]:
    """The owner's objects and a log of ``total`` entries; the connection and the cursor."""
    rng = random.Random(seed)
    at = datetime.now(UTC) - timedelta(hours=1)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    mine = await _seed_objects(conn, at)
    # The cursor: before the owner's entries, with a real snapshot (the window runs too).
    snapshot = await conn.fetchval("SELECT pg_current_snapshot()::text")
    secret = await conn.fetchval("SELECT secret FROM cms_change_feed_key")
    cursor = encode_cursor(FeedPosition(0, snapshot), datetime.now(UTC), bytes.fromhex(secret))
    await _fill(conn, total, 1, mine, at, rng)
    return conn, cursor


async def _log_ms(rt: Runtime, cursor: str, key: bytes) -> float:
    """The log's part of a page alone: the entries after the cursor (snapshot + one query)."""
    position = decode_cursor(cursor, key, datetime.now(UTC), FeedPolicy())
    started = time.perf_counter()
    async with rt.read() as uow:
        read = await uow.changes.read(OWNER, position, 1001)
    elapsed = (time.perf_counter() - started) * 1000
    assert len(read.entries) == 1000, len(read.entries)
    return elapsed


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


async def run(
    url: str, small: int = 10_000, large: int = 1_000_000, reads: int = 60, rounds: int = 9
) -> list[Measurement]:
    """``url`` holds the small log; a second fresh database the large one. Reads alternate
    between the two, so that the machine's other load weighs on both alike; each figure is
    the median over ``rounds`` rounds of the P95 of ``reads`` reads."""
    async with fresh_database() as large_url:
        small_conn, small_cursor = await _prepare(url, small, 16)
        large_conn, large_cursor = await _prepare(large_url, large, 61)
        engines = [create_engine(u, pool_size=2, max_overflow=0) for u in (url, large_url)]
        try:
            small_rt, large_rt = (build_sql_runtime(e) for e in engines)
            async with small_rt.read() as uow:
                small_key = await uow.changes.cursor_key()
            async with large_rt.read() as uow:
                large_key = await uow.changes.cursor_key()
            pages: dict[str, list[float]] = {"small": [], "large": []}
            every: dict[str, list[float]] = {"small": [], "large": []}
            logs: dict[str, list[float]] = {"small": [], "large": []}
            for _ in range(3):  # warm-up
                await _page_ms(small_rt, small_cursor)
                await _page_ms(large_rt, large_cursor)
            for _ in range(rounds):
                round_pages: dict[str, list[float]] = {"small": [], "large": []}
                round_logs: dict[str, list[float]] = {"small": [], "large": []}
                for _ in range(reads):
                    round_pages["small"].append(await _page_ms(small_rt, small_cursor))
                    round_pages["large"].append(await _page_ms(large_rt, large_cursor))
                    round_logs["small"].append(await _log_ms(small_rt, small_cursor, small_key))
                    round_logs["large"].append(await _log_ms(large_rt, large_cursor, large_key))
                for size in ("small", "large"):
                    every[size] += round_pages[size]
                    pages[size].append(_p95(round_pages[size]))
                    logs[size].append(_p95(round_logs[size]))
        finally:
            for e in engines:
                await e.dispose()
            await small_conn.close()
            await large_conn.close()
    small_p95, large_p95 = statistics.median(pages["small"]), statistics.median(pages["large"])
    small_log, large_log = statistics.median(logs["small"]), statistics.median(logs["large"])
    ratio = large_p95 / small_p95
    return [
        Measurement(
            f"changes page of 1,000, P95, log of {large:,}",
            large_p95,
            "ms",
            higher_is_better=False,
            reference_name=f"log of {small:,}",
            reference_value=small_p95,
            note=f"ratio {ratio:.2f} (target ≤ {TARGET_RATIO})",
        ),
        Measurement(
            f"changes page of 1,000, median, log of {large:,}",
            statistics.median(every["large"]),
            "ms",
            higher_is_better=False,
            reference_name=f"log of {small:,}",
            reference_value=statistics.median(every["small"]),
        ),
        Measurement(
            f"changes log page of 1,000, P95, log of {large:,}",
            large_log,
            "ms",
            higher_is_better=False,
            reference_name=f"log of {small:,}",
            reference_value=small_log,
            note="the log's query alone (snapshot + page), no data",
        ),
        Measurement(
            "changes page P95, large/small log",
            ratio * 100,
            "%",
            higher_is_better=False,
            target=TARGET_RATIO * 100,
        ),
    ]
