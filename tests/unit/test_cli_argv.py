"""``class_cli.main.hoist_global_options``: ``--database-url`` anywhere on the line."""

from __future__ import annotations

import pytest

from class_cli.main import hoist_global_options


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["db", "check"], ["db", "check"]),
        (["--database-url", "U", "db", "check"], ["--database-url", "U", "db", "check"]),
        (["db", "check", "--database-url", "U"], ["--database-url", "U", "db", "check"]),
        (["courses", "--database-url=U", "--json"], ["--database-url=U", "courses", "--json"]),
        # Nothing after "--" is an option; a trailing flag without its value is left to Click.
        (["x", "--", "--database-url", "U"], ["x", "--", "--database-url", "U"]),
        (["db", "check", "--database-url"], ["db", "check", "--database-url"]),
    ],
)
def test_database_url_moves_to_the_front(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected
