"""Hostile input through the real app (contract §3.1), on the in-memory adapters and on
PostgreSQL: each input is stored faithfully (read back equal, NFC-normalised and trimmed) or
refused with its documented error code; never a 500, never a partial write, never an internal
detail in the response."""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from class_api.app import create_app
from tests.e2e.conftest import INTERNAL, PROBLEM, A, ApiHarness, assert_problem, settings_for

JSON = {**A, "content-type": "application/json"}
LEAKS = ("Traceback", "SELECT", "INSERT", "UPDATE cms", "cms_", "sqlalchemy", "asyncpg", 'File "')


def _nested(depth: int) -> bytes:
    return b'{"name": ' + b"[" * depth + b"]" * depth + b', "course_codes": ["ENG5"]}'


def _class(name: Any, codes: Any = ("ENG5",)) -> dict[str, Any]:
    return {"name": name, "course_codes": list(codes)}


def _student(first: Any = "Ada", last: Any = "L", **extra: Any) -> dict[str, Any]:
    return {"person_name": {"first_name": first, "last_name": last}, **extra}


def _no_leak(text: str, *sent: str | None) -> None:
    # A marker the request itself carried (a fuzzed name "cms_", say) may come back as the
    # stored value: only a marker the client did not send counts as a leak.
    echoed = " ".join(s for s in sent if s)
    for marker in LEAKS:
        if marker.casefold() in echoed.casefold():
            continue
        assert marker not in text, f"{marker!r} in a response"


async def _snapshot(api: ApiHarness) -> tuple[Any, ...]:
    classes = (await api.client.get("/v1/classes", params={"limit": 100}, headers=A)).json()
    students = (
        await api.client.get("/v1/classes/students", headers=A, params={"limit": 100})
    ).json()
    return classes, students, len(api.events())


# (label, method, path, request keywords, status, error code)
Case = tuple[str, str, str, dict[str, Any], int, str]
BAD, TOO_LARGE, MEDIA = "VALIDATION_ERROR", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"
COURSE, COURSES = "COURSE_NOT_FOUND", "MULTIPLE_COURSE_ERROR"
NOT_FOUND, AUTH = "RESOURCE_NOT_FOUND", "AUTHENTICATION_REQUIRED"


