"""``/v1/batches``: the teacher's batch queue and deadlines (§11), and
``/v1/batches/{batch_id}/student-associations``: review and confirm essay authors."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Router, get, post
from litestar.params import JSONBody, QueryParameter

from class_api.auth import AUTH_OPT, CONTEXT, USER, USER_AUTH
from class_api.dto import (
    BatchAssociationsOut,
    BatchListOut,
    ConfirmIn,
    ConfirmResultOut,
    DeadlineIn,
    batch_associations_out,
    batch_list_out,
    confirm_result_out,
)
from class_api.openapi import READ, WRITE
from class_api.routes.params import (
    DEFAULT_PAGE_SIZE,
    Ctx,
    Limit,
    Offset,
    OptionalId,
    PathId,
    Rt,
)
from class_core.queries import BatchQuery
from class_core.use_cases import matching

StatusFilter = Annotated[
    Literal["pending", "finalized", "all"],
    QueryParameter(description="Which batches: pending (default), finalized or all."),
]


@get("/", responses=READ, summary="The caller's batch queue")
async def list_batches(
    rt: Rt,
    ctx: Ctx,
    status: StatusFilter = "pending",
    class_id: OptionalId = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> BatchListOut:
    """The caller's batches with their counts, by deadline (earliest first), then batch id."""
    query = BatchQuery.build(limit, offset, status, class_id)
    return batch_list_out(await matching.list_batches(rt, ctx, query))


@post("/{batch_id:str}/deadline", status_code=200, responses=WRITE, summary="Move a deadline")
async def move_deadline(
    rt: Rt, ctx: Ctx, batch_id: PathId, data: JSONBody[DeadlineIn]
) -> BatchAssociationsOut:
    """The owner moves the deadline of a batch that is not finalized: after now and at most
    MAX_DEADLINE_DAYS ahead (else 400, field `deadline`); a finalized batch is 409
    BATCH_FINALIZED. Publishes nothing; answers the batch view."""
    view = await matching.move_deadline(rt, ctx, batch_id, data.when())
    return batch_associations_out(view)


ASSOCIATIONS_PATH = "/{batch_id:str}/student-associations"


@get(ASSOCIATIONS_PATH, responses=READ, summary="Review a batch's suggested authors")
async def get_associations(rt: Rt, ctx: Ctx, batch_id: PathId) -> BatchAssociationsOut:
    """The batch's associations; the batch's class must belong to the caller."""
    return batch_associations_out(await matching.get_batch_associations(rt, ctx, batch_id))


@post(ASSOCIATIONS_PATH + "/confirm", status_code=200, responses=WRITE, summary="Confirm or reject")
async def confirm_associations(
    rt: Rt, ctx: Ctx, batch_id: PathId, data: JSONBody[ConfirmIn]
) -> ConfirmResultOut:
    """Atomic decisions; the counts are for the whole batch after this call. When nothing is
    left pending the batch is finalized (once); a retried call after that is harmless."""
    result = await matching.confirm_associations(rt, ctx, batch_id, data.items())
    return confirm_result_out(result)


routes = Router(
    "/v1/batches",
    route_handlers=[list_batches, move_deadline, get_associations, confirm_associations],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["associations"],
)
