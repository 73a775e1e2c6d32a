"""Roster imports over HTTP, import history and undo (contract §9.4), on the in-memory,
PostgreSQL and SQLite backends."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from class_api.app import create_app
from class_core.ports import OutboxStore
from tests.e2e.cli_harness import execute
from tests.e2e.conftest import (
    ALL_BACKENDS,
    A,
    ApiHarness,
    B,
    app_for_backend,
    assert_problem,
    fields_of,
    settings_for,
)


@pytest.fixture(params=ALL_BACKENDS)
def api_backend(request: pytest.FixtureRequest) -> tuple[str, Litestar, OutboxStore | None]:
    """Contract §9 also holds on the embedded SQLite database (over HTTP, like the others)."""
    return app_for_backend(request)


CSV = {"Content-Type": "text/csv"}
HEADER = "first_name,last_name,email,legal_full_name,aliases,protected_identity\n"
CREATED = "huleedu.class.student.created.v1"
UPDATED = "huleedu.class.student.updated.v1"
DELETED = "huleedu.class.student.deleted.v1"


async def post_csv(
    api: ApiHarness,
    class_id: str,
    body: str | bytes,
    owner: dict[str, str] = A,
    content_type: str = "text/csv",
    **params: Any,
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()}
    return await api.client.post(
        f"/v1/classes/{class_id}/roster/import",
        content=data,
        headers={**owner, "Content-Type": content_type},
        params=query,
    )


async def members(api: ApiHarness, class_id: str, owner: dict[str, str] = A) -> dict[str, Any]:
    r = await api.client.get(
        "/v1/classes/students", params={"class_id": class_id, "limit": 100}, headers=owner
    )
    assert r.status_code == 200, r.text
    return {s["email"] or s["id"]: s for s in r.json()["students"]}


def topics(api: ApiHarness) -> list[str]:
    return [e["event_type"] for e in api.events()]


async def test_an_import_creates_updates_and_is_recorded(api: ApiHarness) -> None:
    cls = await api.create_class()
    known = await api.create_student(first="Old", last="Name", email="bo@example.com")
    body = (
        "\ufeff"
        + HEADER
        + (
            "Ada,Lovelace,ADA@example.com,,Countess|Ada L,true\n"
            "Bo,Berg,bo@example.com,Bo Berg Sr,,\n"
            "Cy,Cox,not-an-email,,,\n"
        )
    )
    before = len(api.events())
    r = await post_csv(api, cls["id"], body)
    assert r.status_code == 200, r.text
    summary = r.json()
    assert {k: summary[k] for k in ("created", "updated", "unchanged", "failed", "removed")} == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "failed": 1,
        "removed": 0,
    }
    assert summary["errors"][0]["row"] == 4
    assert summary["errors"][0]["errors"][0].startswith("email:")
    import_id = summary["import_id"]
    assert UUID(import_id)
    roster = await members(api, cls["id"])
    assert set(roster) == {"ada@example.com", "bo@example.com"}
    ada = roster["ada@example.com"]
    assert ada["aliases"] == ["Countess", "Ada L"]
    assert ada["protected_identity"] is True
    assert roster["bo@example.com"]["id"] == known["id"]
    assert roster["bo@example.com"]["first_name"] == "Bo"
    assert sorted(topics(api)[before:]) == [CREATED, UPDATED]
    # Recorded, and named in the students' history (§10).
    listed = (await api.client.get("/v1/imports", headers=A)).json()
    assert listed["imports"][0]["import_id"] == import_id
    assert listed["imports"][0]["source"] == "http"
    assert listed["imports"][0]["class_id"] == cls["id"]
    assert (listed["imports"][0]["created"], listed["imports"][0]["updated"]) == (1, 1)
    export = (await api.client.get(f"/v1/classes/students/{ada['id']}/export", headers=A)).json()
    assert {h["by"] for h in export["history"]} == {f"import:{import_id}"}
    # The same file again changes nothing and records nothing.
    again = (await post_csv(api, cls["id"], body)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert again["import_id"] is None
    assert (await api.client.get("/v1/imports", headers=A)).json()["pagination"]["total"] == 1


async def test_a_dry_run_writes_and_records_nothing(api: ApiHarness) -> None:
    cls = await api.create_class()
    before = len(api.events())
    r = await post_csv(api, cls["id"], HEADER + "Ada,Lovelace,ada@example.com,,,\n", dry_run=True)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    assert r.json()["import_id"] is None
    assert await members(api, cls["id"]) == {}
    assert len(api.events()) == before
    assert (await api.client.get("/v1/imports", headers=A)).json()["imports"] == []


async def test_the_body_must_be_utf8_csv_within_the_limit(api: ApiHarness) -> None:
    cls = await api.create_class()
    ok = HEADER + "Ada,Lovelace,ada@example.com,,,\n"
    for content_type in ("text/csv; charset=latin-1", "application/json", "text/plain"):
        r = await post_csv(api, cls["id"], ok, content_type=content_type)
        assert_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await post_csv(api, cls["id"], ok, content_type="text/csv; charset=UTF-8")
    assert r.status_code == 200, r.text
    undecodable = HEADER.encode() + "Åsa,Ek,asa@example.com,,,\n".encode("latin-1")
    assert_problem(await post_csv(api, cls["id"], undecodable), 400, "VALIDATION_ERROR")
    limit = api.app.state["settings"].http_import_max_bytes
    big = HEADER + "x" * limit
    body = assert_problem(await post_csv(api, cls["id"], big), 413, "PAYLOAD_TOO_LARGE")
    assert "HTTP_IMPORT_MAX_BYTES" in body["detail"]
    assert list(await members(api, cls["id"])) == ["ada@example.com"]


async def test_class_columns_and_missing_columns_are_refused(api: ApiHarness) -> None:
    cls = await api.create_class()
    with_class = "first_name,last_name,email,class_name\nAda,L,ada@example.com,9A\n"
    body = assert_problem(await post_csv(api, cls["id"], with_class), 400, "VALIDATION_ERROR")
    assert "class_name" in body["detail"]
    assert fields_of(body) == ["body"]
    missing = "first_name,email\nAda,ada@example.com\n"
    body = assert_problem(await post_csv(api, cls["id"], missing), 400, "VALIDATION_ERROR")
    assert "last_name" in body["errors"][0]["message"]
    assert_problem(
        await post_csv(api, cls["id"], HEADER, max_remove_percent=101), 400, "VALIDATION_ERROR"
    )
    assert await members(api, cls["id"]) == {}


async def test_imports_are_owner_scoped(api: ApiHarness) -> None:
    cls = await api.create_class()
    row = HEADER + "Ada,Lovelace,ada@example.com,,,\n"
    assert_problem(await post_csv(api, cls["id"], row, owner=B), 404, "RESOURCE_NOT_FOUND")
    assert_problem(await post_csv(api, str(uuid4()), row), 404, "RESOURCE_NOT_FOUND")
    import_id = (await post_csv(api, cls["id"], row)).json()["import_id"]
    assert (await api.client.get("/v1/imports", headers=B)).json()["imports"] == []
    r = await api.client.post(f"/v1/imports/{import_id}/undo", headers=B)
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")
    assert_problem(
        await api.client.post(f"/v1/imports/{uuid4()}/undo", headers=A), 404, "RESOURCE_NOT_FOUND"
    )


async def _class_of(api: ApiHarness, n: int, without_email: int = 0) -> tuple[str, list[str]]:
    cls = await api.create_class()
    emails = [f"s{i}@example.com" for i in range(n)]
    for i, email in enumerate(emails):
        await api.create_student(first=f"S{i}", last="Member", email=email, class_ids=[cls["id"]])
    for i in range(without_email):
        await api.create_student(first=f"N{i}", last="NoEmail", class_ids=[cls["id"]])
    return cls["id"], emails


async def test_sync_over_the_threshold_writes_nothing(api: ApiHarness) -> None:
    class_id, emails = await _class_of(api, 10, without_email=2)
    keep = emails[:8]  # 2 of the 10 counted members go: 20 %
    body = HEADER + "".join(f"K{i},Keep,{e},,,\n" for i, e in enumerate(keep))
    body += "New,Student,new@example.com,,,\n"
    before = len(api.events())
    r = await post_csv(api, class_id, body, sync=True)
    problem = assert_problem(r, 409, "IMPORT_THRESHOLD_EXCEEDED")
    assert "remove 2 " in problem["detail"]
    assert len(await members(api, class_id)) == 12  # nothing removed, nothing created
    assert len(api.events()) == before
    assert (await api.client.get("/v1/imports", headers=A)).json()["imports"] == []
    # At 20 % it goes through: the two leave the class (the students stay); members without
    # an email stay too.
    r = await post_csv(api, class_id, body, sync=True, max_remove_percent=20)
    assert r.status_code == 200, r.text
    assert (r.json()["removed"], r.json()["created"], r.json()["updated"]) == (2, 1, 8)
    now = await members(api, class_id)
    assert {s["email"] for s in now.values() if s["email"]} == {*keep, "new@example.com"}
    assert len(now) == 10 - 2 + 1 + 2
    removals = [
        e["data"]
        for e in api.events()[before:]
        if e["event_type"] == UPDATED and e["data"]["remove_class_ids"]
    ]
    assert sorted(d["student_email"] for d in removals) == sorted(emails[8:])
    assert all(d["remove_class_ids"] == [class_id] for d in removals)
    listed = (await api.client.get(f"/v1/classes/students?q={emails[9]}", headers=A)).json()
    assert listed["students"][0]["class_ids"] == []


async def test_an_invalid_row_keeps_its_member_in_sync_mode(api: ApiHarness) -> None:
    class_id, emails = await _class_of(api, 2)
    body = HEADER + f",Nameless,{emails[0].upper()},,,\n" + f"A,B,{emails[1]},,,\n"
    r = await post_csv(api, class_id, body, sync=True, max_remove_percent=0)
    assert r.status_code == 200, r.text
    assert (r.json()["removed"], r.json()["failed"]) == (0, 1)


async def test_history_pages_newest_first(api: ApiHarness) -> None:
    cls = await api.create_class()
    ids = []
    for i in range(3):
        r = await post_csv(api, cls["id"], HEADER + f"S{i},X,s{i}@example.com,,,\n")
        ids.append(r.json()["import_id"])
    page = (await api.client.get("/v1/imports", params={"limit": 2}, headers=A)).json()
    assert [e["import_id"] for e in page["imports"]] == ids[::-1][:2]
    assert page["pagination"] == {"limit": 2, "offset": 0, "returned": 2, "total": 3}
    rest = (await api.client.get("/v1/imports", params={"limit": 2, "offset": 2}, headers=A)).json()
    assert [e["import_id"] for e in rest["imports"]] == [ids[0]]
    entry = rest["imports"][0]
    assert set(entry) == {
        "import_id",
        "at",
        "source",
        "class_id",
        "created",
        "updated",
        "removed",
        "undone_at",
    }
    assert entry["undone_at"] is None
    assert_problem(
        await api.client.get("/v1/imports", params={"limit": 0}, headers=A), 400, "VALIDATION_ERROR"
    )


async def test_undo_reverts_object_by_object_and_skips_what_changed(api: ApiHarness) -> None:
    class_id, emails = await _class_of(api, 3)
    old = await members(api, class_id)
    body = HEADER + (
        f"Renamed,Zero,{emails[0]},Legal Zero,Z|Zed,true\n"
        f"S1,Member,{emails[1]},,,\n"  # unchanged
        "New,One,new1@example.com,,,\n"
        "New,Two,new2@example.com,,,\n"
    )  # emails[2] is removed (sync)
    r = await post_csv(api, class_id, body, sync=True, max_remove_percent=50)
    summary = r.json()
    assert (summary["created"], summary["updated"], summary["removed"]) == (2, 1, 1), summary
    import_id = summary["import_id"]
    after = await members(api, class_id)
    # A later edit of one created student: undo must leave it.
    edited = after["new2@example.com"]
    r = await api.client.put(
        f"/v1/classes/students/{edited['id']}",
        json={"person_name": {"first_name": "Edited"}},
        headers=A,
    )
    assert r.status_code == 200
    before = len(api.events())
    r = await api.client.post(f"/v1/imports/{import_id}/undo", headers=A)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["import_id"] == import_id
    assert result["reverted"] == 3
    assert result["skipped"] == [{"student_id": edited["id"], "reason": "changed_since"}]
    now = await members(api, class_id)
    assert set(now) == {*emails, "new2@example.com"}
    zero = now[emails[0]]
    was = old[emails[0]]
    assert (zero["first_name"], zero["legal_full_name"], zero["aliases"]) == (
        was["first_name"],
        was["legal_full_name"],
        was["aliases"],
    )
    assert zero["protected_identity"] is False
    gone = after["new1@example.com"]["id"]
    assert (await api.client.get(f"/v1/classes/students/{gone}", headers=A)).status_code == 404
    assert sorted(topics(api)[before:]) == [DELETED, UPDATED, UPDATED]
    export = (await api.client.get(f"/v1/classes/students/{zero['id']}/export", headers=A)).json()
    assert export["history"][-1]["by"] == f"import:{import_id}"
    listed = (await api.client.get("/v1/imports", headers=A)).json()["imports"][0]
    assert listed["undone_at"] is not None
    again = await api.client.post(f"/v1/imports/{import_id}/undo", headers=A)
    assert_problem(again, 409, "IMPORT_ALREADY_UNDONE")


async def test_undo_reports_deleted_erased_and_associated_students(api: ApiHarness) -> None:
    cls = await api.create_class()
    body = HEADER + "".join(f"N{i},New,n{i}@example.com,,,\n" for i in range(4))
    import_id = (await post_csv(api, cls["id"], body)).json()["import_id"]
    made = await members(api, cls["id"])
    ids = {e: s["id"] for e, s in made.items()}
    path = "/v1/classes/students/"
    assert (await api.client.delete(path + ids["n0@example.com"], headers=A)).status_code == 200
    assert (
        await api.client.post(path + ids["n1@example.com"] + "/erasure", headers=A)
    ).status_code == 200
    api.seed_batch(cls["id"], [(uuid4(), UUID(ids["n2@example.com"]), 0.9)])
    r = await api.client.post(f"/v1/imports/{import_id}/undo", headers=A)
    assert r.status_code == 200, r.text
    reasons = {s["student_id"]: s["reason"] for s in r.json()["skipped"]}
    assert reasons == {
        ids["n0@example.com"]: "deleted",
        ids["n1@example.com"]: "erased",
        ids["n2@example.com"]: "associated",
    }
    assert r.json()["reverted"] == 1
    gone = await api.client.get(path + ids["n3@example.com"], headers=A)
    assert gone.status_code == 404


async def test_the_import_routes_are_in_the_openapi_document(api: ApiHarness) -> None:
    paths = (await api.client.get("/schema/openapi.json")).json()["paths"]
    post = paths["/v1/classes/{class_id}/roster/import"]["post"]
    assert "text/csv" in post["requestBody"]["content"]
    assert {"200", "400", "404", "409", "413", "415", "503"} <= set(post["responses"])
    assert {p["name"] for p in post["parameters"]} >= {"dry_run", "sync", "max_remove_percent"}
    assert "get" in paths["/v1/imports"]
    assert {"200", "404", "409"} <= set(paths["/v1/imports/{import_id}/undo"]["post"]["responses"])


_OUTAGE = """
CREATE FUNCTION cms_test_import_outage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.email = 'outage@example.com' THEN
        RAISE EXCEPTION 'simulated outage' USING ERRCODE = '57P01';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cms_test_import_outage BEFORE INSERT ON cms_students
