"""``/internal/v1``: reads for trusted services (``X-Internal-API-Key`` + ``X-Service-ID``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Router, get
from litestar.params import QueryParameter

from class_api.auth import AUTH_OPT, INTERNAL, INTERNAL_AUTH
from class_api.dto import ClassInfoOut, DecidedStudentOut, class_info_out, decided_out
from class_api.openapi import problems
from class_api.routes.params import PathId, Rt
from class_core.errors import ValidationError
from class_core.use_cases import matching

MAX_BATCH_IDS = 100
BatchIds = Annotated[
    str,
    QueryParameter(
        description=f"1..{MAX_BATCH_IDS} batch ids, comma-separated.",
        min_length=1,
    ),
]


def parse_batch_ids(value: str) -> list[UUID]:
    """Comma-separated UUIDs, canonicalised to lowercase and de-duplicated (order kept)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not 1 <= len(parts) <= MAX_BATCH_IDS:
        raise ValidationError.for_field("batch_ids", f"must list 1..{MAX_BATCH_IDS} batch ids")
    ids: list[UUID] = []
    for part in parts:
        try:
            ids.append(UUID(part))
        except ValueError:
            raise ValidationError.for_field("batch_ids", "must be UUIDs") from None
    return list(dict.fromkeys(ids))


@get("/batches/{batch_id:str}/student-names", responses=problems(400, 401, 500, 503))
async def student_names(rt: Rt, batch_id: PathId) -> list[DecidedStudentOut]:
    """Essays of the batch with a decided student; ``[]`` for an unknown batch."""
    return [decided_out(d) for d in await matching.decided_students(rt, batch_id)]


@get("/associations/essay/{essay_id:str}", responses=problems(400, 401, 404, 500, 503))
async def essay_student(rt: Rt, essay_id: PathId) -> DecidedStudentOut:
    """The decided student of one essay; 404 when unknown or not decided."""
    return decided_out(await matching.decided_student_for_essay(rt, essay_id))


@get("/batches/class-info", responses=problems(400, 401, 500, 503))
async def class_info(
    rt: Rt, request: Request[Any, Any, Any], batch_ids: BatchIds
) -> dict[str, ClassInfoOut | None]:
    """``{batch_id: {"class_id", "class_name"} | null}`` for every id asked (a repeated
    ``batch_ids`` parameter adds its ids to the others')."""
    every = ",".join(request.query_params.getall("batch_ids", [batch_ids]))
    return class_info_out(await matching.batch_class_info(rt, parse_batch_ids(every)))


routes = Router(
    "/internal/v1",
    route_handlers=[student_names, essay_student, class_info],
    opt={AUTH_OPT: INTERNAL},
    security=INTERNAL_AUTH,
    tags=["internal"],
)
