"""``class-admin students erase | export`` and the import column ``protected_identity``
(contract §10) on PostgreSQL and SQLite: how an operator answers an erasure or access
request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import UUID

from tests.e2e.cli_harness import as_json, inproc, one_line, query

TEACHER = "teacher-privacy-cli"
OTHER = "teacher-someone-else"
CSV = (
    "first_name,last_name,email,protected_identity,class_name,course_code\n"
    "Zephyrine,Quillfeather,zq@skolan.example,true,9Z,ENG5\n"
    "Otto,Ek,otto@skolan.example,,9Z,ENG5\n"
)


async def test_an_operator_answers_access_and_erasure_requests(
    new_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    url = await new_database()
    roster = tmp_path / "roster.csv"
    roster.write_text(CSV, encoding="utf-8")
    imported = await inproc(url, "import", "students", str(roster), "--owner", TEACHER, "--json")
    assert imported.exit_code == 0, imported.output
    [(raw_id, protected)] = await query(
        url, "SELECT id, protected_identity FROM cms_students WHERE email = 'zq@skolan.example'"
    )
    sid = str(UUID(str(raw_id)))
    assert bool(protected) is True
    payloads = "".join(p for (p,) in await query(url, "SELECT payload FROM cms_outbox"))
    assert "Quillfeather" not in payloads
    assert "zq@skolan.example" not in payloads
    assert f"Student {sid.replace('-', '')[:8]}" in payloads

    exported = await inproc(url, "students", "export", sid, "--as", TEACHER)
    assert exported.exit_code == 0, exported.output
    body = as_json(exported.stdout)
    assert (body["student"]["first_name"], body["student"]["protected_identity"]) == (
        "Zephyrine",
        True,
    )
    assert [c["name"] for c in body["classes"]] == ["9Z"]
    by = f"import:{as_json(imported.stdout)['import_id']}"  # contract §10
    assert [(h["action"], h["by"]) for h in body["history"]] == [
        ("created", by),
        ("added_to_class", by),
    ]

    stranger = await inproc(url, "students", "erase", sid, "--as", OTHER)
    assert stranger.exit_code == 3
    assert "not found" in one_line(stranger.stderr)
    bad = await inproc(url, "students", "export", "not-a-uuid", "--as", TEACHER)
    assert bad.exit_code == 2

    erased = await inproc(url, "students", "erase", sid, "--as", TEACHER, "--json")
    assert erased.exit_code == 0, erased.output
    student = as_json(erased.stdout)
    assert (student["first_name"], student["last_name"], student["email"]) == (
        "ERASED",
        "STUDENT",
        None,
    )
    assert student["is_erased"] is True
    again = await inproc(url, "students", "erase", sid, "--as", TEACHER, "--json")
    assert again.exit_code == 0
    assert as_json(again.stdout) == student

    after = as_json((await inproc(url, "students", "export", sid, "--as", TEACHER)).stdout)
    assert [h["action"] for h in after["history"]][-2:] == ["removed_from_class", "erased"]
    dump = json.dumps(await query(url, "SELECT * FROM cms_students"), default=str)
    dump += "".join(p for (p,) in await query(url, "SELECT payload FROM cms_outbox"))
    assert "Quillfeather" not in dump
    assert "zq@skolan.example" not in dump
    assert "Otto" in dump
