"""``class-admin associations …``: review and decide essay authors like a teacher would over
HTTP (the same use cases, so the same stored decisions and events), finalize a batch now, or
run one timeout sweep."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import typer

from class_cli.runner import (
    OWNER_FLAGS,
    ExitCode,
    fail,
    message,
    output,
    output_json,
    run,
    user_id,
)
from class_cli.state import state_of
from class_cli.views import (
    association_view,
    batch_view,
    confirm_result_view,
    finalized_view,
    timestamp,
)
from class_core.errors import BatchFinalizedError, NotFoundError
from class_core.model import Association
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.matching import (
    BatchView,
    ConfirmItem,
    ConfirmResult,
    FinalizedBatch,
    NamedAssociations,
    confirm_associations,
    expire_due_batches,
    finalize_batch,
    get_batch_associations,
    list_pending_associations_named,
    move_deadline,
)

app = typer.Typer(
    help="Essay-author associations: list, confirm, reject, deadline, finalize, expire.",
    no_args_is_help=True,
)

AS_JSON = typer.Option(False, "--json", help="Print JSON.")
BATCH = typer.Option(..., "--batch", help="The batch id.")
AS_USER = typer.Option(
    ...,
    "--owner",
    "--as",
    help="Act as this teacher (the X-User-ID of the HTTP call); must own the batch's class. "
    "--as is the same option.",
)


async def _batch_owner(rt: Runtime, batch_id: UUID) -> str:
    async with rt.read() as uow:
        batch = await uow.batches.get(batch_id)
    if batch is None:
        raise NotFoundError("Batch", batch_id)
    return batch.owner_id


@app.command(
    "list",
    epilog='Examples: class-admin associations list --batch "$BATCH_ID" --json; '
    "class-admin associations list --pending",
)
def list_(
    ctx: typer.Context,
    batch: UUID | None = typer.Option(None, "--batch", help="One batch (any owner's)."),
    pending: bool = typer.Option(False, "--pending", help="Pending associations of all owners."),
    limit: int = typer.Option(
        1000, "--limit", min=1, max=100_000, help="At most this many (--pending)."
    ),
    as_json: bool = AS_JSON,
) -> None:
    """List a batch's associations (--batch ID) or every pending one (--pending).

    An operator's view of any owner's data: students with a protected identity appear under
    their pseudonym (contract §10)."""
    if (batch is None) == (not pending):
        fail("give exactly one of --batch ID or --pending", ExitCode.USAGE)
    state = state_of(ctx)
    if batch is not None:

        async def one() -> BatchView:
            async with state.runtime() as (rt, _):
                owner = await _batch_owner(rt, batch)
                # An operator's view, not the owner's (no --as): pseudonyms (§10).
                return await get_batch_associations(rt, RequestContext(owner), batch, outside=True)

        view = run(state, one())
        if as_json:
            output_json(batch_view(view))
            return
        b = view.batch
        message(f"batch {b.batch_id}: class {b.class_id}, {b.status.value}, deadline {b.deadline}")
        for a in view.associations:
            output(_line(a, view.student_name(a)))
        return

    async def every() -> NamedAssociations:
        async with state.runtime() as (rt, _):
            return await list_pending_associations_named(rt, limit)

    found = run(state, every())
    if len(found.associations) == limit:
        message(f"showing the first {limit} pending associations (use --limit for more)")
    if as_json:
        output_json(
            {
                "associations": [
                    association_view(a, found.student_name(a)) for a in found.associations
                ]
            }
        )
        return
    for a in found.associations:
        output(_line(a, found.student_name(a)))


def _line(a: Association, name: str | None) -> str:
    chosen = a.student_id or a.suggested_student_id
    confidence = f"{a.confidence_score:.2f}" if a.confidence_score is not None else "-"
    return "\t".join(
        [
            str(a.batch_id),
            str(a.essay_id),
            a.validation_status.value,
            str(chosen) if chosen else "-",
            name or "-",
            confidence,
        ]
    )


def _print_result(result: ConfirmResult, as_json: bool) -> None:
    if as_json:
        output_json(confirm_result_view(result))
    else:
        output(
            f"batch {result.batch_id}: {result.status.value}, "
            f"{result.associations_confirmed} confirmed, {result.associations_rejected} "
            f"rejected, {result.pending} pending"
        )


@app.command(
    epilog='Examples: class-admin associations confirm --batch "$BATCH_ID" --owner teacher-1 '
    '--essay "$ESSAY_ID"; class-admin associations confirm --batch "$BATCH_ID" --owner teacher-1 '
    '--essay "$ESSAY_ID" --student "$STUDENT_ID"; class-admin associations confirm '
    '--batch "$BATCH_ID" --owner teacher-1 --all-suggested'
)
def confirm(
    ctx: typer.Context,
    batch: UUID = BATCH,
    as_user: str = AS_USER,
    essay: UUID | None = typer.Option(None, "--essay", help="The essay to confirm."),
    student: UUID | None = typer.Option(
        None, "--student", help="The author (a student of the class); default: the suggestion."
    ),
    all_suggested: bool = typer.Option(
        False, "--all-suggested", help="Confirm every pending essay that has a suggestion."
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Confirm an essay's author (the HTTP confirm with confirmed: true)."""
    if (essay is None) == (not all_suggested):
        fail("give exactly one of --essay ID or --all-suggested", ExitCode.USAGE)
    if student is not None and essay is None:
        fail("--student goes with --essay", ExitCode.USAGE)
    as_user = user_id(as_user, OWNER_FLAGS)
    state = state_of(ctx)

    async def work() -> tuple[ConfirmResult, bool]:
        async with state.runtime() as (rt, _):
            ctx_ = RequestContext(as_user)
            if essay is not None:
                items = [ConfirmItem(essay, True, student)]
            else:
                view = await get_batch_associations(rt, ctx_, batch)
                if view.batch.is_finalized:
                    raise BatchFinalizedError()
                items = [
                    ConfirmItem(a.essay_id, True)
                    for a in view.associations
                    if a.is_pending and a.suggested_student_id is not None
                ]
                if not items:
                    return view.result(), False
            return await confirm_associations(rt, ctx_, batch, items), True

    result, confirmed = run(state, work(), invalid=ExitCode.FAILED)
    if not confirmed:
        message("no pending essay of the batch has a suggestion; nothing was confirmed")
    _print_result(result, as_json)