def _refusals(cls: str, student: str) -> list[Case]:
    many_ids = [str(uuid4()) for _ in range(20_000)]  # ~800 KB: under the body limit
    over = b'{"name": "' + b"x" * (1024 * 1024) + b'", "course_codes": ["ENG5"]}'
    return [
        # size and shape
        ("over 1 MiB", "POST", "/v1/classes", {"content": over, "headers": JSON}, 413, TOO_LARGE),
        (
            "over 1 MiB student",
            "POST",
            "/v1/classes/students",
            {
                "content": b'{"person_name": {"first_name": "' + b"y" * (1024 * 1024) + b'"}}',
                "headers": JSON,
            },
            413,
            TOO_LARGE,
        ),
        (
            "nested 100k",
            "POST",
            "/v1/classes",
            {"content": _nested(100_000), "headers": JSON},
            400,
            BAD,
        ),
        (
            "nested object",
            "POST",
            "/v1/classes",
            {
                "content": b'{"name": "x", "course_codes": ["ENG5"], "x": '
                + b'{"a": ' * 5000
                + b"1"
                + b"}" * 5000
                + b"}",
                "headers": JSON,
            },
            400,
            BAD,
        ),
        (
            "invalid utf-8 in a string",
            "POST",
            "/v1/classes",
            {"content": b'{"name": "a\xff\xfeb", "course_codes": ["ENG5"]}', "headers": JSON},
            400,
            BAD,
        ),
        (
            "overlong utf-8",
            "POST",
            "/v1/classes",
            {"content": b'{"name": "\xc0\xafx", "course_codes": ["ENG5"]}', "headers": JSON},
            400,
            BAD,
        ),
        (
            "lone surrogate escape",
            "POST",
            "/v1/classes",
            {"content": b'{"name": "a\\ud800b", "course_codes": ["ENG5"]}', "headers": JSON},
            400,
            BAD,
        ),
        (
            "truncated",
            "POST",
            "/v1/classes",
            {"content": b'{"name": "x", "course', "headers": JSON},
            400,
            BAD,
        ),
        (
            "huge number",
            "POST",
            "/v1/classes",
            {"content": b'{"name": 1e99999, "course_codes": ["ENG5"]}', "headers": JSON},
            400,
            BAD,
        ),
        (
            "text/plain",
            "POST",
            "/v1/classes",
            {"content": b"{}", "headers": {**A, "content-type": "text/plain"}},
            415,
            MEDIA,
        ),
        # text rules
        ("NUL in a name", "POST", "/v1/classes", {"json": _class("a\x00b")}, 400, BAD),
        (
            "BEL in a name",
            "POST",
            "/v1/classes/students",
            {"json": _student(last="L\x07")},
            400,
            BAD,
        ),
        (
            "C1 control in a name",
            "POST",
            "/v1/classes/students",
            {"json": _student(first="A\x85")},
            400,
            BAD,
        ),
        (
            "NUL in a legal name",
            "POST",
            "/v1/classes/students",
            {
                "json": {
                    "person_name": {"first_name": "A", "last_name": "B", "legal_full_name": "\x00"}
                }
            },
            400,
            BAD,
        ),
        ("blank name", "POST", "/v1/classes", {"json": _class(" \t\n ")}, 400, BAD),
        ("256 code points", "POST", "/v1/classes", {"json": _class("🎉" * 256)}, 400, BAD),
        (
            "NUL in an email",
            "POST",
            "/v1/classes/students",
            {"json": _student(email="a\x00@ex.org")},
            400,
            BAD,
        ),
        ("two @", "POST", "/v1/classes/students", {"json": _student(email="a@b@ex.org")}, 400, BAD),
        (
            "reserved domain",
            "POST",
            "/v1/classes/students",
            {"json": _student(email="x@HULEEDU.system")},
            400,
            BAD,
        ),
        (
            "email too long",
            "POST",
            "/v1/classes/students",
            {"json": _student(email="a" * 250 + "@ex.org")},
            400,
            BAD,
        ),
        (
            "sql in a course code",
            "POST",
            "/v1/classes",
            {"json": _class("x", ["ENG5'; DROP TABLE classes;--"])},
            400,
            COURSE,
        ),
        (
            "two courses",
            "PUT",
            f"/v1/classes/{cls}",
            {"json": {"course_codes": ["ENG5", "SV1"]}},
            400,
            COURSES,
        ),
        (
            "an owner",
            "POST",
            "/v1/classes",
            {"json": {**_class("x"), "owner_id": "teacher-b"}},
            400,
            BAD,
        ),
        (
            "an id",
            "POST",
            "/v1/classes/students",
            {"json": {**_student(), "id": str(uuid4())}},
            400,
            BAD,
        ),
        ("null name", "PUT", f"/v1/classes/{cls}", {"json": {"name": None}}, 400, BAD),
        (
            "bool as text",
            "POST",
            f"/v1/batches/{uuid4()}/student-associations/confirm",
            {"json": {"associations": [{"essay_id": str(uuid4()), "confirmed": "true"}]}},
            400,
            BAD,
        ),
        # long lists of ids
        (
            "20k unknown class ids",
            "POST",
            "/v1/classes/students",
            {"json": _student(class_ids=many_ids)},
            404,
            NOT_FOUND,
        ),
        (
            "20k ids to add",
            "PUT",
            f"/v1/classes/students/{student}",
            {"json": {"add_class_ids": many_ids}},
            404,
            NOT_FOUND,
        ),
        (
            "20k ids to remove",
            "PUT",
            f"/v1/classes/students/{student}",
            {"json": {"add_class_ids": [cls], "remove_class_ids": many_ids}},
            404,
            NOT_FOUND,
        ),
        (
            "id in both lists",
            "PUT",
            f"/v1/classes/students/{student}",
            {"json": {"add_class_ids": [cls], "remove_class_ids": [cls]}},
            400,
            BAD,
        ),
        (
            "12k essays",
            "POST",
            f"/v1/batches/{uuid4()}/student-associations/confirm",
            {
                "json": {
                    "associations": [{"essay_id": i, "confirmed": False} for i in many_ids[:12_000]]
                }
            },
            404,
            NOT_FOUND,
        ),
        (
            "101 batch ids",
            "GET",
            "/internal/v1/batches/class-info",
            {"params": {"batch_ids": ",".join(many_ids[:101])}, "headers": INTERNAL},
            400,
            BAD,
        ),
        (
            "sql as a batch id",
            "GET",
            "/internal/v1/batches/class-info",
            {"params": {"batch_ids": "1' OR '1'='1"}, "headers": INTERNAL},
            400,
            BAD,
        ),
        # query parameters
        ("limit 10^40", "GET", "/v1/classes", {"params": {"limit": "9" * 40}}, 400, BAD),
        ("limit 0", "GET", "/v1/classes/students", {"params": {"limit": "0"}}, 400, BAD),
        ("limit 101", "GET", "/v1/classes", {"params": {"limit": "101"}}, 400, BAD),
        ("limit float", "GET", "/v1/classes", {"params": {"limit": "1e3"}}, 400, BAD),
        ("offset -1", "GET", "/v1/classes", {"params": {"offset": "-1"}}, 400, BAD),
        ("offset 10^40", "GET", "/v1/classes/students", {"params": {"offset": "9" * 40}}, 400, BAD),
        ("offset 1,000,001", "GET", "/v1/classes", {"params": {"offset": "1000001"}}, 400, BAD),
        ("NUL in q", "GET", "/v1/classes/students", {"params": {"q": "a\x00"}}, 400, BAD),
        ("q too long", "GET", "/v1/classes", {"params": {"q": "x" * 10_000}}, 400, BAD),
        (
            "NUL in a course filter",
            "GET",
            "/v1/classes",
            {"params": {"course_code": "ENG5\x00"}},
            400,
            COURSE,
        ),
        (
            "updated_since garbage",
            "GET",
            "/v1/classes",
            {"params": {"updated_since": "'; --"}},
            400,
            BAD,
        ),
        (
            "updated_since past year 9999 in UTC",
            "GET",
            "/v1/classes",
            {"params": {"updated_since": "9999-12-31T23:59:59-00:01"}},
            400,
            BAD,
        ),
        (
            "updated_since before year 1 in UTC",
            "GET",
            "/v1/classes/students",
            {"params": {"updated_since": "0001-01-01T00:00:00+00:01"}},
            400,
            BAD,
        ),
        (
            "course filter of 60k characters",
            "GET",
            "/v1/classes",
            {"params": {"course_code": "X" * 60_000}},
            400,
            BAD,
        ),
        (
            "updated_since naive",
            "GET",
            "/v1/classes",
            {"params": {"updated_since": "2026-01-01T00:00:00"}},
            400,
            BAD,
        ),
        (
            "class_id not a uuid",
            "GET",
            "/v1/classes/students",
            {"params": {"class_id": "1 OR 1=1"}},
            400,
            BAD,
        ),
        # malformed ids in paths
        ("sql in a path", "GET", "/v1/classes/' OR 1=1 --", {}, 400, BAD),
        (
            "stacked sql in a path",
            "DELETE",
            "/v1/classes/students/1;DROP TABLE cms_students",
            {},
            400,
            BAD,
        ),
        ("encoded NUL in a path", "GET", "/v1/classes/%00", {}, 400, BAD),
        ("not hex", "GET", f"/v1/batches/{str(uuid4())[:-1]}g/student-associations", {}, 400, BAD),
        ("traversal", "GET", "/v1/classes/..%2F..%2Fetc%2Fpasswd", {}, 404, NOT_FOUND),
        (
            "traversal in internal",
            "GET",
            "/internal/v1/associations/essay/..%2F..",
            {"headers": INTERNAL},
            404,
            NOT_FOUND,
        ),
        # identity
        (
            "NUL in X-User-ID",
            "GET",
            "/v1/classes",
            {"headers": {"X-User-ID": b"teacher\x00a"}},
            401,
            AUTH,
        ),
        (
            "control in X-User-ID",
            "POST",
            "/v1/classes",
            {"json": _class("x"), "headers": {"X-User-ID": b"teacher\x01a"}},
            401,
            AUTH,
        ),
        (
            "256-char X-User-ID",
            "GET",
            "/v1/classes",
            {"headers": {"X-User-ID": "t" * 256}},
            401,
            AUTH,
        ),
        (
            "wrong internal key",
            "GET",
            f"/v1/classes/{cls}/roster",
            {"headers": {**A, "X-Internal-API-Key": "x' OR '1'='1", "X-Service-ID": "s"}},
            401,
            AUTH,
        ),
        *_if_match_refusals(cls, student),
    ]