FOR EACH ROW EXECUTE FUNCTION cms_test_import_outage();
"""


async def test_a_database_failure_is_503_with_nothing_applied(
    pg_url: str, clean_pg: AsyncEngine
) -> None:
    app = create_app(settings_for(use_mock_repository=False, database_url=pg_url))
    async with AsyncTestClient(app) as client:
        api = ApiHarness(client, "postgres")
        class_id, emails = await _class_of(api, 4)
        rows = [f"A{i},Row,row{i}@example.com,,,\n" for i in range(300)]
        rows[250] = "Out,Age,outage@example.com,,,\n"  # the 251st of 300, one transaction
        body = HEADER + f"S0,Renamed,{emails[0]},,,\n" + "".join(rows)
        before = len(api.events())
        await execute(pg_url, _OUTAGE)
        try:
            r = await post_csv(api, class_id, body, sync=True, max_remove_percent=100)
        finally:
            await execute(
                pg_url,
                "DROP TRIGGER cms_test_import_outage ON cms_students; "
                "DROP FUNCTION cms_test_import_outage()",
            )
        assert_problem(r, 503, "SERVICE_UNAVAILABLE")
        assert int(r.headers["retry-after"]) > 0
        now = await members(api, class_id)
        assert set(now) == set(emails)  # nothing created, nothing removed
        assert now[emails[0]]["last_name"] == "Member"  # nothing updated
        assert len(api.events()) == before
        assert (await client.get("/v1/imports", headers=A)).json()["imports"] == []
        # The same request once the database is well again applies it all.
        r = await post_csv(api, class_id, body, sync=True, max_remove_percent=100)
        assert (r.json()["created"], r.json()["updated"], r.json()["removed"]) == (300, 1, 3)


async def test_erasure_leaves_no_former_values_in_import_history(
    pg_url: str, clean_pg: AsyncEngine
) -> None:
    app = create_app(settings_for(use_mock_repository=False, database_url=pg_url))
    async with AsyncTestClient(app) as client:
        api = ApiHarness(client, "postgres")
        cls = await api.create_class()
        s = await api.create_student(
            first="Formername", last="Oldlast", email="former@example.com", legal="Former Legal"
        )
        body = HEADER + "Newname,Newlast,former@example.com,,Aliasname,\n"
        import_id = (await post_csv(api, cls["id"], body)).json()["import_id"]
        dump = "SELECT CAST(i.* AS text) FROM cms_import_items i"
        async with clean_pg.connect() as conn:
            held = " ".join((await conn.execute(text(dump))).scalars())
        assert "Formername" in held
        assert "Former Legal" in held
        r = await client.post(f"/v1/classes/students/{s['id']}/erasure", headers=A)
        assert r.status_code == 200
        async with clean_pg.connect() as conn:
            held = " ".join((await conn.execute(text(dump))).scalars())
        for former in ("Formername", "Oldlast", "Former Legal", "former@example.com"):
            assert former not in held
        undo = (await client.post(f"/v1/imports/{import_id}/undo", headers=A)).json()
        assert undo["skipped"] == [{"student_id": s["id"], "reason": "erased"}]


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(memory_api: ApiHarness) -> None:
    """No Content-Length (chunked upload): the route stops reading at the limit (413)."""
    limit = memory_api.app.state["settings"].http_import_max_bytes
    block = b"x" * 65536
    sent = 0
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": block, "more_body": True}  # never ends

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/classes/{uuid4()}/roster/import",
        "raw_path": b"",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-user-id", A["X-User-ID"].encode()), (b"content-type", b"text/csv")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await memory_api.app(scope, receive, send)  # type: ignore[arg-type]
    assert messages[0]["status"] == 413
    assert sent == limit // len(block) + 1  # read up to the limit, not the endless rest


async def test_archived_classes_refuse_imports_and_undo_skips_rejoining_them(
    api: ApiHarness,
) -> None:
    """§9.2 and §9.4: an HTTP import into an archived class is 409 with nothing written; an
    undo that would put a removed member back into a class archived since skips it."""
    class_id, emails = await _class_of(api, 10)
    body = HEADER + "".join(f"S{i},Member,{e},,,\n" for i, e in enumerate(emails[1:], start=1))
    r = await post_csv(api, class_id, body, sync=True)  # emails[0] leaves the class
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == 1
    import_id = r.json()["import_id"]
    archived = await api.client.post(f"/v1/classes/{class_id}/archive", headers=A)
    assert archived.status_code == 200, archived.text
    before = (len(api.events()), await members(api, class_id))
    refused = await post_csv(api, class_id, HEADER + "New,One,late@example.com,,,\n")
    assert_problem(refused, 409, "CLASS_ARCHIVED")
    assert (len(api.events()), await members(api, class_id)) == before
    r = await api.client.post(f"/v1/imports/{import_id}/undo", headers=A)
    assert r.status_code == 200, r.text
    everyone = await api.client.get("/v1/classes/students", params={"limit": 100}, headers=A)
    student_id = next(s["id"] for s in everyone.json()["students"] if s["email"] == emails[0])
    assert r.json()["skipped"] == [{"student_id": student_id, "reason": "class_archived"}]
    assert r.json()["reverted"] == 0
    assert emails[0] not in await members(api, class_id)
