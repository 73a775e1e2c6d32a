"""Broken object-level authorisation, route by route (contract §3.1): owner B, holding owner
A's ids, calls every operation of the OpenAPI document with them (in paths, queries and
bodies) and gets 404 exactly as if they did not exist (401 on the internal routes), never a
byte of A's data (ids, names, emails) in a body or a header, and A's data and the outbox stay
as they were. A new operation fails the coverage check until it is added here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from tests.e2e.conftest import INTERNAL, A, ApiHarness, B, assert_problem

A_CLASS = "Aardvark Academy 9Z"
A_FIRST, A_LAST, A_LEGAL = "Quentin", "Zyzzyva", "Quentin Xavier Zyzzyva"
A_EMAIL = "q.zyzzyva@owner-a.example"
WRONG_KEY = {**B, "X-Internal-API-Key": "not-the-key", "X-Service-ID": "intruder"}

Attack = tuple[str, str, dict[str, Any], int]
"""(method, concrete path, request keywords, expected status)"""


class World:
    """Owner A's objects (the targets) and owner B's own ones (used as B's side of a call)."""

    def __init__(self, api: ApiHarness) -> None:
        self.api = api

    async def build(self) -> None:
        api = self.api
        # Cursors taken before A's data exists: following them must show B nothing of A's.
        self.a_cursor = (await api.client.get("/v1/changes", headers=A)).json()["next_cursor"]
        self.b_cursor = (await api.client.get("/v1/changes", headers=B)).json()["next_cursor"]
        self.a_class = (await api.create_class(A, name=A_CLASS))["id"]
        self.a_student = (
            await api.create_student(
                A, first=A_FIRST, last=A_LAST, legal=A_LEGAL, email=A_EMAIL,
                class_ids=[self.a_class],
            )
        )["id"]  # fmt: skip
        self.a_essay, self.a_open_essay = uuid4(), uuid4()
        self.a_batch = api.seed_batch(
            self.a_class,
            [(self.a_essay, UUID(self.a_student), 0.9), (self.a_open_essay, None, 0.0)],
        )
        decided = await api.client.post(
            f"/v1/batches/{self.a_batch}/student-associations/confirm",
            json={"associations": [{"essay_id": str(self.a_essay), "confirmed": True}]},
            headers=A,
        )
        assert decided.status_code == 200, decided.text
        imported = await api.client.post(
            f"/v1/classes/{self.a_class}/roster/import",
            content=b"first_name,last_name,email\nImre,Importsson,imre@owner-a.example\n",
            headers={**A, "Content-Type": "text/csv"},
        )
        assert imported.status_code == 200, imported.text
        self.a_import = imported.json()["import_id"]
        self.b_class = (await api.create_class(B, name="B's own"))["id"]
        self.b_student = (await api.create_student(B, first="Bo", class_ids=[self.b_class]))["id"]
        self.secrets = [
            self.a_class, self.a_student, str(self.a_batch), str(self.a_essay),
            str(self.a_open_essay), A_CLASS, A_FIRST, A_LAST, A_LEGAL, A_EMAIL, "owner-a",
            self.a_import, "Importsson",
        ]  # fmt: skip

    async def snapshot(self) -> list[Any]:
        get = self.api.client.get
        return [
            (await get(f"/v1/classes/{self.a_class}", headers=A)).json(),
            (await get(f"/v1/classes/{self.a_class}/roster", headers=A)).json(),
            (await get(f"/v1/classes/students/{self.a_student}", headers=A)).json(),
            (await get(f"/v1/batches/{self.a_batch}/student-associations", headers=A)).json(),
            (await get("/v1/classes/students", headers=A)).json(),
            (await get("/v1/imports", headers=A)).json(),
            len(self.api.events()),
        ]

    def attacks(self) -> dict[tuple[str, str], list[Attack]]:
        """Every operation → B's calls with A's ids."""
        c, s, bt = self.a_class, self.a_student, self.a_batch
        e, open_e = str(self.a_essay), str(self.a_open_essay)
        own_s = self.b_student
        decide = f"/v1/batches/{bt}/student-associations/confirm"
        csv = {
            "content": b"first_name,last_name,email\nB,Own,b@owner-b.example\n",
            "headers": {**B, "Content-Type": "text/csv"},
        }
        return {
            ("GET", "/v1/classes"): [
                ("GET", "/v1/classes", {"params": {"q": "Aardvark"}}, 200),
                ("GET", "/v1/classes", {"params": {"course_code": "ENG5", "limit": 100}}, 200),
            ],
            ("POST", "/v1/classes"): [],  # no foreign id can be given: B creates its own class
            ("GET", "/v1/classes/{class_id}"): [("GET", f"/v1/classes/{c}", {}, 404)],
            ("PUT", "/v1/classes/{class_id}"): [
                ("PUT", f"/v1/classes/{c}", {"json": {"name": "Taken over"}}, 404),
                ("PUT", f"/v1/classes/{c}", {"json": {"course_codes": ["SV3"]}}, 404),
                ("PUT", f"/v1/classes/{c}", {"json": {}}, 404),
            ],
            ("DELETE", "/v1/classes/{class_id}"): [("DELETE", f"/v1/classes/{c}", {}, 404)],
            ("POST", "/v1/classes/{class_id}/archive"): [
                ("POST", f"/v1/classes/{c}/archive", {}, 404),
                ("POST", f"/v1/classes/{c}/archive", {"headers": {**B, "If-Match": "*"}}, 404),
            ],
            ("POST", "/v1/classes/{class_id}/unarchive"): [
                ("POST", f"/v1/classes/{c}/unarchive", {}, 404)
            ],
            ("GET", "/v1/classes/{class_id}/roster"): [
                ("GET", f"/v1/classes/{c}/roster", {}, 404),
                ("GET", f"/v1/classes/{c}/roster", {"headers": WRONG_KEY}, 401),
            ],
            ("GET", "/v1/classes/students"): [
                ("GET", "/v1/classes/students", {"params": {"class_id": c}}, 404),
                ("GET", "/v1/classes/students", {"params": {"q": A_EMAIL}}, 200),
                ("GET", "/v1/classes/students", {"params": {"q": "zyzzyva"}}, 200),
            ],
            ("POST", "/v1/classes/students"): [
                ("POST", "/v1/classes/students", {"json": {
                    "person_name": {"first_name": "X", "last_name": "Y"}, "class_ids": [c]}}, 404),
                ("POST", "/v1/classes/students", {"json": {
                    "person_name": {"first_name": "X", "last_name": "Y"},
                    "class_ids": [self.b_class, c]}}, 404),
            ],
            ("GET", "/v1/classes/students/{student_id}"): [
                ("GET", f"/v1/classes/students/{s}", {}, 404)
            ],
            ("PUT", "/v1/classes/students/{student_id}"): [
                ("PUT", f"/v1/classes/students/{s}", {"json": {"email": None}}, 404),
                ("PUT", f"/v1/classes/students/{s}", {"json": {
                    "person_name": {"first_name": "Taken", "last_name": "Over"}}}, 404),
                ("PUT", f"/v1/classes/students/{s}", {"json": {"remove_class_ids": [c]}}, 404),
                ("PUT", f"/v1/classes/students/{s}", {"json": {}}, 404),
                ("PUT", f"/v1/classes/students/{own_s}", {"json": {"add_class_ids": [c]}}, 404),
                ("PUT", f"/v1/classes/students/{own_s}", {"json": {"remove_class_ids": [c]}}, 404),
            ],
            ("DELETE", "/v1/classes/students/{student_id}"): [
                ("DELETE", f"/v1/classes/students/{s}", {}, 404)
            ],
            ("POST", "/v1/classes/students/{student_id}/erasure"): [
                ("POST", f"/v1/classes/students/{s}/erasure", {}, 404)
            ],
            ("GET", "/v1/classes/students/{student_id}/export"): [
                ("GET", f"/v1/classes/students/{s}/export", {}, 404)
            ],
            ("GET", "/v1/courses"): [("GET", "/v1/courses", {}, 200)],
            ("GET", "/v1/changes"): [
                ("GET", "/v1/changes", {"params": {"since": self.b_cursor, "limit": 1000}}, 200),
                ("GET", "/v1/changes", {"params": {"since": self.a_cursor, "limit": 1000}}, 200),
            ],
            ("GET", "/v1/batches"): [
                ("GET", "/v1/batches", {"params": {"status": "all"}}, 200),
                ("GET", "/v1/batches", {"params": {"class_id": c, "status": "all"}}, 404),
            ],
            ("POST", "/v1/batches/{batch_id}/deadline"): [
                ("POST", f"/v1/batches/{bt}/deadline", {"json": {
                    "deadline": (datetime.now(UTC) + timedelta(days=1)).isoformat()}}, 404),
            ],
            ("GET", "/v1/batches/{batch_id}/student-associations"): [
                ("GET", f"/v1/batches/{bt}/student-associations", {}, 404)
            ],
            ("POST", "/v1/batches/{batch_id}/student-associations/confirm"): [
                ("POST", decide, {"json": {"associations": [
                    {"essay_id": open_e, "confirmed": False}]}}, 404),
                ("POST", decide, {"json": {"associations": [
                    {"essay_id": open_e, "confirmed": True, "student_id": own_s}]}}, 404),
                ("POST", decide, {"json": {"associations": [
                    {"essay_id": e, "confirmed": True}]}}, 404),  # a retry of A's own call
            ],
            ("GET", "/internal/v1/batches/{batch_id}/student-names"): [
                ("GET", f"/internal/v1/batches/{bt}/student-names", {}, 401),
                ("GET", f"/internal/v1/batches/{bt}/student-names", {"headers": WRONG_KEY}, 401),
            ],
            ("GET", "/internal/v1/associations/essay/{essay_id}"): [
                ("GET", f"/internal/v1/associations/essay/{e}", {}, 401),
                ("GET", f"/internal/v1/associations/essay/{e}", {"headers": WRONG_KEY}, 401),
            ],
            ("GET", "/internal/v1/batches/class-info"): [
                ("GET", "/internal/v1/batches/class-info", {"params": {"batch_ids": str(bt)}}, 401),
            ],
            ("POST", "/v1/classes/{class_id}/roster/import"): [
                ("POST", f"/v1/classes/{c}/roster/import", csv, 404),
                ("POST", f"/v1/classes/{c}/roster/import?sync=true&max_remove_percent=100",
                 csv, 404),
                ("POST", f"/v1/classes/{c}/roster/import?dry_run=true", csv, 404),
            ],
            ("GET", "/v1/imports"): [("GET", "/v1/imports", {"params": {"limit": 100}}, 200)],
            ("POST", "/v1/imports/{import_id}/undo"): [
                ("POST", f"/v1/imports/{self.a_import}/undo", {}, 404)
            ],
            ("GET", "/healthz"): [("GET", "/healthz", {}, 200)],
            ("GET", "/metrics"): [("GET", "/metrics", {}, 200)],
        }  # fmt: skip


def _operations(api: ApiHarness) -> set[tuple[str, str]]:
    doc = api.app.openapi_schema.to_schema()
    verbs = {"get", "post", "put", "delete", "patch"}
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops if m in verbs}