# Contract §8: If-Match values that are not `*` or quoted versions (400), or name no stored
# version (412); each on the four guarded writes. Nothing changes.
_BAD_IF_MATCH: list[str | bytes] = [
    "1",
    "'1'",
    '"1" OR 1=1',
    '"1";DROP',
    "W/1",
    '"1",,"2"',
    '"',
    "*,*",
    '\\"1\\"',
    '"1 "',
]
_STALE_IF_MATCH: list[str | bytes] = [
    '"2"',
    'W/"1"',
    '"-1"',
    '"1e0"',
    '"' + "9" * 400 + '"',
    '"١"'.encode(),
    '"01x"',
]


def _if_match_refusals(cls: str, student: str) -> list[Case]:
    cases: list[Case] = []
    for path, body in (
        (f"/v1/classes/{cls}", _class("Changed")),
        (f"/v1/classes/students/{student}", _student("Changed")),
    ):
        for tag, status, code in [(t, 400, BAD) for t in _BAD_IF_MATCH] + [
            (t, 412, "PRECONDITION_FAILED") for t in _STALE_IF_MATCH
        ]:
            headers = {**A, "If-Match": tag}
            cases.append(
                (
                    f"If-Match {tag[:20]!r} PUT",
                    "PUT",
                    path,
                    {"json": body, "headers": headers},
                    status,
                    code,
                )
            )
            cases.append(
                (
                    f"If-Match {tag[:20]!r} DELETE",
                    "DELETE",
                    path,
                    {"headers": headers},
                    status,
                    code,
                )
            )
    return cases


