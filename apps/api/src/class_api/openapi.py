"""OpenAPI 3.1 at ``/schema/openapi.json`` (Swagger UI at ``/schema``), true to the real
responses: problem-details errors, the correlation header and the two API-key schemes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from class_api.auth import (
    INTERNAL_KEY_HEADER,
    INTERNAL_KEY_SECURITY,
    SERVICE_HEADER,
    SERVICE_SECURITY,
    USER_HEADER,
    USER_SECURITY,
)
from class_api.docs_page import swagger_plugin
from class_api.dto import REQUEST_STRUCTS
from class_api.edge import CORRELATION_HEADER
from class_api.errors import PROBLEM_MEDIA_TYPE, ProblemDetails

_DESCRIPTIONS: Mapping[int, str] = {
    400: "VALIDATION_ERROR (bad JSON, unknown field, bad type, bad UUID, out of range, null), "
    "or MULTIPLE_COURSE_ERROR, COURSE_NOT_FOUND, STUDENT_NOT_IN_CLASS",
    401: "AUTHENTICATION_REQUIRED: identity headers missing or invalid",
    404: "RESOURCE_NOT_FOUND: does not exist or belongs to another owner",
    409: "DUPLICATE_STUDENT_EMAIL, DUPLICATE_EXTERNAL_ID, CLASS_ARCHIVED, RESOURCE_IN_USE or "
    "BATCH_FINALIZED",
    410: "CURSOR_EXPIRED: the cursor was not issued by this service or is older than "
    "CHANGES_RETENTION_DAYS; resync from the lists",
    412: "PRECONDITION_FAILED: If-Match names no version equal to the stored one; nothing changed",
    413: "PAYLOAD_TOO_LARGE: body over 1 MiB",
    415: "UNSUPPORTED_MEDIA_TYPE: the body is not application/json",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE: the database is unreachable; see Retry-After",
}


def problems(*statuses: int, described: Mapping[int, str] | None = None) -> dict[int, ResponseSpec]:
    """Problem-details responses for these status codes (documented for the operation);
    ``described`` overrides the common descriptions for this operation."""
    return {
        status: ResponseSpec(
            ProblemDetails,
            description=(described or {}).get(status, _DESCRIPTIONS[status]),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


READ = problems(400, 401, 404, 500, 503)
WRITE = problems(400, 401, 404, 409, 413, 415, 500, 503)
DELETE = problems(400, 401, 404, 409, 500, 503)
# Writes that accept If-Match (contract §8).
GUARDED_WRITE = problems(400, 401, 404, 409, 412, 413, 415, 500, 503)
GUARDED_DELETE = problems(400, 401, 404, 409, 412, 500, 503)
# Bodiless writes that accept If-Match (archive, unarchive, erasure).
GUARDED_ACTION = problems(400, 401, 404, 409, 412, 500, 503)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Class Management Service",
        version="1.0.0",
        description=(
            "Classes, students and essay-author matching. Every `/v1` route needs the "
            f"`{USER_HEADER}` header; `/internal/v1` routes need `{INTERNAL_KEY_HEADER}` and "
            f"`{SERVICE_HEADER}`. Errors are RFC 9457 `{PROBLEM_MEDIA_TYPE}` documents."
        ),
        path="/schema",
        # Swagger UI from the service's own assets (class_api.docs_page), never a CDN.
        render_plugins=[
            swagger_plugin(),
            JsonRenderPlugin(),
        ],
        components=Components(
            security_schemes={
                USER_SECURITY: SecurityScheme(
                    type="apiKey",
                    name=USER_HEADER,
                    security_scheme_in="header",
                    description="The caller's user id, set by the trusted gateway (1..255 chars).",
                ),
                INTERNAL_KEY_SECURITY: SecurityScheme(
                    type="apiKey",
                    name=INTERNAL_KEY_HEADER,
                    security_scheme_in="header",
                    description="Shared secret of internal services (INTERNAL_API_KEY).",
                ),
                SERVICE_SECURITY: SecurityScheme(
                    type="apiKey",
                    name=SERVICE_HEADER,
                    security_scheme_in="header",
                    description="Name of the calling internal service.",
                ),
            }
        ),
        use_handler_docstrings=True,
    )


def _drop_null(schema: Schema) -> None:
    """An optional query parameter is absent, never ``null``: ``oneOf [T, null]`` → ``T``."""
    variants = [v for v in schema.one_of or [] if not (isinstance(v, Schema) and v.type == "null")]
    if schema.one_of and len(variants) == 1 and isinstance(variants[0], Schema):
        schema.one_of = None
        for item in dataclasses.fields(variants[0]):
            value = getattr(variants[0], item.name)
            if value is not None and getattr(schema, item.name) is None:
                setattr(schema, item.name, value)


_CORRELATION_SCHEMA = Schema(type="string", format="uuid")  # type: ignore[arg-type]


CSV_BODY_PATHS = ("/v1/classes/{class_id}/roster/import",)
"""POST operations whose body is a CSV file read from the raw request (no ``data``)."""


def _csv_body(operation: Operation) -> None:
    operation.request_body = RequestBody(
        content={
            "text/csv": OpenAPIMediaType(
                schema=Schema(type="string", description="CSV with a header row, UTF-8")  # type: ignore[arg-type]
            )
        },
        required=True,
        description="The roster: a header row (first_name, last_name, email; optional "
        "legal_full_name, aliases, protected_identity), then one student per record. "
        "Content-Type text/csv, UTF-8 with or without BOM (another charset: 415).",
    )


def finalize_openapi(schema: OpenAPI) -> None:
    """What Litestar cannot express on its own: request bodies forbid unknown properties,
    every response carries ``X-Correlation-ID``, 503 carries ``Retry-After``, every
    operation accepts an optional ``X-Correlation-ID``, and the roster import's body is
    ``text/csv``."""
    for path in CSV_BODY_PATHS:
        item = (schema.paths or {}).get(path)
        if item is not None and item.post is not None:
            _csv_body(item.post)
    request_names = {s.__name__ for s in REQUEST_STRUCTS}
    components = schema.components
    for name, component in (components.schemas or {}).items():
        if name in request_names or component.title in request_names:
            component.additional_properties = False
    change = (components.schemas or {}).get("ChangeOut")
    if change is not None and change.properties is not None:
        change.properties["data"] = Schema(
            one_of=[
                Reference(ref="#/components/schemas/ClassOut"),
                Reference(ref="#/components/schemas/StudentOut"),
                Schema(type="null"),  # type: ignore[arg-type]
            ],
            description="The object as its GET returns it now; null for a delete.",
        )
    for path_item in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation: Operation | None = getattr(path_item, method, None)
            if operation is not None:
                _finalize_operation(operation)


def _finalize_operation(operation: Operation) -> None:
    params: list[Parameter | Reference] = list(operation.parameters or [])
    for param in params:
        if isinstance(param, Parameter) and isinstance(param.schema, Schema):
            _drop_null(param.schema)
    if not any(isinstance(p, Parameter) and p.name == CORRELATION_HEADER for p in params):
        params.append(
            Parameter(
                name=CORRELATION_HEADER,
                param_in="header",
                required=False,
                schema=Schema(type="string"),  # type: ignore[arg-type]
                description="A UUID to correlate logs and events; a new one is made otherwise.",
            )
        )
    operation.parameters = params
    for status, response in (operation.responses or {}).items():
        if not isinstance(response, OpenAPIResponse):
            continue
        headers: dict[str, Any] = dict(response.headers or {})
        headers[CORRELATION_HEADER] = OpenAPIHeader(
            schema=_CORRELATION_SCHEMA,
            required=True,
            description="The request's correlation id (echoed or generated).",
        )
        if status == "503" and response.content and PROBLEM_MEDIA_TYPE in response.content:
            headers["Retry-After"] = OpenAPIHeader(
                schema=Schema(type="integer"),  # type: ignore[arg-type]
                required=True,
                description="Seconds to wait before retrying.",
            )
        response.headers = headers
