"""HTTP roster import (contract §9.4): ``POST /v1/classes/{id}/roster/import`` of a 2 MiB CSV
(~20,000 students) against the real ``class-api`` (uvicorn, one worker) on PostgreSQL.

Rounds, each into a class of its own: a first import (every row creates a student and its
membership, events in the outbox, the import's record and items), the same file again
(every row unchanged, nothing written), and a sync import of the file with 1 % of its rows
changed and 1 % left out (updates, removals, before-images). Target: under 3 s each
(issue 16). Standalone: ``python -m bench.http_import_bench --database-url postgresql://…``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from uuid import UUID

import httpx

from adapters_sql import build_sql_runtime, create_engine
from bench.http_bench import _env, _server, api_argv
from bench.results import Measurement, format_table
from bench.services import free_port
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class

OWNER = "bench-importer"
TARGET_SECONDS = 3.0
MAX_BYTES = 2_097_152  # HTTP_IMPORT_MAX_BYTES's default
ROWS = 20_000
FIRSTS = ("Åsa-Maria", "Björn", "Chloé", "David", "Eva-Lena", "Fredrik", "Greta", "Hugo")
LASTS = ("Andersson-Ekström", "Berg", "Çelik", "Dahlqvist", "Gustafsson", "Holmberg")


def roster_csv(rows: int = ROWS, max_bytes: int = MAX_BYTES, *, variant: int = 0) -> bytes:
    """Up to ``rows`` students within ``max_bytes`` (UTF-8 with a BOM, like a spreadsheet's
    "CSV UTF-8"); every tenth has aliases. ``variant`` 1: 1 % renamed, 1 % left out."""
    out = io.StringIO()
    out.write("\ufefffirst_name,last_name,email,legal_full_name,aliases,protected_identity\r\n")
    size = len(out.getvalue().encode())
    written = 0
    for i in range(rows):
        if variant and i % 100 == 1:
            continue  # left out: removed by a sync import
        first, last = FIRSTS[i % len(FIRSTS)], LASTS[i % len(LASTS)]
        email = f"{first[:3].lower()}.{i:06d}@skolan.example"
        if variant and i % 100 == 0:
            first = "Renamed"
        aliases = f"{first[:3]}|Nick{i}" if i % 10 == 0 else ""
        line = f"{first},{last},{email},{first} {last} {i},{aliases},false\r\n"
        encoded = len(line.encode())
        if size + encoded > max_bytes:
            break
        out.write(line)
        size += encoded
        written += 1
    return out.getvalue().encode()


async def _classes(pg_url: str, n: int) -> list[UUID]:
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        rt = build_sql_runtime(engine)
        return [
            (await create_class(rt, RequestContext(OWNER), CreateClass(f"Import {i}", ["SV1"]))).id
            for i in range(n)
        ]
    finally:
        await engine.dispose()


async def _post(client: httpx.AsyncClient, class_id: UUID, body: bytes, **params: str) -> float:
    started = time.perf_counter()
    r = await client.post(
        f"/v1/classes/{class_id}/roster/import",
        content=body,
        params=params,
        headers={"X-User-ID": OWNER, "Content-Type": "text/csv"},
    )
    took = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"import answered {r.status_code}: {r.text[:300]}")
    return took


async def run(pg_url: str, rows: int = ROWS, rounds: int = 2) -> list[Measurement]:
    body = roster_csv(rows)
    changed = roster_csv(rows, variant=1)
    students = body.count(b"\n") - 1
    classes = await _classes(pg_url, rounds)
    port = free_port()
    fresh: list[float] = []
    again: list[float] = []
    synced: list[float] = []
    with _server(api_argv(port), port, _env(pg_url)):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for class_id in classes:
                fresh.append(await _post(client, class_id, body))
                again.append(await _post(client, class_id, body))
                synced.append(
                    await _post(client, class_id, changed, sync="true", max_remove_percent="5")
                )
    note = f"{students} students, {len(body) / 2**20:.2f} MiB, best of {rounds}"
    return [
        Measurement(
            f"http import: {students} new students",
            min(fresh),
            "s",
            higher_is_better=False,
            target=TARGET_SECONDS,
            note=note,
        ),
        Measurement(
            "http import: the same file again (unchanged)",
            min(again),
            "s",
            higher_is_better=False,
            target=TARGET_SECONDS,
            note=note,
        ),
        Measurement(
            "http import: sync, 1 % renamed, 1 % removed",
            min(synced),
            "s",
            higher_is_better=False,
            target=TARGET_SECONDS,
            note=note,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    print(format_table(asyncio.run(run(args.database_url, args.rows))))


if __name__ == "__main__":
    main()
