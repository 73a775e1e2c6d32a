"""``class-admin import students``: standard input (``-``) and ``--encoding`` (contract §12),
and the CLI's consistent spellings (``--owner``, with ``--as`` as the same option)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio

from tests.e2e.cli_harness import CLI, as_json, clean_env, fetch, inproc, one_line, table_counts

ROSTER = "first_name;last_name;email\r\nÅsa;Öberg;asa@s.example\r\nJosé;Nuñez€;jose@s.example\r\n"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    return await pg_database_factory(migrated=True)


async def _names(url: str, owner: str) -> set[tuple[str, str]]:
    rows = await fetch(
        url, "SELECT first_name, last_name FROM cms_students WHERE owner_id = $1", owner
    )
    return {(r["first_name"], r["last_name"]) for r in rows}


async def _stdin(
    url: str, data: bytes, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    def call() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [CLI, "--database-url", url, "import", "students", "-", *args],
            input=data,
            capture_output=True,
            env=clean_env(**env),
            timeout=120,
            check=False,
        )

    return await asyncio.to_thread(call)


async def test_standard_input_is_imported_like_a_file(url: str) -> None:
    owner = f"stdin-{uuid4().hex[:8]}"
    proc = await _stdin(url, ROSTER.encode(), "--owner", owner, "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    summary = as_json(proc.stdout.decode())
    assert (summary["created"], summary["failed"]) == (2, 0)
    assert await _names(url, owner) == {("Åsa", "Öberg"), ("José", "Nuñez€")}


async def test_standard_input_over_the_size_limit_is_refused(url: str) -> None:
    before = await table_counts(url)
    proc = await _stdin(url, ROSTER.encode(), "--owner", "u", IMPORT_MAX_BYTES="40")
    assert proc.returncode == 2
    line = one_line(proc.stderr.decode())
    assert "standard input" in line
    assert "CLASS_MANAGEMENT_SERVICE_IMPORT_MAX_BYTES=40" in line
    assert await table_counts(url) == before


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
async def test_a_file_in_the_named_encoding_is_imported(
    url: str, tmp_path: Path, encoding: str
) -> None:
    text = ROSTER if encoding == "cp1252" else ROSTER.replace("€", "")
    roster = tmp_path / "roster.csv"
    roster.write_bytes(text.encode(encoding))
    owner = f"enc-{uuid4().hex[:8]}"
    before = await table_counts(url)
    # Without --encoding the file is refused as not UTF-8, naming the way out.
    refused = await inproc(url, "import", "students", str(roster), "--owner", owner)
    assert refused.exit_code == 2
    line = one_line(refused.stderr)
    assert "not UTF-8 text (line 2)" in line
    assert "--encoding" in line
    assert await table_counts(url) == before

    result = await inproc(
        url, "import", "students", str(roster), "--owner", owner, "--encoding", encoding
    )
    assert result.exit_code == 0, result.stderr
    expected = {("Åsa", "Öberg"), ("José", "Nuñez€" if encoding == "cp1252" else "Nuñez")}
    assert await _names(url, owner) == expected


async def test_a_file_not_valid_in_the_named_encoding_exits_2_naming_it(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_bytes(b"first_name,last_name,email\nA\x81,B,ab@s.example\n")  # 0x81: no cp1252
    before = await table_counts(url)
    result = await inproc(
        url, "import", "students", str(roster), "--owner", "u", "--encoding", "cp1252"
    )
    assert result.exit_code == 2
    assert "not cp1252 text (line 2)" in one_line(result.stderr)
    result = await inproc(
        url, "import", "students", str(roster), "--owner", "u", "--encoding", "utf-16"
    )
    assert result.exit_code == 2  # not one of the choices: a usage error
    assert await table_counts(url) == before


async def test_as_and_owner_are_one_option(url: str, tmp_path: Path) -> None:
    owner = f"alias-{uuid4().hex[:8]}"
    made = await inproc(url, "classes", "create", "--as", owner, "--name", "9A", "--course", "SV1")
    assert made.exit_code == 0, made.stderr
    listed = [
        await inproc(url, "classes", "list", flag, owner, "--json") for flag in ("--owner", "--as")
    ]
    assert [r.exit_code for r in listed] == [0, 0]
    assert as_json(listed[0].stdout) == as_json(listed[1].stdout)
    assert len(as_json(listed[0].stdout)) == 1
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    imported = await inproc(url, "import", "students", str(roster), "--as", owner)
    assert imported.exit_code == 0, imported.stderr
    assert len(await _names(url, owner)) == 2


async def test_help_texts_name_each_example_once() -> None:
    result = await inproc(None, "courses", "--help")
    assert result.exit_code == 0
    assert result.stdout.count("class-admin courses --json") == 1
    helps = await inproc(None, "associations", "confirm", "--help")
    assert "--owner" in helps.stdout
    assert "--as" in helps.stdout
