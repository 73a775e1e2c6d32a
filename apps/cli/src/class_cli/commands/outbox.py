"""``class-admin outbox status | retry-dead``: the transactional outbox's backlog."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

import adapters_sql
from class_cli.runner import message, output, output_json, run
from class_cli.state import state_of
from class_cli.views import outbox_status_view
from class_core.ports import OutboxStatus

app = typer.Typer(help="Events waiting to be published (the outbox).", no_args_is_help=True)


@app.command(epilog="Example: class-admin outbox status --json")
def status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Count pending, dead and published events, and the age of the oldest pending one."""
    state = state_of(ctx)

    async def work() -> OutboxStatus:
        async with state.runtime() as (_, engine):
            return await adapters_sql.SqlOutboxStore(engine).status(datetime.now(UTC))

    view = outbox_status_view(run(state, work()))
    if as_json:
        output_json(view)
        return
    for key, value in view.items():
        output(f"{key}\t{'-' if value is None else value}")


@app.command("retry-dead", epilog="Example: class-admin outbox retry-dead")
def retry_dead(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Put dead events back in line (attempts reset); the relay publishes them again."""
    state = state_of(ctx)

    async def work() -> int:
        async with state.runtime() as (_, engine):
            return await adapters_sql.SqlOutboxStore(engine).retry_dead(datetime.now(UTC))

    count = run(state, work())
    if as_json:
        output_json({"retried": count})
    else:
        output(str(count))
    message(f"{count} dead event(s) put back in line")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="outbox")
