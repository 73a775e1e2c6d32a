"""``class-admin imports list | undo``: the roster import history and undo (contract §9.4),
through the API's use cases."""

from __future__ import annotations

from uuid import UUID

import typer

from class_cli.runner import OWNER_FLAGS, ExitCode, fail, output, output_json, run, user_id
from class_cli.state import state_of
from class_cli.views import import_record_view, undo_result_view
from class_core.import_records import ImportRecord, UndoResult
from class_core.queries import MAX_LIMIT
from class_core.runtime import RequestContext
from class_core.use_cases.import_history import list_imports, undo_import

app = typer.Typer(help="Roster import history: list and undo.", no_args_is_help=True)


@app.command("list", epilog="Example: class-admin imports list --owner teacher-1 --json")
def list_(
    ctx: typer.Context,
    owner: str = typer.Option(..., "--owner", "--as", help="The teacher whose imports to list."),
    limit: int = typer.Option(20, "--limit", min=1, max=MAX_LIMIT, help="How many, newest first."),
    offset: int = typer.Option(0, "--offset", min=0, help="How many to skip."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """The owner's applied imports (HTTP and CLI) that changed something, newest first, kept
    CHANGES_RETENTION_DAYS."""
    owner = user_id(owner, OWNER_FLAGS)
    state = state_of(ctx)

    async def work() -> list[ImportRecord]:
        async with state.runtime() as (rt, _):
            page = await list_imports(rt, RequestContext(owner), limit, offset)
            return list(page.items)

    records = run(state, work())
    if as_json:
        output_json([import_record_view(r) for r in records])
        return
    for r in records:
        view = import_record_view(r)
        undone = f"\tundone {view['undone_at']}" if r.undone_at else ""
        output(
            f"{r.import_id}\t{view['at']}\t{r.source.value}\tclass {view['class_id'] or '-'}\t"
            f"created {r.created}, updated {r.updated}, removed {r.removed}{undone}"
        )


@app.command(epilog='Example: class-admin imports undo "$IMPORT_ID" --as teacher-1 --json')
def undo(
    ctx: typer.Context,
    import_id: str = typer.Argument(..., metavar="IMPORT_ID", help="The import to revert."),
    as_user: str | None = typer.Option(
        None, "--as", help="The owning teacher (else: whoever owns the import)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Revert what an import did, student by student; students changed since (or deleted,
    erased, associated, or whose class is archived) are skipped and listed. Exit 3: not
    found (or not the --as teacher's), or already undone."""
    owner = user_id(as_user, "--as") if as_user is not None else None
    try:
        iid = UUID(import_id)
    except ValueError:
        fail(f"IMPORT_ID must be a UUID, not {import_id!r}", ExitCode.USAGE)
    state = state_of(ctx)

    async def work() -> UndoResult:
        async with state.runtime() as (rt, _):
            return await undo_import(rt, RequestContext(owner) if owner else None, iid)

    result = run(state, work())
    if as_json:
        output_json(undo_result_view(result))
        return
    output(f"reverted {result.reverted}, skipped {len(result.skipped)}")
    for s in result.skipped:
        output(f"skipped {s.student_id}: {s.reason}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="imports")
