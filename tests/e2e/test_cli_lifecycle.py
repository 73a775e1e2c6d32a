"""``class-admin classes archive | unarchive | list --status`` and the import column
``external_id`` (contract §9.1, §9.2, §7) on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

from tests.e2e.cli_harness import as_json, inproc, query

TEACHER = "teacher-lifecycle-cli"
OTHER = "teacher-someone-else"


async def test_archive_unarchive_and_list_by_status(
    new_database: Callable[[], Awaitable[str]],
) -> None:
    url = await new_database()
    made = await inproc(
        url, "classes", "create", "--owner", TEACHER, "--name", "9A", "--course", "ENG5", "--json"
    )
    assert made.exit_code == 0, made.output
    cid = as_json(made.stdout)["id"]

    archived = await inproc(url, "classes", "archive", cid, "--as", TEACHER, "--json")
    assert archived.exit_code == 0, archived.output
    body = as_json(archived.stdout)
    assert (body["status"], body["version"], body["external_id"]) == ("archived", 2, None)
    assert body["archived_at"] is not None
    again = await inproc(url, "classes", "archive", cid, "--as", TEACHER, "--json")
    assert as_json(again.stdout) == body  # idempotent
    updates = await query(
        url, "SELECT count(*) FROM cms_outbox WHERE topic = 'huleedu.class.updated.v1'"
    )
    assert updates == [(1,)]

    listed = await inproc(url, "classes", "list", "--owner", TEACHER, "--json")
    assert as_json(listed.stdout)["classes"] == []
    listed = await inproc(url, "classes", "list", "--owner", TEACHER, "--status", "all", "--json")
    assert [c["id"] for c in as_json(listed.stdout)["classes"]] == [cid]
    bad = await inproc(url, "classes", "list", "--owner", TEACHER, "--status", "gone")
    assert bad.exit_code == 2

    foreign = await inproc(url, "classes", "archive", cid, "--as", OTHER)
    assert foreign.exit_code == 3
    missing = await inproc(url, "classes", "unarchive", str(uuid4()), "--as", TEACHER)
    assert missing.exit_code == 3
    assert (await inproc(url, "classes", "archive", "nope", "--as", TEACHER)).exit_code == 2

    plain = await inproc(url, "classes", "unarchive", cid, "--as", TEACHER)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == f"{cid}\tactive"


async def test_import_external_ids_and_archived_classes(
    new_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await new_database()
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "first_name,last_name,email,external_id,class_name,course_code\n"
        "Ada,Lovelace,ada@s.example,SIS-1,9A,ENG5\n"
        "Bo,Ek,bo@s.example,SIS-1,9A,ENG5\n"
        "Cy,Fu,cy@s.example,,9A,ENG5\n",
        encoding="utf-8",
    )
    first = await inproc(url, "import", "students", str(roster), "--owner", TEACHER, "--json")
    assert first.exit_code == 1, first.output
    summary = as_json(first.stdout)
    assert (summary["created"], summary["failed"]) == (2, 1)
    [error] = summary["errors"]
    assert error["row"] == 3
    assert "DUPLICATE_EXTERNAL_ID" in error["errors"][0]
    stored = await query(url, "SELECT email, external_id FROM cms_students ORDER BY email")
    assert stored == [("ada@s.example", "SIS-1"), ("cy@s.example", None)]

    listed = await inproc(url, "classes", "list", "--owner", TEACHER, "--json")
    [cls] = as_json(listed.stdout)["classes"]
    assert (await inproc(url, "classes", "archive", cls["id"], "--as", TEACHER)).exit_code == 0
    roster.write_text(
        "first_name,last_name,email,external_id,class_name,course_code\n"
        "Ada,Lovelace,ada@s.example,SIS-1,9A,ENG5\n"
        "Bo,Ek,bo@s.example,SIS-2,9A,ENG5\n"
        "Cy,Fu,cy@s.example,,9A,ENG5\n",
        encoding="utf-8",
    )
    second = await inproc(url, "import", "students", str(roster), "--owner", TEACHER, "--json")
    summary = as_json(second.stdout)
    # Ada and Cy are members already (unchanged); Bo would join the archived class.
    assert (summary["created"], summary["unchanged"], summary["failed"]) == (0, 2, 1)
    assert summary["errors"][0]["row"] == 3
    assert "CLASS_ARCHIVED" in summary["errors"][0]["errors"][0]
    assert await query(url, "SELECT count(*) FROM cms_students") == [(2,)]
