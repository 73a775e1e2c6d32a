"""``class-admin db upgrade | current | check``: the schema's migrations."""

from __future__ import annotations

import typer

import adapters_sql
from class_cli.runner import ExitCode, message, output, output_json, run
from class_cli.state import state_of

app = typer.Typer(
    help="Database schema migrations (safe to run from several replicas at once).",
    no_args_is_help=True,
)


@app.command(epilog='Example: class-admin --database-url "$DATABASE_URL" db upgrade')
def upgrade(ctx: typer.Context) -> None:
    """Migrate the database schema to the newest revision (creates it when missing)."""
    state = state_of(ctx)

    async def work() -> str | None:
        async with state.engine() as engine:
            await adapters_sql.upgrade(engine)
            return await adapters_sql.current(engine)

    revision = run(state, work())
    message(f"The database schema is at revision {revision} ({state.database_label()}).")


@app.command(epilog="Example: class-admin db current --json")
def current(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the database's schema revision (nothing when it was never migrated)."""
    state = state_of(ctx)

    async def work() -> str | None:
        async with state.engine() as engine:
            return await adapters_sql.current(engine)

    revision = run(state, work())
    head = adapters_sql.head()
    if as_json:
        output_json({"current": revision, "head": head, "at_head": revision == head})
    elif revision is not None:
        output(revision)
    if revision is None:
        message("The database has no schema yet; run `class-admin db upgrade`.")
    elif revision != head:
        message(f"Revision {revision} is not the newest ({head}); run `class-admin db upgrade`.")


@app.command(epilog="Example: class-admin db check || class-admin db upgrade")
def check(ctx: typer.Context) -> None:
    """Exit 0 when the schema is at the newest revision, 1 when it is not."""
    state = state_of(ctx)

    async def work() -> None:
        async with state.engine() as engine:
            await adapters_sql.ensure_at_head(engine)

    run(state, work())
    message(f"The database schema is at the newest revision ({adapters_sql.head()}).")
    raise typer.Exit(int(ExitCode.OK))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="db")
