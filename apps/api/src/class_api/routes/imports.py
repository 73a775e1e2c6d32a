"""Roster imports over HTTP, the import history and undo (contract §9.4).

``POST /v1/classes/{id}/roster/import`` is the only route that takes ``text/csv``: the body is
streamed into a spooled temporary file (refused with 413 as soon as it passes
``HTTP_IMPORT_MAX_BYTES``, before reading on when ``Content-Length`` says so) and read by the
same roster reader and import use case as ``class-admin import students``.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import QueryParameter

from class_api.auth import AUTH_OPT, CONTEXT, USER, USER_AUTH
from class_api.dto_imports import (
    ImportListOut,
    ImportSummaryOut,
    UndoOut,
    import_list_out,
    import_summary_out,
    undo_out,
)
from class_api.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from class_api.openapi import problems
from class_api.routes.params import DEFAULT_PAGE_SIZE, Ctx, Limit, Offset, PathId, Rt
from class_core.errors import FieldError, ValidationError
from class_core.use_cases.import_history import list_imports, undo_import
from class_core.use_cases.imports import (
    DEFAULT_MAX_REMOVE_PERCENT,
    file_emails,
    import_roster,
)
from class_runtime import Settings
from class_runtime.roster_csv import (
    RosterColumnsError,
    RosterFileError,
    allow_large_cells,
    open_roster_stream,
)

CSV_MEDIA_TYPE = "text/csv"
_SPOOL_IN_MEMORY = 1 << 20  # bodies above this go to a temporary file while read
_BODY_NAME = "the request body"

DryRun = Annotated[bool, QueryParameter(description="Report what would change; write nothing.")]
Sync = Annotated[
    bool,
    QueryParameter(
        description="Also remove from the class its members whose email is in no row "
        "(the students stay)."
    ),
]
MaxRemovePercent = Annotated[
    float,
    QueryParameter(
        ge=0,
        le=100,
        description="Sync mode: refuse (409 IMPORT_THRESHOLD_EXCEEDED, nothing written) when "
        "more than this percentage of the class's members with an email would be removed.",
    ),
]

IMPORT_PROBLEMS = problems(
    400,
    401,
    404,
    409,
    413,
    415,
    500,
    503,
    described={
        400: "VALIDATION_ERROR: bad query, undecodable body, required columns missing, "
        "class columns present",
        409: "CLASS_ARCHIVED or IMPORT_THRESHOLD_EXCEEDED (nothing written)",
        413: "PAYLOAD_TOO_LARGE: body over HTTP_IMPORT_MAX_BYTES",
        415: "UNSUPPORTED_MEDIA_TYPE: not text/csv, or a charset other than UTF-8",
    },
)


def _check_media_type(request: Request[Any, Any, Any]) -> None:
    media_type, options = request.content_type
    charset = options.get("charset", "utf-8").strip().strip('"').lower()
    if media_type.lower() != CSV_MEDIA_TYPE or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaTypeError("Roster imports take text/csv in UTF-8 (charset=utf-8).")


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The roster is larger than HTTP_IMPORT_MAX_BYTES ({limit} bytes).")


@asynccontextmanager
async def _spooled_body(request: Request[Any, Any, Any], limit: int) -> AsyncIterator[IO[bytes]]:
    """The body in a spooled temporary file, refused past ``limit`` bytes (413)."""
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            spool.write(chunk)
        yield spool


@post(
    "/classes/{class_id:str}/roster/import",
    status_code=200,
    request_max_body_size=None,  # the route's own limit: HTTP_IMPORT_MAX_BYTES
    responses=IMPORT_PROBLEMS,
    summary="Import a roster CSV into a class",
)
async def import_roster_csv(
    rt: Rt,
    ctx: Ctx,
    request: Request[Any, Any, Any],
    class_id: PathId,
    dry_run: DryRun = False,
    sync: Sync = False,
    max_remove_percent: MaxRemovePercent = DEFAULT_MAX_REMOVE_PERCENT,
) -> ImportSummaryOut:
    """The CLI import's rules (students matched by email; row errors reported, not fatal)
    into the caller's class, in one transaction; ``sync=true`` also removes members the
    file does not name. ``import_id`` is null on a dry run and when nothing changed."""
    _check_media_type(request)
    settings: Settings = request.app.state["settings"]
    limit = settings.http_import_max_bytes
    async with _spooled_body(request, limit) as body:
        try:
            roster = open_roster_stream(body, limit, "utf-8", _BODY_NAME)  # type: ignore[arg-type]
        except (RosterFileError, RosterColumnsError) as exc:
            raise ValidationError.for_field("body", str(exc)) from None
        if roster.class_columns:
            names = " and ".join(roster.class_columns)
            raise ValidationError(
                f"The roster names a class ({names}); this route imports into its own class",
                [FieldError("body", f"remove the {names} column(s)")],
            )
        allow_large_cells(limit)
        emails = file_emails(roster.rows()) if sync else None
        summary = await import_roster(
            rt,
            ctx,
            class_id,
            roster.rows(),
            dry_run=dry_run,
            sync=sync,
            max_remove_percent=max_remove_percent,
            emails_in_file=emails,
        )
    return import_summary_out(summary)


@get("/imports", responses=problems(400, 401, 500, 503), summary="List roster imports")
async def list_roster_imports(
    rt: Rt, ctx: Ctx, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0
) -> ImportListOut:
    """The caller's applied imports (HTTP and CLI) that changed something, newest first."""
    return import_list_out(await list_imports(rt, ctx, limit, offset))


@post(
    "/imports/{import_id:str}/undo",
    status_code=200,
    responses=problems(400, 401, 404, 409, 500, 503, described={409: "IMPORT_ALREADY_UNDONE"}),
    summary="Undo a roster import",
)
async def undo_roster_import(rt: Rt, ctx: Ctx, import_id: PathId) -> UndoOut:
    """Revert what the import did, student by student; students changed since the import
    (or deleted, erased, named by an association, or whose class is archived) are skipped
    and listed with the first reason that applies."""
    return undo_out(await undo_import(rt, ctx, import_id))


routes = Router(
    "/v1",
    route_handlers=[import_roster_csv, list_roster_imports, undo_roster_import],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["imports"],
)