async def test_refusals_answer_the_documented_code_and_change_nothing(api: ApiHarness) -> None:
    cls = await api.create_class(A, name="Keep")
    student = await api.create_student(A, email="keep@example.org", class_ids=[cls["id"]])
    before = await _snapshot(api)
    for label, method, path, kwargs, status, code in _refusals(cls["id"], student["id"]):
        kwargs = {**kwargs, "headers": kwargs.get("headers", A)}
        r = await api.client.request(method, path, **kwargs)
        assert r.status_code == status, f"{label}: {r.status_code} {r.text[:300]}"
        assert_problem(r, status, code)
        _no_leak(r.text)
        # A refusal is small whatever the request carried: no value is echoed at length.
        assert len(r.content) < 4096, f"{label}: a {len(r.content)}-byte refusal"
    assert await _snapshot(api) == before, "a refused request changed something"


async def test_an_unknown_course_filter_is_named_once(api: ApiHarness) -> None:
    code = "NOPE-7f3a"
    r = await api.client.get("/v1/classes", params={"course_code": code}, headers=A)
    assert_problem(r, 400, COURSE)
    assert r.text.count(code) == 1, r.text
    assert r.json()["errors"][0]["field"] == "course_code"


ACCEPTED = [
    ("Robert'); DROP TABLE cms_students;--", "Robert'); DROP TABLE cms_students;--"),
    ("../../etc/passwd %00 %2e%2e/", "../../etc/passwd %00 %2e%2e/"),
    ("%_\\*?[]{}$`|&;<>\"'", "%_\\*?[]{}$`|&;<>\"'"),
    ("Åsa Öberg-Ängström", "Åsa Öberg-Ängström"),
    ("A\u030asa O\u0308berg", "Åsa Öberg"),  # combining marks → NFC
    ("\u1100\u1161\u11a8", "\uac01"),  # conjoining jamo → one Hangul syllable
    ("  padded\u3000", "padded"),
    ("\u202eمرحبا بالعالم\u202c", "\u202eمرحبا بالعالم\u202c"),  # RTL and its format marks
    ("שלום עולם", "שלום עולם"),
    ("👩‍👩‍👧‍👦 🎉 🇸🇪", "👩‍👩‍👧‍👦 🎉 🇸🇪"),
    ("🎉" * 255, "🎉" * 255),  # 255 code points, 1020 bytes
    ("e\u0301" * 200, "é" * 200),  # 400 code points before NFC, 200 after
    ("Zero\u200bwidth\u2060joiner", "Zero\u200bwidth\u2060joiner"),
]


