"""``/v1/batches/{batch_id}/student-associations``: review and confirm essay authors."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.params import JSONBody

from class_api.auth import AUTH_OPT, CONTEXT, USER, USER_AUTH
from class_api.dto import (
    BatchAssociationsOut,
    ConfirmIn,
    ConfirmResultOut,
    batch_associations_out,
    confirm_result_out,
)
from class_api.openapi import READ, WRITE
from class_api.routes.params import Ctx, PathId, Rt
from class_core.use_cases import matching

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
    route_handlers=[get_associations, confirm_associations],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["associations"],
)
