"""``class-admin associations …`` and ``classes …`` against PostgreSQL, side by side with the
HTTP API on the same database: a decision taken with the CLI is stored and published exactly
like the same decision taken over HTTP (contract §3.3, §4, §7)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

import adapters_sql
from class_api.app import create_app
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import MatchingPolicy
from class_core.use_cases.matching import ingest_suggestions
from class_runtime import Settings
from tests.e2e.cli_harness import as_json, cli, fetch, inproc, one_line

TEACHER = "teacher-cli"
OTHER = "teacher-other"
H = {"X-User-ID": TEACHER}
CONFIRMED_TOPIC = "huleedu.class.student.associations.confirmed.v1"
NOTIFICATION_TOPIC = "huleedu.notification.teacher.requested.v1"
Essay = tuple[UUID | None, float]  # suggested student, confidence


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    return await pg_database_factory(migrated=True)


@pytest_asyncio.fixture(loop_scope="session")
async def http(url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.of(database_url=url, run_workers=False, internal_api_key="k")
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _post(client: AsyncTestClient[Litestar], path: str, body: Any) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=H)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def _class_with_students(
    client: AsyncTestClient[Litestar], n: int = 3
) -> tuple[str, list[UUID]]:
    cls = await _post(
        client, "/v1/classes", {"name": f"K-{uuid4().hex[:6]}", "course_codes": ["ENG5"]}
    )
    students = []
    for i in range(n):
        body = {
            "person_name": {"first_name": f"S{i}", "last_name": "Elev"},
            "class_ids": [cls["id"]],
        }
        students.append(UUID((await _post(client, "/v1/classes/students", body))["id"]))
    return cls["id"], students


async def _seed(
    url: str, class_id: str, essays: Sequence[Essay], timeout_hours: float = 24.0
) -> tuple[UUID, list[UUID]]:
    """Store suggestions for a new batch as the consumer would."""
    engine = adapters_sql.create_engine(url, pool_size=1, max_overflow=0)
    try:
        rt = adapters_sql.build_sql_runtime(engine, policy=MatchingPolicy(timeout_hours, 0.7))
        batch_id, essay_ids = uuid4(), [uuid4() for _ in essays]
        message = SuggestionsMessage(
            str(uuid4()), uuid4(), batch_id, UUID(class_id), "ENG5",
            tuple(
                EssayMatch(e, (Suggestion(s, c, ("name in text",)),) if s else ())
                for e, (s, c) in zip(essay_ids, essays, strict=True)
            ),
        )  # fmt: skip
        await ingest_suggestions(rt, message)
    finally:
        await engine.dispose()
    return batch_id, essay_ids


async def _stored(client: AsyncTestClient[Litestar], batch_id: UUID) -> dict[str, Any]:
    r = await client.get(f"/v1/batches/{batch_id}/student-associations", headers=H)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _decisions(body: dict[str, Any], essays: list[UUID]) -> list[tuple[Any, ...]]:
    by_essay = {a["essay_id"]: a for a in body["associations"]}
    keys = ("validation_status", "student_id", "validation_method", "validated_by",
            "suggested_student_id", "confidence_score", "student_name")  # fmt: skip
    return [tuple(by_essay[str(e)][k] for k in keys) for e in essays]


async def _events(url: str, batch_id: UUID, essays: list[UUID]) -> list[dict[str, Any]]:
    """The batch's confirmed event and notifications, ids and times replaced by placeholders."""
    rows = await fetch(
        url,
        "SELECT topic, payload FROM cms_outbox WHERE (topic = $1 AND key = $2) OR "
        "(topic = $3 AND payload::json -> 'data' ->> 'batch_id' = $2) ORDER BY seq",
        CONFIRMED_TOPIC, str(batch_id), NOTIFICATION_TOPIC,
    )  # fmt: skip
    text = json.dumps([json.loads(r["payload"])["data"] for r in rows])
    text = text.replace(str(batch_id), "<batch>")
    for i, essay in enumerate(essays):
        text = text.replace(str(essay), f"<essay{i}>")
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", "<time>", text)
    text = re.sub(r'"correlation_id": "[0-9a-f-]+"', '"correlation_id": "<id>"', text)
    events: list[dict[str, Any]] = json.loads(text)
    for event in events:  # listed by essay id, which is random: compare by essay
        event.get("associations", []).sort(key=lambda a: a["essay_id"])
    return events


