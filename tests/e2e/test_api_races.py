"""Concurrent writers over real HTTP on PostgreSQL and SQLite (contract §8).

Two API replicas (two uvicorn servers, each with its own app and engine) on one migrated
database; each round sends two requests at once, one to each replica, and checks the
invariants: no lost update, no event for a change that did not happen, exactly one successful
DELETE, and in the outbox, per key, versions that strictly grow per topic and nothing after a
delete. The roster import (the CLI's use case, on a runtime of its own) races a PUT the same
way. Rounds repeat until the race is hit; the interleaving differs from round to round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import create_engine, upgrade
from adapters_sql.schema import changes
from class_api.app import create_app
from class_core.events import (
    CLASS_CREATED,
    CLASS_DELETED,
    CLASS_UPDATED,
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_UPDATED,
)
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.imports import ImportSummary, RosterRow, import_students
from class_runtime import open_runtime
from tests.e2e.conftest import OWNER_A, A, settings_for

ROUNDS = 20
DELETED = {CLASS_DELETED, STUDENT_DELETED}


class _Server(uvicorn.Server):
    """uvicorn inside the test's event loop: the test runner keeps its signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Replicas:
    def __init__(self, clients: list[httpx.AsyncClient], engine: AsyncEngine, url: str) -> None:
        self.clients = clients
        self.engine = engine
        self.url = url

    async def both(
        self, first: tuple[str, str, Any], second: tuple[str, str, Any], round_no: int = 0
    ) -> tuple[httpx.Response, httpx.Response]:
        """Send ``(method, path, json)`` to replica 1 and 2 at the same moment; from round to
        round one of them starts up to 1.5 ms later, so that the rounds sweep through the
        interleavings instead of repeating one."""
        barrier = asyncio.Barrier(2)
        lag = (round_no % 4) * 0.0005
        late_first = round_no % 8 >= 4

        async def send(
            client: httpx.AsyncClient, request: tuple[str, str, Any], delay: float
        ) -> httpx.Response:
            method, path, body = request
            await barrier.wait()
            if delay:
                await asyncio.sleep(delay)
            return await client.request(method, path, json=body, headers=A)

        r1, r2 = await asyncio.gather(
            send(self.clients[0], first, lag if late_first else 0.0),
            send(self.clients[1], second, 0.0 if late_first else lag),
        )
        return r1, r2

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.clients[0].post(path, json=body, headers=A)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    async def get(self, path: str) -> httpx.Response:
        return await self.clients[1].get(path, headers=A)

    async def outbox(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        """``(topic, envelope)`` of every outbox row of this key, in publication order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT topic, payload FROM cms_outbox WHERE key = :key ORDER BY seq"),
                {"key": key},
            )
            return [(topic, json.loads(payload)) for topic, payload in rows]


@pytest.fixture(params=["postgres", "sqlite"])
def race_database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """PostgreSQL (a database factory), or the URL of a SQLite file (a plain fixture, so that
    it may pull the session's PostgreSQL fixtures in only when needed)."""
    if request.param == "postgres":
        return "postgres", request.getfixturevalue("pg_database_factory")
    return "sqlite", f"sqlite+aiosqlite:///{tmp_path / 'races.db'}"


@pytest_asyncio.fixture(loop_scope="session")
async def replicas(race_database: tuple[str, Any]) -> AsyncIterator[Replicas]:
    """Two servers on one database: PostgreSQL (replicas), or one SQLite file (two processes'
    worth of engines, as the contract allows the API and the CLI side by side)."""
    kind, source = race_database
    if kind == "postgres":
        url = await source(migrated=True)
    else:
        url = source
        await upgrade(url)
    settings = settings_for(use_mock_repository=False, database_url=url)
    servers: list[tuple[_Server, asyncio.Task[None]]] = []
    clients: list[httpx.AsyncClient] = []
    engine = create_engine(url)
    try:
        for _ in range(2):
            config = uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=0, log_level="warning"
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve())
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            assert server.started, "uvicorn did not start"
            servers.append((server, task))
            port = server.servers[0].sockets[0].getsockname()[1]
            clients.append(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
        yield Replicas(clients, engine, url)
    finally:
        for client in clients:
            await client.aclose()
        for server, task in servers:
            server.should_exit = True
            await task
        await engine.dispose()


def assert_outbox_invariants(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Per topic, versions strictly grow in publication order; nothing follows a delete."""
    highest: dict[str, int] = {}
    deleted = False
    for topic, envelope in events:
        assert not deleted, f"{topic} after the delete: {[t for t, _ in events]}"
        version = envelope["metadata"]["aggregate_version"]
        assert version > highest.get(topic, 0), [
            (t, e["metadata"]["aggregate_version"]) for t, e in events
        ]
        highest[topic] = version
        deleted = topic in DELETED


def student_body(n: int) -> dict[str, Any]:
    return {
        "person_name": {"first_name": "First", "last_name": "Last"},
        "email": f"race-{n}-{uuid4().hex[:8]}@example.com",
    }


# ------------------------------------------------------------------------------ PUT vs PUT


async def test_put_vs_put_on_different_fields_of_a_student(replicas: Replicas) -> None:
    for n in range(ROUNDS):
        student = await replicas.create("/v1/classes/students", student_body(n))
        path = f"/v1/classes/students/{student['id']}"
        new_email = f"changed-{n}-{uuid4().hex[:8]}@example.com"
        r1, r2 = await replicas.both(
            ("PUT", path, {"person_name": {"first_name": f"Renamed{n}"}}),
            ("PUT", path, {"email": new_email}),
            n,
        )
        assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
        stored = (await replicas.get(path)).json()
        # Both changes took effect: neither PUT wrote back the other's field as it read it.
        assert (stored["first_name"], stored["email"]) == (f"Renamed{n}", new_email), n
        assert stored["version"] == 3
        assert sorted([r1.json()["version"], r2.json()["version"]]) == [2, 3]
        events = await replicas.outbox(student["id"])
        assert_outbox_invariants(events)
        updates = [e for t, e in events if t == STUDENT_UPDATED]
        assert [u["metadata"]["aggregate_version"] for u in updates] == [2, 3]
        # Each event carries the state after its own change; the later one has both.
        first, last = (u["data"] for u in updates)
        assert (last["first_name"], last["student_email"]) == (f"Renamed{n}", new_email)
        assert (first["first_name"], first["student_email"]) in {
            (f"Renamed{n}", student["email"]),
            ("First", new_email),
        }


async def test_put_vs_put_on_different_fields_of_a_class(replicas: Replicas) -> None:
    for n in range(ROUNDS):
        cls = await replicas.create("/v1/classes", {"name": f"Race {n}", "course_codes": ["ENG5"]})
        path = f"/v1/classes/{cls['id']}"
        r1, r2 = await replicas.both(
            ("PUT", path, {"name": f"Renamed {n}"}), ("PUT", path, {"course_codes": ["SV1"]}), n
        )
        assert (r1.status_code, r2.status_code) == (200, 200), (r1.text, r2.text)
        stored = (await replicas.get(path)).json()
        assert (stored["name"], stored["course_code"], stored["version"]) == (
            f"Renamed {n}",
            "SV1",
            3,
        ), n
        events = await replicas.outbox(cls["id"])
        assert_outbox_invariants(events)
        assert [e["metadata"]["aggregate_version"] for t, e in events if t == CLASS_UPDATED] == [
            2,
            3,
        ]


# ------------------------------------------------------------- If-Match: one winner per version


async def _guarded_rename(
    client: httpx.AsyncClient, path: str, name: str, gate: asyncio.Barrier
) -> httpx.Response:
    await gate.wait()
    body = {"person_name": {"first_name": name}}
    return await client.put(path, json=body, headers={**A, "If-Match": '"1"'})


async def test_two_writers_with_the_same_if_match_one_wins(replicas: Replicas) -> None:
    for n in range(ROUNDS):
        student = await replicas.create("/v1/classes/students", student_body(n))
        path = f"/v1/classes/students/{student['id']}"
        barrier = asyncio.Barrier(2)

        r1, r2 = await asyncio.gather(
            _guarded_rename(replicas.clients[0], path, "One", barrier),
            _guarded_rename(replicas.clients[1], path, "Two", barrier),
        )
        assert sorted([r1.status_code, r2.status_code]) == [200, 412], (r1.text, r2.text)
        winner = "One" if r1.status_code == 200 else "Two"
        stored = (await replicas.get(path)).json()
        assert (stored["first_name"], stored["version"]) == (winner, 2)
        events = await replicas.outbox(student["id"])
        assert_outbox_invariants(events)
        assert [t for t, _ in events] == [STUDENT_CREATED, STUDENT_UPDATED]


# --------------------------------------------------------------------------- PUT vs DELETE


@pytest.mark.parametrize("kind", ["student", "class"])
async def test_put_vs_delete(replicas: Replicas, kind: str) -> None:
    outcomes: set[int] = set()
    for n in range(ROUNDS):
        change: dict[str, Any]
        if kind == "student":
            obj = await replicas.create("/v1/classes/students", student_body(n))
            path, change = f"/v1/classes/students/{obj['id']}", {"person_name": {"last_name": "X"}}
            updated_topic = STUDENT_UPDATED
        else:
            obj = await replicas.create("/v1/classes", {"name": f"C{n}", "course_codes": ["ENG5"]})
            path, change = f"/v1/classes/{obj['id']}", {"name": f"Renamed {n}"}
            updated_topic = CLASS_UPDATED
        put, delete = await replicas.both(("PUT", path, change), ("DELETE", path, None), n)
        assert delete.status_code == 200, delete.text
        assert put.status_code in (200, 404), put.text
        outcomes.add(put.status_code)
        assert (await replicas.get(path)).status_code == 404
        events = await replicas.outbox(obj["id"])
        assert_outbox_invariants(events)
        topics = [t for t, _ in events]
        # An update is published exactly when the PUT answered 200, and never after the delete.
        assert topics.count(updated_topic) == (1 if put.status_code == 200 else 0), topics
        assert sum(t in DELETED for t in topics) == 1
    assert outcomes, "no round ran"


# ------------------------------------------------------------------------ DELETE vs DELETE


@pytest.mark.parametrize("kind", ["student", "class"])
async def test_delete_vs_delete(replicas: Replicas, kind: str) -> None:
    for n in range(ROUNDS):
        if kind == "student":
            obj = await replicas.create("/v1/classes/students", student_body(n))
            path, created = f"/v1/classes/students/{obj['id']}", STUDENT_CREATED
        else:
            obj = await replicas.create("/v1/classes", {"name": f"D{n}", "course_codes": ["ENG5"]})
            path, created = f"/v1/classes/{obj['id']}", CLASS_CREATED
        r1, r2 = await replicas.both(("DELETE", path, None), ("DELETE", path, None), n)
        assert sorted([r1.status_code, r2.status_code]) == [200, 404], (r1.text, r2.text)
        events = await replicas.outbox(obj["id"])
        assert_outbox_invariants(events)
        assert [t for t, _ in events] == [created, DELETED_OF[created]]


DELETED_OF = {STUDENT_CREATED: STUDENT_DELETED, CLASS_CREATED: CLASS_DELETED}


# ----------------------------------------------------------------- class delete vs members


async def test_class_delete_vs_member_put(replicas: Replicas) -> None:
    """A class deletion bumps its members' versions without student events; a concurrent PUT
    of a member keeps its change and its event's version still grows."""
    for n in range(ROUNDS):
        cls = await replicas.create("/v1/classes", {"name": f"M{n}", "course_codes": ["ENG5"]})
        body = {**student_body(n), "class_ids": [cls["id"]]}
        student = await replicas.create("/v1/classes/students", body)
        s_path = f"/v1/classes/students/{student['id']}"
        put, delete = await replicas.both(
            ("PUT", s_path, {"person_name": {"first_name": f"P{n}"}}),
            ("DELETE", f"/v1/classes/{cls['id']}", None),
            n,
        )
        assert (put.status_code, delete.status_code) == (200, 200), (put.text, delete.text)
        stored = (await replicas.get(s_path)).json()
        assert (stored["first_name"], stored["class_ids"], stored["version"]) == (f"P{n}", [], 3)
        events = await replicas.outbox(student["id"])
        assert_outbox_invariants(events)
        assert [t for t, _ in events] == [STUDENT_CREATED, STUDENT_UPDATED]


# ------------------------------------------------------------------------- import vs PUT


async def _import_and_put(
    rt: Runtime, row: RosterRow, client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[ImportSummary, httpx.Response]:
    """The CLI's import of one row and a PUT, started at the same moment."""
    barrier = asyncio.Barrier(2)

    async def run_import() -> ImportSummary:
        await barrier.wait()
        return await import_students(rt, RequestContext(OWNER_A, uuid4()), [row])

    async def run_put() -> httpx.Response:
        await barrier.wait()
        return await client.put(path, json=body, headers=A)

    return await asyncio.gather(run_import(), run_put())


async def test_import_vs_put_keeps_both_changes(replicas: Replicas) -> None:
    settings = settings_for(use_mock_repository=False, database_url=replicas.url)
    async with open_runtime(settings) as opened:
        rt = opened.runtime
        for n in range(ROUNDS):
            student = await replicas.create("/v1/classes/students", student_body(n))
            path = f"/v1/classes/students/{student['id']}"
            row = RosterRow(2, f"Imported{n}", "Last", student["email"])
            legal = {"person_name": {"legal_full_name": f"Legal {n}"}}
            summary, put = await _import_and_put(rt, row, replicas.clients[0], path, legal)
            assert put.status_code == 200, put.text
            assert summary.updated == 1, summary
            stored = (await replicas.get(path)).json()
            # The import names no legal name: it must not write back the one it read.
            assert (stored["first_name"], stored["legal_full_name"]) == (
                f"Imported{n}",
                f"Legal {n}",
            ), n
            assert stored["version"] == 3
            events = await replicas.outbox(student["id"])
            assert_outbox_invariants(events)
            last = [e for t, e in events if t == STUDENT_UPDATED][-1]
            assert last["metadata"]["aggregate_version"] == 3
            assert last["data"]["first_name"] == f"Imported{n}"


# ------------------------------------------------------------------ external ids (§9.1)


@pytest.mark.parametrize("kind", ["class", "student"])
async def test_two_creates_with_one_external_id_one_wins(replicas: Replicas, kind: str) -> None:
    """The unique index decides, not a look-up: of two simultaneous POSTs with the same
    external id one answers 201 and the other 409 DUPLICATE_EXTERNAL_ID, which writes and
    publishes nothing."""
    path = "/v1/classes" if kind == "class" else "/v1/classes/students"
    for n in range(ROUNDS // 2):
        external_id = f"SIS-{n}-{uuid4().hex[:8]}"
        if kind == "class":
            bodies = [
                {"name": f"K{n}-{i}", "course_codes": ["ENG5"], "external_id": external_id}
                for i in range(2)
            ]
        else:
            bodies = [{**student_body(n), "external_id": external_id} for _ in range(2)]
        r1, r2 = await replicas.both(("POST", path, bodies[0]), ("POST", path, bodies[1]), n)
        assert sorted([r1.status_code, r2.status_code]) == [201, 409], (r1.text, r2.text)
        loser = r1 if r1.status_code == 409 else r2
        assert loser.json()["error_code"] == "DUPLICATE_EXTERNAL_ID"
        listed = await replicas.clients[1].get(path, params={"external_id": external_id}, headers=A)
        items = listed.json()["classes" if kind == "class" else "students"]
        winner = r1 if r1.status_code == 201 else r2
        assert [x["id"] for x in items] == [winner.json()["id"]]
        async with replicas.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM cms_outbox WHERE payload LIKE :p"),
                {"p": f"%{external_id}%"},
            )
            assert found.scalar_one() == 1  # the winner's created event only


# ------------------------------------------------------------------ archiving (§9.2)


async def test_archive_vs_a_student_joining(replicas: Replicas) -> None:
    """A student created into a class while the class is archived either joined first (its
    event is before the archive's) or is refused with 409 CLASS_ARCHIVED: never a member
    that joined an already archived class."""
    for n in range(ROUNDS):
        cls = await replicas.create("/v1/classes", {"name": f"A{n}", "course_codes": ["ENG5"]})
        body = {**student_body(n), "class_ids": [cls["id"]]}
        r1, r2 = await replicas.both(
            ("POST", f"/v1/classes/{cls['id']}/archive", None),
            ("POST", "/v1/classes/students", body),
            n,
        )
        assert r1.status_code == 200, r1.text
        assert r2.status_code in (201, 409), r2.text
        async with replicas.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT topic, seq FROM cms_outbox WHERE topic IN (:a, :s) "
                    "AND payload LIKE :c ORDER BY seq"
                ),
                {"a": CLASS_UPDATED, "s": STUDENT_CREATED, "c": f"%{cls['id']}%"},
            )
            topics = [topic for topic, _ in rows]
        if r2.status_code == 409:
            assert r2.json()["error_code"] == "CLASS_ARCHIVED"
            assert topics == [CLASS_UPDATED]
        else:
            assert topics == [STUDENT_CREATED, CLASS_UPDATED], n
            roster = await replicas.get(f"/v1/classes/{cls['id']}/roster")
            assert [s["student_id"] for s in roster.json()["students"]] == [r2.json()["id"]]


# ------------------------------------------------------------------------------ change feed


async def test_joins_of_one_class_from_two_replicas_all_reach_a_feed_follower(
    replicas: Replicas,
) -> None:
    """Two replicas add students to one class at the same moment, round after round, while a
    client follows the change feed in small pages (contract §9.3): every new student comes
    through, the class's last entry shows its final ``student_count``, and the class keeps at
    most a row per writer that ran at the same time (migration r0030: appended, not moved)."""
    cls = await replicas.create("/v1/classes", {"name": "Feed", "course_codes": ["ENG5"]})
    start = await replicas.get("/v1/changes")
    assert start.status_code == 200, start.text
    cursor: str = start.json()["next_cursor"]
    seen: dict[str, dict[str, Any]] = {}  # the newest entry of each object, in feed order
    done = asyncio.Event()

    async def page() -> bool:
        nonlocal cursor
        r = await replicas.get(f"/v1/changes?since={cursor}&limit=5")
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [entry["id"] for entry in body["changes"]]
        assert len(ids) == len(set(ids)), ids  # an object once per page, at its latest
        for entry in body["changes"]:
            seen.pop(entry["id"], None)
            seen[entry["id"]] = entry
        cursor = body["next_cursor"]
        return bool(body["has_more"])

    async def follow() -> None:
        while not done.is_set():
            await page()
            await asyncio.sleep(0.005)

    follower = asyncio.create_task(follow())
    created: set[str] = set()
    try:
        for n in range(ROUNDS):
            body = {"class_ids": [cls["id"]]}
            r1, r2 = await replicas.both(
                ("POST", "/v1/classes/students", {**student_body(2 * n), **body}),
                ("POST", "/v1/classes/students", {**student_body(2 * n + 1), **body}),
                n,
            )
            assert (r1.status_code, r2.status_code) == (201, 201), (r1.text, r2.text)
            created |= {r1.json()["id"], r2.json()["id"]}
    finally:
        done.set()
        await follower
    while await page():
        pass
    await page()  # after the last full page, once more: nothing committed later is missed
    assert created <= set(seen)
    last_class = seen[cls["id"]]
    assert last_class["data"]["student_count"] == 2 * ROUNDS
    of_class = changes.c.object_id == UUID(cls["id"])
    async with replicas.engine.connect() as conn:
        rows = int(await conn.scalar(select(func.count()).where(of_class)) or 0)
    assert 1 <= rows <= 2, rows
