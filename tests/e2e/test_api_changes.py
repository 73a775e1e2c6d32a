"""The change feed over HTTP (contract §9.3), on memory, PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from class_core.changes import FeedPosition, encode_cursor
from class_core.ports import OutboxStore
from class_core.runtime import Runtime
from tests.e2e.conftest import ALL_BACKENDS, A, ApiHarness, B, app_for_backend, assert_problem


@pytest.fixture(params=ALL_BACKENDS)
def api_backend(request: pytest.FixtureRequest) -> tuple[str, Litestar, OutboxStore | None]:
    """Contract §9 also holds on the embedded SQLite database (over HTTP, like the others)."""
    return app_for_backend(request)


CHANGES = "/v1/changes"
CLASSES = "/v1/classes"
STUDENTS = "/v1/classes/students"

Key = tuple[str, str]


async def start(api: ApiHarness, owner: dict[str, str] = A) -> str:
    r = await api.client.get(CHANGES, headers=owner)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["changes"], body["has_more"]) == ([], False)
    cursor: str = body["next_cursor"]
    return cursor


async def follow(
    api: ApiHarness, cursor: str, owner: dict[str, str] = A, limit: int = 1000
) -> tuple[list[dict[str, Any]], str]:
    """Every entry after ``cursor`` (page by page until ``has_more`` is false)."""
    entries: list[dict[str, Any]] = []
    while True:
        r = await api.client.get(CHANGES, params={"since": cursor, "limit": limit}, headers=owner)
        assert r.status_code == 200, r.text
        body = r.json()
        entries += body["changes"]
        assert body["next_cursor"] != cursor
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return entries, cursor


async def lists(api: ApiHarness, owner: dict[str, str] = A) -> dict[Key, dict[str, Any]]:
    """Every class and student of the owner, as the lists show them."""
    found: dict[Key, dict[str, Any]] = {}
    for path, entity, field in ((CLASSES, "class", "classes"), (STUDENTS, "student", "students")):
        offset = 0
        while True:
            r = await api.client.get(path, params={"limit": 100, "offset": offset}, headers=owner)
            assert r.status_code == 200, r.text
            page = r.json()[field]
            found.update({(entity, item["id"]): item for item in page})
            if len(page) < 100:
                break
            offset += 100
    return found


def replay(state: dict[Key, dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    for e in entries:
        key = (e["entity"], e["id"])
        if e["op"] == "delete":
            assert e["data"] is None
            state.pop(key, None)
        else:
            assert (e["data"]["id"], e["data"]["version"]) == (e["id"], e["version"])
            state[key] = e["data"]


async def test_start_gives_an_empty_page_and_a_fresh_cursor_every_time(api: ApiHarness) -> None:
    first = await start(api)
    await asyncio.sleep(0.01)
    r = await api.client.get(CHANGES, params={"since": first}, headers=A)
    body = r.json()
    assert (r.status_code, body["changes"], body["has_more"]) == (200, [], False)
    assert body["next_cursor"] != first  # newly issued, also on an empty page
    await asyncio.sleep(0.01)
    again = (await api.client.get(CHANGES, headers=A)).json()["next_cursor"]
    assert again not in (first, body["next_cursor"])
    # Both still work.
    for cursor in (first, body["next_cursor"], again):
        assert (await follow(api, cursor))[0] == []


async def test_every_kind_of_change_replays_onto_the_lists(api: ApiHarness) -> None:
    c = api.client
    kept = await api.create_class(name="Kept")
    doomed_class = await api.create_class(name="Doomed")
    stays = await api.create_student(first="Stay", email="stay@example.com")
    cursor = await start(api)
    snapshot = await lists(api)

    # After the cursor: creates, updates, memberships both ways, erasure and deletes.
    new_class = await api.create_class(name="New")
    ada = await api.create_student(first="Ada", class_ids=[kept["id"], doomed_class["id"]])
    bob = await api.create_student(first="Bob", email="bob@example.com", class_ids=[kept["id"]])
    gone = await api.create_student(first="Gone", class_ids=[new_class["id"]])
    r = await c.put(f"{CLASSES}/{kept['id']}", json={"name": "Kept 2"}, headers=A)
    assert r.status_code == 200
    r = await c.put(
        f"{STUDENTS}/{stays['id']}",
        json={"person_name": {"first_name": "Stays"}, "add_class_ids": [new_class["id"]]},
        headers=A,
    )
    assert r.status_code == 200
    r = await c.put(f"{STUDENTS}/{ada['id']}", json={"remove_class_ids": [kept["id"]]}, headers=A)
    assert r.status_code == 200
    r = await c.post(f"{STUDENTS}/{bob['id']}/erasure", headers=A)
    assert r.status_code == 200
    r = await c.delete(f"{STUDENTS}/{gone['id']}", headers=A)
    assert r.status_code == 200
    r = await c.delete(f"{CLASSES}/{doomed_class['id']}", headers=A)  # Ada was a member
    assert r.status_code == 200

    entries, _ = await follow(api, cursor)
    replay(snapshot, entries)
    assert snapshot == await lists(api)

    by_key = {(e["entity"], e["id"]): e for e in entries}
    # Deletes are tombstones carrying the last version.
    assert by_key[("student", gone["id"])] | {"cursor": "", "at": ""} == {
        "cursor": "",
        "at": "",
        "entity": "student",
        "id": gone["id"],
        "op": "delete",
        "version": 2,
        "data": None,
    }
    assert by_key[("class", doomed_class["id"])]["op"] == "delete"
    assert by_key[("class", doomed_class["id"])]["version"] == 2
    # The erased record is an upsert with nothing of the person left.
    erased = by_key[("student", bob["id"])]
    assert erased["op"] == "upsert"
    assert erased["data"]["is_erased"] is True
    assert "bob" not in str(erased).lower()
    # A class whose count moved is in the feed; a member of the deleted class too.
    assert by_key[("class", new_class["id"])]["data"]["student_count"] == 1
    assert by_key[("student", ada["id"])]["data"]["class_ids"] == []
    # Ordered by cursor: each entry's cursor resumes right after it.
    middle = entries[len(entries) // 2]
    rest, _ = await follow(api, middle["cursor"])
    assert [e["id"] for e in rest] == [e["id"] for e in entries[len(entries) // 2 + 1 :]]


async def test_an_object_changed_many_times_appears_once_with_its_current_data(
    api: ApiHarness,
) -> None:
    cls = await api.create_class()
    cursor = await start(api)
    for n in range(5):
        r = await api.client.put(f"{CLASSES}/{cls['id']}", json={"name": f"N{n}"}, headers=A)
        assert r.status_code == 200
    entries, _ = await follow(api, cursor)
    assert [(e["id"], e["version"], e["data"]["name"]) for e in entries] == [(cls["id"], 6, "N4")]


async def test_pages_follow_the_limit_and_say_when_there_is_more(api: ApiHarness) -> None:
    cursor = await start(api)
    made = [(await api.create_class(name=f"C{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    pages = 0
    while True:
        r = await api.client.get(CHANGES, params={"since": cursor, "limit": 2}, headers=A)
        body = r.json()
        pages += 1
        assert len(body["changes"]) <= 2
        seen += [e["id"] for e in body["changes"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert seen == made  # creation order = cursor order
    assert pages == 3
    r = await api.client.get(CHANGES, params={"since": cursor, "limit": 2}, headers=A)
    assert (r.json()["changes"], r.json()["has_more"]) == ([], False)


async def test_other_owners_changes_never_appear(api: ApiHarness) -> None:
    cursor_a, cursor_b = await start(api, A), await start(api, B)
    theirs = await api.create_class(B, name="Theirs")
    await api.create_student(B, class_ids=[theirs["id"]])
    mine = await api.create_class(A, name="Mine")
    entries, _ = await follow(api, cursor_a, A)
    assert [e["id"] for e in entries] == [mine["id"]]
    entries_b, _ = await follow(api, cursor_b, B)
    assert theirs["id"] in {e["id"] for e in entries_b}
    assert mine["id"] not in {e["id"] for e in entries_b}
    # Another owner's cursor is a valid cursor, but still shows only the caller's changes.
    entries, _ = await follow(api, cursor_b, A)
    assert [e["id"] for e in entries] == [mine["id"]]


def _key(api: ApiHarness) -> bytes:
    rt: Runtime = api.runtime

    async def read() -> bytes:
        async with rt.read() as uow:
            return await uow.changes.cursor_key()

    key: bytes = api.call(read)
    return key


async def test_unknown_tampered_and_expired_cursors_answer_410(api: ApiHarness) -> None:
    cursor = await start(api)
    payload, mac = cursor.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    forged = raw.replace(b"|0|", b"|1|", 1) if b"|0|" in raw else raw + b"0"
    tampered = base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + mac
    now = api.runtime.now()
    retention = api.runtime.feed.retention
    key = _key(api)
    expired = encode_cursor(FeedPosition(0), now - retention - timedelta(minutes=1), key)
    young = encode_cursor(FeedPosition(0), now - retention + timedelta(minutes=5), key)
    for bad in ("garbage", "", "a.b", "a.b.c", tampered, cursor + "x", expired):
        r = await api.client.get(CHANGES, params={"since": bad}, headers=A)
        body = assert_problem(r, 410, "CURSOR_EXPIRED")
        assert body["title"]
        assert body["detail"]
    r = await api.client.get(CHANGES, params={"since": young}, headers=A)
    assert r.status_code == 200


async def test_bad_limits_answer_400_and_the_route_needs_a_user(api: ApiHarness) -> None:
    cursor = await start(api)
    for limit in ("0", "1001", "-1", "x", "1.5"):
        r = await api.client.get(CHANGES, params={"since": cursor, "limit": limit}, headers=A)
        assert_problem(r, 400, "VALIDATION_ERROR")
    r = await api.client.get(CHANGES, params={"limit": "1000"}, headers=A)
    assert r.status_code == 200
    assert_problem(await api.client.get(CHANGES), 401, "AUTHENTICATION_REQUIRED")
    assert (await api.client.get(CHANGES + "/", headers=A)).status_code == 200