async def test_confirm_and_reject_store_and_publish_exactly_what_http_does(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    class_id, (s0, s1, s2) = await _class_with_students(http)
    shape: list[Essay] = [(s0, 0.9), (s1, 0.8), (s0, 0.4), (None, 0.0)]
    over_http, http_essays = await _seed(url, class_id, shape)
    over_cli, cli_essays = await _seed(url, class_id, shape)

    decisions: list[dict[str, Any]] = [
        {"confirmed": True},
        {"confirmed": False},
        {"confirmed": True, "student_id": str(s2)},
        {"confirmed": True, "student_id": str(s1)},
    ]
    for essay, decision in zip(http_essays, decisions, strict=True):
        r = await http.post(
            f"/v1/batches/{over_http}/student-associations/confirm",
            json={"associations": [{"essay_id": str(essay), **decision}]},
            headers=H,
        )
        assert r.status_code == 200, r.text
    last_http = r.json()

    b = str(over_cli)
    e = [str(x) for x in cli_essays]
    runs = [
        await cli(url, "associations", "confirm", "--batch", b, "--as", TEACHER, "--essay", e[0]),
        await cli(url, "associations", "reject", "--batch", b, "--essay", e[1], "--as", TEACHER),
        await cli(url, "associations", "confirm", "--batch", b, "--as", TEACHER, "--essay", e[2],
                  "--student", str(s2)),
        await cli(url, "associations", "confirm", "--batch", b, "--as", TEACHER, "--essay", e[3],
                  "--student", str(s1), "--json"),
    ]  # fmt: skip

    assert [r.returncode for r in runs] == [0, 0, 0, 0], [r.stderr for r in runs]
    assert "1 confirmed, 1 rejected, 2 pending" in runs[1].stdout
    assert as_json(runs[-1].stdout) == {**last_http, "batch_id": b}
    assert as_json(runs[-1].stdout)["status"] == "finalized"
    http_body, cli_body = await _stored(http, over_http), await _stored(http, over_cli)
    assert _decisions(cli_body, cli_essays) == _decisions(http_body, http_essays)
    assert _decisions(cli_body, cli_essays)[0][:4] == ("confirmed", str(s0), "human", TEACHER)
    assert cli_body["status"] == http_body["status"] == "finalized"
    cli_events = await _events(url, over_cli, cli_essays)
    assert [ev.get("notification_type") for ev in cli_events] == [
        "student_associations_suggested", None, "student_associations_confirmed",
    ]  # fmt: skip
    assert cli_events == await _events(url, over_http, http_essays)

    # The CLI reads the batch like the API does.
    listed = await inproc(url, "associations", "list", "--batch", b, "--json")
    assert as_json(listed.stdout) == cli_body

    # After finalization: a retry of a stored decision is harmless, another one conflicts.
    again = await inproc(url, "associations", "confirm", "--batch", b, "--as", TEACHER,
                         "--essay", e[0])  # fmt: skip
    assert again.exit_code == 0, again.stderr
    changed = await cli(
        url, "associations", "reject", "--batch", b, "--essay", e[0], "--as", TEACHER
    )
    assert changed.returncode == 3
    assert "finalized" in one_line(changed.stderr)
    r = await http.post(
        f"/v1/batches/{over_http}/student-associations/confirm",
        json={"associations": [{"essay_id": str(http_essays[0]), "confirmed": False}]},
        headers=H,
    )
    assert r.status_code == 409


async def test_wrong_owner_unknown_essay_and_all_suggested(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    class_id, (s0, s1, _) = await _class_with_students(http)
    batch, essays = await _seed(url, class_id, [(s0, 0.9), (s1, 0.2), (None, 0.0)])
    b = str(batch)

    stranger = await cli(url, "associations", "confirm", "--batch", b, "--as", OTHER,
                         "--essay", str(essays[0]))  # fmt: skip
    assert stranger.returncode == 3
    assert "not found" in one_line(stranger.stderr)
    r = await http.post(
        f"/v1/batches/{b}/student-associations/confirm",
        json={"associations": [{"essay_id": str(essays[0]), "confirmed": True}]},
        headers={"X-User-ID": OTHER},
    )
    assert r.status_code == 404
    unknown = await inproc(url, "associations", "reject", "--batch", b, "--as", TEACHER,
                           "--essay", str(uuid4()))  # fmt: skip
    assert unknown.exit_code == 1  # the item failed (HTTP 400), nothing applied
    assert "not in this batch" in one_line(unknown.stderr)
    stranger_student = await inproc(url, "associations", "confirm", "--batch", b, "--as",
                                    TEACHER, "--essay", str(essays[0]), "--student",
                                    str(uuid4()))  # fmt: skip
    assert stranger_student.exit_code == 1
    for bad_user in ("", " ", "x" * 256, "a\tb"):
        refused = await inproc(url, "associations", "reject", "--batch", b, "--as", bad_user,
                               "--essay", str(essays[0]))  # fmt: skip
        assert refused.exit_code == 2, bad_user
        assert "--as" in one_line(refused.stderr)
    missing = await inproc(url, "associations", "finalize", "--batch", str(uuid4()))
    assert missing.exit_code == 3
    usage = await inproc(url, "associations", "confirm", "--batch", b, "--as", TEACHER)
    assert usage.exit_code == 2

    everything = await inproc(url, "associations", "confirm", "--batch", b, "--as", TEACHER,
                              "--all-suggested", "--json")  # fmt: skip
    assert everything.exit_code == 0, everything.stderr
    assert as_json(everything.stdout)["associations_confirmed"] == 2
    assert as_json(everything.stdout)["pending"] == 1  # the essay without a suggestion
    nothing = await inproc(url, "associations", "confirm", "--batch", b, "--as", TEACHER,
                           "--all-suggested", "--json")  # fmt: skip
    assert nothing.exit_code == 0
    assert as_json(nothing.stdout) == as_json(everything.stdout)  # the batch as it stands
    assert "nothing was confirmed" in nothing.stderr
    assert "nothing was confirmed" in nothing.stderr


async def test_finalize_and_expire_apply_the_timeout_rule_like_the_sweep(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    class_id, (s0, s1, s2) = await _class_with_students(http)
    shape: list[Essay] = [(s0, 0.95), (s1, 0.3), (None, 0.0), (s2, 0.8)]
    now_batch, now_essays = await _seed(url, class_id, shape)
    due_batch, due_essays = await _seed(url, class_id, shape, timeout_hours=0)
    for batch, essays in ((now_batch, now_essays), (due_batch, due_essays)):  # a human decision
        r = await http.post(
            f"/v1/batches/{batch}/student-associations/confirm",
            json={"associations": [{"essay_id": str(essays[3]), "confirmed": False}]},
            headers=H,
        )
        assert r.status_code == 200

    finalized = await cli(url, "associations", "finalize", "--batch", str(now_batch), "--json")
    expired = await cli(url, "associations", "expire", "--json")

    assert finalized.returncode == 0, finalized.stderr
    assert as_json(finalized.stdout) == {
        "batch_id": str(now_batch), "class_id": class_id, "timeout_triggered": True,
        "auto_confirmed": 1, "unknown_assigned": 2,
    }  # fmt: skip
    assert expired.returncode == 0, expired.stderr
    assert as_json(expired.stdout) == {
        "finalized": [{**as_json(finalized.stdout), "batch_id": str(due_batch)}]
    }
    now_body, due_body = await _stored(http, now_batch), await _stored(http, due_batch)
    decided = _decisions(now_body, now_essays)
    assert decided == _decisions(due_body, due_essays)
    assert decided[0][:4] == ("timeout_confirmed", str(s0), "timeout", "SYSTEM_TIMEOUT")
    assert decided[1][4] == str(s1)
    assert decided[1][1] not in (None, str(s1))  # the UNKNOWN student
    assert decided[3][:4] == ("rejected", None, "human", TEACHER)  # never overridden
    events = await _events(url, now_batch, now_essays)
    assert events == await _events(url, due_batch, due_essays)
    assert events[1]["timeout_triggered"] is True
    assert events[2]["notification_type"] == "validation_timeout_processed"

    twice = await inproc(url, "associations", "finalize", "--batch", str(now_batch))
    assert twice.exit_code == 3
    assert "finalized" in one_line(twice.stderr)
    empty = await inproc(url, "associations", "expire", "--json")
    assert as_json(empty.stdout) == {"finalized": []}


async def test_list_pending_shows_every_owner(url: str, http: AsyncTestClient[Litestar]) -> None:
    class_id, (s0, *_) = await _class_with_students(http)
    other = await http.post(
        "/v1/classes",
        json={"name": "Theirs", "course_codes": ["SV1"]},
        headers={"X-User-ID": OTHER},
    )
    mine, _ = await _seed(url, class_id, [(s0, 0.9)])
    theirs, _ = await _seed(url, other.json()["id"], [(None, 0.0), (None, 0.0)])

    listed = await inproc(url, "associations", "list", "--pending", "--json")

    assert listed.exit_code == 0, listed.stderr
    pending = as_json(listed.stdout)["associations"]
    by_batch = {b: [a for a in pending if a["batch_id"] == str(b)] for b in (mine, theirs)}
    assert [len(v) for v in by_batch.values()] == [1, 2]
    assert by_batch[mine][0]["suggested_student_id"] == str(s0)
    # student_name as in the HTTP representation: the suggested student's full name.
    assert by_batch[mine][0]["student_name"] == "S0 Elev"
    assert [a["student_name"] for a in by_batch[theirs]] == [None, None]
    assert all(a["validation_status"] == "pending_validation" for a in pending)
    text = await inproc(url, "associations", "list", "--pending")
    assert str(theirs) in text.stdout
    assert "S0 Elev" in text.stdout
    both = await inproc(url, "associations", "list", "--pending", "--batch", str(mine))
    assert both.exit_code == 2


async def test_operator_views_show_a_protected_identity_as_its_pseudonym(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    """§10: ``associations list`` is an operator's view of any owner's batches (no --as):
    a protected student appears as the pseudonym; the owner's HTTP view shows the person."""
    class_id, _ = await _class_with_students(http, 0)
    body = {
        "person_name": {"first_name": "Zephyrine", "last_name": "Quillfeather"},
        "class_ids": [class_id],
        "protected_identity": True,
    }
    sid = UUID((await _post(http, "/v1/classes/students", body))["id"])
    batch, _ = await _seed(url, class_id, [(sid, 0.9)])
    pseudonym = f"Protected Student {sid.hex[:8]}"
    for args in (("--pending",), ("--batch", str(batch))):
        listed = await inproc(url, "associations", "list", *args, "--json")
        assert listed.exit_code == 0, listed.stderr
        mine = [a for a in as_json(listed.stdout)["associations"] if a["batch_id"] == str(batch)]
        assert [a["student_name"] for a in mine] == [pseudonym], args
        text = await inproc(url, "associations", "list", *args)
        assert "Quillfeather" not in text.stdout + listed.stdout, args
        assert pseudonym in text.stdout, args
    owner_view = await _stored(http, batch)
    assert owner_view["associations"][0]["student_name"] == "Zephyrine Quillfeather"


async def test_classes_create_and_list_match_the_api(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    created = await cli(url, "classes", "create", "--owner", TEACHER, "--name", " Klass 7C ",
                        "--course", "SV2", "--json")  # fmt: skip

    assert created.returncode == 0, created.stderr
    cls = as_json(created.stdout)
    r = await http.get(f"/v1/classes/{cls['id']}", headers=H)
    assert r.json() == cls
    assert cls["name"] == "Klass 7C"
    listed = await inproc(url, "classes", "list", "--owner", TEACHER, "--json")
    assert cls in as_json(listed.stdout)["classes"]
    r = await http.get("/v1/classes", params={"limit": 100}, headers=H)
    assert as_json(listed.stdout)["classes"] == r.json()["classes"]
    assert as_json(
        (await inproc(url, "classes", "list", "--owner", "nobody", "--json")).stdout
    ) == {"classes": []}
    for bad_owner in ("", "x" * 256, "a\x00b"):  # the API's X-User-ID rules
        for args in (("list",), ("create", "--name", "X", "--course", "ENG5")):
            refused = await inproc(url, "classes", *args, "--owner", bad_owner)
            assert refused.exit_code == 2
            assert "--owner" in one_line(refused.stderr)
    unknown = await inproc(url, "classes", "create", "--owner", TEACHER, "--name", "X",
                           "--course", "MATH1")  # fmt: skip
    assert unknown.exit_code == 2
    assert "MATH1" in one_line(unknown.stderr)
    events = await fetch(
        url, "SELECT count(*) FROM cms_outbox WHERE key = $1 AND topic = $2", cls["id"],
        "huleedu.class.created.v1",
    )  # fmt: skip
    assert events[0][0] == 1


async def test_deadline_moves_with_the_cli_and_the_sweep_honours_it(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    """§11: ``associations deadline`` moves a pending batch's deadline like the HTTP route;
    a batch past its old deadline is then left alone by the sweep; range, owner and
    finalized refusals exit 2, 3 and 3."""
    class_id, (s0, _, _) = await _class_with_students(http)
    batch, essays = await _seed(url, class_id, [(s0, 0.9)], timeout_hours=0.0)  # due now
    b = str(batch)
    before = await fetch(url, "SELECT count(*) AS n FROM cms_outbox")
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    moved = await cli(url, "associations", "deadline", "--batch", b, "--at", when.isoformat(),
                      "--as", TEACHER, "--json")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert datetime.fromisoformat(as_json(moved.stdout)["deadline"]) == when
    assert as_json(moved.stdout) == await _stored(http, batch)
    assert await fetch(url, "SELECT count(*) AS n FROM cms_outbox") == before  # nothing published
    swept = await cli(url, "associations", "expire", "--json")
    assert swept.returncode == 0, swept.stderr
    assert b not in {f["batch_id"] for f in as_json(swept.stdout)["finalized"]}
    assert (await _stored(http, batch))["status"] == "pending"

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    far = (datetime.now(UTC) + timedelta(days=15)).isoformat()
    for at, user, code in ((past, TEACHER, 2), (far, TEACHER, 2), ("soon", TEACHER, 2),
                           (when.isoformat(), OTHER, 3)):  # fmt: skip
        r = await cli(url, "associations", "deadline", "--batch", b, "--at", at, "--as", user)
        assert r.returncode == code, (at, user, r.stderr)
        one_line(r.stderr)
    r = await cli(url, "associations", "confirm", "--batch", b, "--as", TEACHER,
                  "--essay", str(essays[0]))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = await cli(url, "associations", "deadline", "--batch", b, "--at", when.isoformat(),
                  "--as", TEACHER)  # fmt: skip
    assert r.returncode == 3
    assert "finalized" in one_line(r.stderr)


async def test_sweep_guard_sends_ambiguous_essays_to_unknown(
    url: str, http: AsyncTestClient[Litestar]
) -> None:
    """§11 timeout guard through the sweep on PostgreSQL: two pending essays whose best
    suggestion is the same student both go to UNKNOWN, as does an essay whose student a human
    already chose; the event's summary counts them as ambiguous."""
    class_id, (s0, s1, s2) = await _class_with_students(http)
    batch, essays = await _seed(
        url, class_id, [(s0, 0.95), (s0, 0.8), (s1, 0.9), (s2, 0.9), (None, 0.0)], 0.0
    )
    r = await http.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(essays[4]), "confirmed": True,
                                "student_id": str(s1)}]},
        headers=H,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    swept = await cli(url, "associations", "expire", "--json")
    assert swept.returncode == 0, swept.stderr
    [done] = [f for f in as_json(swept.stdout)["finalized"] if f["batch_id"] == str(batch)]
    assert (done["auto_confirmed"], done["unknown_assigned"]) == (1, 3)
    body = await _stored(http, batch)
    by_essay = {a["essay_id"]: a for a in body["associations"]}
    chosen = [by_essay[str(e)]["student_id"] for e in essays]
    assert chosen[3] == str(s2)
    assert chosen[4] == str(s1)
    assert chosen[0] == chosen[1] == chosen[2] != str(s0)  # the UNKNOWN student
    [event] = [
        json.loads(r["payload"])["data"]
        for r in await fetch(
            url, "SELECT payload FROM cms_outbox WHERE topic = $1 AND key = $2",
            CONFIRMED_TOPIC, str(batch),
        )
    ]  # fmt: skip
    assert event["timeout_triggered"] is True
    assert event["validation_summary"]["ambiguous"] == 3
    items = {a["essay_id"]: a for a in event["associations"]}
    assert items[str(essays[0])]["suggested_student_id"] == str(s0)
    assert items[str(essays[0])]["suggested_confidence"] == 0.95
    assert items[str(essays[0])]["confidence_score"] == 0.0
