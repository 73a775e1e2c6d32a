"""``class-admin``: the admin CLI (contract §7). Each command group lives in
``class_cli.commands`` and registers itself here."""

from __future__ import annotations

import typer

from class_cli.commands import associations, classes, courses, db, imports, outbox
from class_cli.state import CliState

app = typer.Typer(
    name="class-admin",
    help=(
        "Administer the Class Management Service. Uses the service's configuration "
        "(CLASS_MANAGEMENT_SERVICE_* variables); data goes to stdout, messages to stderr. "
        "Exit codes: 0 ok, 1 some rows or items failed, 2 usage error, 3 not found or "
        "conflict, 4 database unreachable."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Database URL (postgresql://… or sqlite+aiosqlite:///…); "
        "default: CLASS_MANAGEMENT_SERVICE_DATABASE_URL, else ./class_management.db.",
        show_default=False,
    ),
) -> None:
    """Global options."""
    ctx.obj = CliState(database_url)


db.register(app)
courses.register(app)
classes.register(app)
imports.register(app)
associations.register(app)
outbox.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