async def test_hostile_but_valid_text_is_stored_faithfully(api: ApiHarness) -> None:
    for given_name, stored in ACCEPTED:
        r = await api.client.post("/v1/classes", json=_class(given_name), headers=A)
        assert r.status_code == 201, f"{given_name!r}: {r.text[:300]}"
        assert r.json()["name"] == stored
        again = await api.client.get(f"/v1/classes/{r.json()['id']}", headers=A)
        assert again.json()["name"] == stored
        created = [e["data"] for e in api.events() if e["event_type"] == "huleedu.class.created.v1"]
        event = next(e for e in created if e["class_id"] == r.json()["id"])
        assert event["class_designation"] == stored

        s = await api.client.post(
            "/v1/classes/students",
            json={"person_name": {"first_name": given_name, "last_name": given_name[::-1],
                                  "legal_full_name": given_name}},
            headers=A,
        )  # fmt: skip
        assert s.status_code == 201, f"{given_name!r}: {s.text[:300]}"
        read = (await api.client.get(f"/v1/classes/students/{s.json()['id']}", headers=A)).json()
        assert read["first_name"] == stored
        assert read["legal_full_name"] == stored
        assert read["last_name"] == unicodedata.normalize("NFC", given_name[::-1]).strip()

    email = await api.client.post(
        "/v1/classes/students", json=_student(email="  ÅSA.Öberg+Tag@Exämple.ORG "), headers=A
    )
    assert email.status_code == 201, email.text
    assert email.json()["email"] == "åsa.öberg+tag@exämple.org"

    # Search is a literal substring: LIKE wildcards and escapes match only themselves.
    for q, names in [
        ("%", {"%_\\*?[]{}$`|&;<>\"'", "../../etc/passwd %00 %2e%2e/"}),
        ("_", {"%_\\*?[]{}$`|&;<>\"'", "Robert'); DROP TABLE cms_students;--"}),
        ("\\", {"%_\\*?[]{}$`|&;<>\"'"}),
        ("DROP TABLE", {"Robert'); DROP TABLE cms_students;--"}),
        ("asa oberg", {"Åsa Öberg-Ängström", "Åsa Öberg"}),
    ]:
        found = await api.client.get("/v1/classes", params={"q": q, "limit": 100}, headers=A)
        assert found.status_code == 200, found.text
        assert {c["name"] for c in found.json()["classes"]} == names, q


def _text() -> st.SearchStrategy[str]:
    # Any code point JSON can carry in UTF-8 (no lone surrogates), NUL and controls included.
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


@pytest.fixture(scope="module")
def pg_client(pg_url: str) -> Any:
    with TestClient(create_app(settings_for(use_mock_repository=False, database_url=pg_url))) as c:
        yield c


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(first=_text(), last=_text(), email=st.one_of(st.none(), _text(), st.emails()))
def test_fuzzed_names_are_stored_normalised_or_refused_on_postgresql(
    pg_client: Any, first: str, last: str, email: str | None
) -> None:
    owner = {"X-User-ID": f"fuzz-{uuid4()}"}
    body = json.dumps(_student(first, last, email=email), ensure_ascii=False).encode()
    r = pg_client.post(
        "/v1/classes/students", content=body, headers={**owner, "content-type": "application/json"}
    )
    _no_leak(r.text, first, last, email)
    listed = pg_client.get("/v1/classes/students", headers=owner).json()
    if r.status_code == 201:
        expected = unicodedata.normalize("NFC", first).strip()
        assert r.json()["first_name"] == expected
        assert r.json()["last_name"] == unicodedata.normalize("NFC", last).strip()
        assert listed["pagination"]["total"] == 1
    else:
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["error_code"] == "VALIDATION_ERROR"
        assert listed["pagination"]["total"] == 0  # nothing half-written