@app.command(
    epilog='Example: class-admin associations reject --batch "$BATCH_ID" --essay "$ESSAY_ID" '
    "--owner teacher-1"
)
def reject(
    ctx: typer.Context,
    batch: UUID = BATCH,
    essay: UUID = typer.Option(..., "--essay", help="The essay whose suggestion is wrong."),
    as_user: str = AS_USER,
    as_json: bool = AS_JSON,
) -> None:
    """Reject an essay's suggestion (the HTTP confirm with confirmed: false)."""
    as_user = user_id(as_user, OWNER_FLAGS)
    state = state_of(ctx)

    async def work() -> ConfirmResult:
        async with state.runtime() as (rt, _):
            items = [ConfirmItem(essay, False)]
            return await confirm_associations(rt, RequestContext(as_user), batch, items)

    _print_result(run(state, work(), invalid=ExitCode.FAILED), as_json)


def _timestamp(value: str) -> datetime:
    """ISO 8601 with an offset, else a usage error naming ``--at``."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        fail("--at must be an ISO 8601 timestamp with an offset", ExitCode.USAGE)
    if parsed.tzinfo is None:
        fail("--at must include a UTC offset (e.g. +00:00)", ExitCode.USAGE)
    return parsed


@app.command(
    epilog='Example: class-admin associations deadline --batch "$BATCH_ID" --at "$DEADLINE" '
    "--as teacher-1"
)
def deadline(
    ctx: typer.Context,
    batch: UUID = BATCH,
    at: str = typer.Option(
        ...,
        "--at",
        help="The new deadline: ISO 8601 with an offset, after now, at most "
        "MAX_DEADLINE_DAYS ahead.",
    ),
    as_user: str = AS_USER,
    as_json: bool = AS_JSON,
) -> None:
    """Move a pending batch's deadline (the HTTP POST /v1/batches/{id}/deadline); publishes
    nothing, and the timeout sweep honours the new deadline. Out of range: exit 2; a
    finalized batch, or one the teacher does not own: exit 3."""
    as_user = user_id(as_user, OWNER_FLAGS)
    when = _timestamp(at)
    state = state_of(ctx)

    async def work() -> BatchView:
        async with state.runtime() as (rt, _):
            return await move_deadline(rt, RequestContext(as_user), batch, when)

    view = run(state, work())
    if as_json:
        output_json(batch_view(view))
    else:
        output(f"batch {view.batch.batch_id}: deadline {timestamp(view.batch.deadline)}")


@app.command(epilog='Example: class-admin associations finalize --batch "$BATCH_ID"')
def finalize(ctx: typer.Context, batch: UUID = BATCH, as_json: bool = AS_JSON) -> None:
    """Apply the timeout rule to the batch now, whatever its deadline (timeout_triggered)."""
    state = state_of(ctx)

    async def work() -> FinalizedBatch:
        async with state.runtime() as (rt, _):
            return await finalize_batch(rt, batch)

    done = run(state, work())
    if as_json:
        output_json(finalized_view(done))
    else:
        output(_finalized_line(done))


def _finalized_line(f: FinalizedBatch) -> str:
    return (
        f"batch {f.batch_id} (class {f.class_id}) finalized: {f.auto_confirmed} kept their "
        f"suggestion, {f.unknown_assigned} assigned to the UNKNOWN student"
    )


@app.command(epilog="Example: class-admin associations expire --json")
def expire(ctx: typer.Context, as_json: bool = AS_JSON) -> None:
    """Run one timeout sweep now: finalize every pending batch past its deadline."""
    state = state_of(ctx)

    async def work() -> list[FinalizedBatch]:
        async with state.runtime() as (rt, _):
            return await expire_due_batches(rt)

    done = run(state, work())
    if as_json:
        output_json({"finalized": [finalized_view(f) for f in done]})
        return
    for f in done:
        output(_finalized_line(f))
    message(f"{len(done)} batch(es) finalized")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="associations")
