"""``class-admin import students --sync`` and ``class-admin imports list | undo`` against
PostgreSQL (contract §9.4)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest_asyncio

from tests.e2e.cli_harness import as_json, fetch, inproc, one_line, scalar, topic_counts

HEADER = ["first_name", "last_name", "email"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    """This module's own migrated database."""
    return await pg_database_factory(migrated=True)


def _write(path: Path, records: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


async def _class_with(url: str, owner: str, n: int) -> tuple[str, list[str]]:
    created = await inproc(url, "classes", "create", "--owner", owner, "--name", "Sync",
                           "--course", "ENG5")  # fmt: skip
    class_id = created.stdout.strip()
    emails = [f"{owner}{i}@s.example" for i in range(n)]
    roster = _write(
        Path(f"/tmp/{owner}-{class_id}.csv"),
        [HEADER] + [["M", f"N{i}", e] for i, e in enumerate(emails)],
    )
    result = await inproc(url, "import", "students", str(roster), "--owner", owner,
                          "--class-id", class_id, "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return class_id, emails


async def _members(url: str, class_id: str) -> int:
    return int(
        await scalar(
            url, "SELECT count(*) FROM cms_class_students WHERE class_id = $1::uuid", class_id
        )
    )


async def test_sync_flags_are_checked(url: str, tmp_path: Path) -> None:
    roster = _write(tmp_path / "r.csv", [HEADER, ["A", "B", "a@s.example"]])
    no_class = await inproc(url, "import", "students", str(roster), "--owner", "f", "--sync")
    assert no_class.exit_code == 2
    assert "--class-id" in one_line(no_class.stderr)
    out_of_range = await inproc(url, "import", "students", str(roster), "--owner", "f",
                                "--class-id", "6f1d1c0e-9a43-4c55-9a5c-2f0c1f7c9d11", "--sync",
                                "--max-remove-percent", "150")  # fmt: skip
    assert out_of_range.exit_code == 2


async def test_sync_over_the_threshold_exits_3_and_writes_nothing(url: str, tmp_path: Path) -> None:
    class_id, emails = await _class_with(url, "thr", 10)
    roster = _write(
        tmp_path / "r.csv",
        [HEADER] + [["K", "Keep", e] for e in emails[:7]] + [["N", "New", "new@thr.example"]],
    )
    before = (await topic_counts(url), await scalar(url, "SELECT count(*) FROM cms_students"))
    result = await inproc(url, "import", "students", str(roster), "--owner", "thr",
                          "--class-id", class_id, "--sync", "--chunk-size", "2")  # fmt: skip
    assert result.exit_code == 3
    assert "remove 3 " in one_line(result.stderr)
    assert await _members(url, class_id) == 10
    after = (await topic_counts(url), await scalar(url, "SELECT count(*) FROM cms_students"))
    assert after == before
    assert await scalar(url, "SELECT count(*) FROM cms_imports WHERE owner_id = 'thr'") == 1


async def test_a_chunked_sync_import_is_one_history_entry_and_undoes(
    url: str, tmp_path: Path
) -> None:
    class_id, emails = await _class_with(url, "hist", 10)
    roster = _write(
        tmp_path / "r.csv",
        [HEADER]
        + [["Renamed", f"N{i}", e] for i, e in enumerate(emails[:9])]
        + [["New", f"X{i}", f"x{i}@hist.example"] for i in range(3)],
    )
    result = await inproc(url, "import", "students", str(roster), "--owner", "hist",
                          "--class-id", class_id, "--sync", "--chunk-size", "4",
                          "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = as_json(result.stdout)
    assert (summary["created"], summary["updated"], summary["removed"]) == (3, 9, 1)
    import_id = summary["import_id"]
    assert await _members(url, class_id) == 9 + 3

    listed = await inproc(url, "imports", "list", "--owner", "hist", "--json")
    assert listed.exit_code == 0
    entries = as_json(listed.stdout)
    assert entries[0]["import_id"] == import_id  # newest first: then the seeding import
    assert {k: entries[0][k] for k in ("source", "class_id", "created", "updated", "removed")} == {
        "source": "cli",
        "class_id": class_id,
        "created": 3,
        "updated": 9,
        "removed": 1,
    }
    assert len(entries) == 2
    assert entries[0]["undone_at"] is None
    items = await fetch(url, "SELECT action FROM cms_import_items WHERE import_id = $1::uuid",
                        import_id)  # fmt: skip
    assert sorted(r["action"] for r in items) == ["created"] * 3 + ["removed"] + ["updated"] * 9

    other = await inproc(url, "imports", "undo", import_id, "--as", "someone-else")
    assert other.exit_code == 3
    undone = await inproc(url, "imports", "undo", import_id, "--as", "hist", "--json")
    assert undone.exit_code == 0, undone.stderr
    assert as_json(undone.stdout) == {"import_id": import_id, "reverted": 13, "skipped": []}
    assert await _members(url, class_id) == 10
    names = await fetch(url, "SELECT DISTINCT first_name FROM cms_students WHERE owner_id='hist'")
    assert [r["first_name"] for r in names] == ["M"]
    actors = await fetch(url, "SELECT DISTINCT actor FROM cms_student_history "
                              "WHERE owner_id = 'hist' AND at > (SELECT at FROM cms_imports "
                              "WHERE import_id = $1::uuid)", import_id)  # fmt: skip
    assert [r["actor"] for r in actors] == [f"import:{import_id}"]
    again = await inproc(url, "imports", "undo", import_id)  # no --as: the import's owner
    assert again.exit_code == 3
    assert "already undone" in one_line(again.stderr)
    text_list = await inproc(url, "imports", "list", "--owner", "hist")
    assert f"{import_id}\t" in text_list.stdout
    assert "undone" in text_list.stdout