async def test_owner_b_gets_nothing_of_owner_a_on_any_route(api: ApiHarness) -> None:
    world = World(api)
    await world.build()
    attacks = world.attacks()
    assert _operations(api) == set(attacks), "add the new operations to the BOLA table"
    before = await world.snapshot()

    for method, path, kwargs, status in (a for calls in attacks.values() for a in calls):
        kwargs = {"headers": B, **kwargs}
        r = await api.client.request(method, path, **kwargs)
        label = f"{method} {path} {json.dumps(kwargs.get('json'))[:80]}"
        assert r.status_code == status, f"{label}: {r.status_code} {r.text[:200]}"
        if status == 404:
            assert_problem(r, 404, "RESOURCE_NOT_FOUND")
        elif status == 401:
            assert_problem(r, 401, "AUTHENTICATION_REQUIRED")
        seen = r.text + json.dumps(dict(r.headers))
        for secret in world.secrets:
            assert secret.lower() not in seen.lower(), f"{label}: A's {secret!r} leaked"

    assert await world.snapshot() == before, "B changed something of A's"
    # B's own student is untouched by the refused membership changes.
    own = await api.client.get(f"/v1/classes/students/{world.b_student}", headers=B)
    assert own.json()["class_ids"] == [world.b_class]
    # The internal routes really are the way in for services (the control).
    names = await api.client.get(
        f"/internal/v1/batches/{world.a_batch}/student-names", headers=INTERNAL
    )
    assert [n["student_id"] for n in names.json()] == [world.a_student]


def test_every_route_declares_who_may_call_it(api: ApiHarness) -> None:
    """Auth is declared per router (``opt={"auth": ...}``) and checked before the body is
    read; a route without the option is public, so the public ones are listed here."""
    from litestar.routes import HTTPRoute

    from class_api.auth import AUTH_MODES, AUTH_OPT

    public = {"/healthz", "/metrics"}
    undeclared = []
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:  # Litestar's own: answers Allow, no data
                continue
            mode = handler.opt.get(AUTH_OPT)
            if route.path in public:
                assert mode is None, route.path
            elif mode not in AUTH_MODES:
                undeclared.append((sorted(handler.http_methods), route.path))
    assert not undeclared, f"routes without an auth mode: {undeclared}"
