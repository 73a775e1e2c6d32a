"""Student aliases (contract §11): validated, in representations, both rosters and the student
events, and matched by ``q`` (memory and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import INTERNAL, A, ApiHarness, assert_problem, fields_of

CREATED = "huleedu.class.student.created.v1"
UPDATED = "huleedu.class.student.updated.v1"


async def create(api: ApiHarness, body: dict[str, Any]) -> Any:
    return await api.client.post("/v1/classes/students", json=body, headers=A)


def name(first: str = "Ada", last: str = "Lovelace") -> dict[str, str]:
    return {"first_name": first, "last_name": last}


async def test_aliases_round_trip_rosters_events_and_search(api: ApiHarness) -> None:
    cls = await api.create_class()
    r = await create(
        api,
        {
            "person_name": name(),
            "class_ids": [cls["id"]],
            "aliases": ["  Addie ", "Ｌady Á", "Countess"],  # trimmed; NFC kept as given
        },
    )
    assert r.status_code == 201, r.text
    student = r.json()
    assert student["aliases"] == ["Addie", "Ｌady Á", "Countess"]
    other = await api.create_student(first="Bo", last="Ek", class_ids=[cls["id"]])
    assert other["aliases"] == []

    got = (await api.client.get(f"/v1/classes/students/{student['id']}", headers=A)).json()
    assert got["aliases"] == student["aliases"]
    for headers in (A, INTERNAL):  # the owner's roster and the internal-key roster
        roster = (await api.client.get(f"/v1/classes/{cls['id']}/roster", headers=headers)).json()
        by_id = {s["student_id"]: s for s in roster["students"]}
        assert by_id[student["id"]]["aliases"] == student["aliases"]
        assert by_id[other["id"]]["aliases"] == []

    [created] = [
        e["data"]
        for e in api.events()
        if e["event_type"] == CREATED and e["data"]["student_id"] == student["id"]
    ]
    assert created["aliases"] == student["aliases"]

    # q matches aliases, accent- and case-insensitively, as a literal substring
    for q in ("addie", "ADDIE", "countess", "lady a", "ady"):
        found = (await api.client.get("/v1/classes/students", params={"q": q}, headers=A)).json()
        assert [s["id"] for s in found["students"]] == [student["id"]], q

    # a PUT replaces the list; the event carries the current list; the old alias no longer
    # matches
    before = len(api.events())
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}", json={"aliases": ["Ada L."]}, headers=A
    )
    assert r.status_code == 200, r.text
    assert r.json()["aliases"] == ["Ada L."]
    [updated] = [e["data"] for e in api.events()[before:] if e["event_type"] == UPDATED]
    assert updated["aliases"] == ["Ada L."]
    stored = (await api.client.get(f"/v1/classes/students/{student['id']}", headers=A)).json()
    assert stored["aliases"] == ["Ada L."]
    gone = (await api.client.get("/v1/classes/students?q=addie", headers=A)).json()
    assert gone["students"] == []
    # an update of something else carries the current list too
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}",
        json={"person_name": {"first_name": "Ad"}},
        headers=A,
    )
    assert r.status_code == 200, r.text
    assert [e["data"]["aliases"] for e in api.events() if e["event_type"] == UPDATED][-1] == [
        "Ada L."
    ]
    # the same list again changes nothing and publishes nothing
    before = len(api.events())
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}", json={"aliases": ["Ada L."]}, headers=A
    )
    assert r.status_code == 200, r.text
    assert len(api.events()) == before
    # an empty list clears them
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}", json={"aliases": []}, headers=A
    )
    assert r.json()["aliases"] == []


async def test_bad_aliases_are_refused_and_nothing_changes(api: ApiHarness) -> None:
    cases: list[tuple[Any, list[str]]] = [
        ([f"a{i}" for i in range(11)], ["aliases"]),
        (["ok", ""], ["aliases[1]"]),
        (["   "], ["aliases[0]"]),
        (["x" * 101], ["aliases[0]"]),
        (["tab\there"], ["aliases[0]"]),
        (["nul\x00"], ["aliases[0]"]),
        (["Addie", "ADDIE"], ["aliases[1]"]),
        (["Straße", "STRASSE"], ["aliases[1]"]),  # equal after case folding
    ]
    for aliases, fields in cases:
        r = await create(api, {"person_name": name(), "aliases": aliases})
        body = assert_problem(r, 400, "VALIDATION_ERROR")
        assert fields_of(body) == fields, aliases
    for bad in (None, "Addie", [1]):
        r = await create(api, {"person_name": name(), "aliases": bad})
        assert_problem(r, 400, "VALIDATION_ERROR")
    assert (await api.client.get("/v1/classes/students", headers=A)).json()["students"] == []
    # 10 aliases of 100 code points each are fine
    r = await create(api, {"person_name": name(), "aliases": [f"{i}" * 100 for i in range(10)]})
    assert r.status_code == 201, r.text
    student = r.json()
    before = len(api.events())
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}", json={"aliases": ["a", "A"]}, headers=A
    )
    assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == ["aliases[1]"]
    r = await api.client.put(
        f"/v1/classes/students/{student['id']}", json={"aliases": None}, headers=A
    )
    assert_problem(r, 400, "VALIDATION_ERROR")
    assert len(api.events()) == before
    got = (await api.client.get(f"/v1/classes/students/{student['id']}", headers=A)).json()
    assert got["aliases"] == student["aliases"]
