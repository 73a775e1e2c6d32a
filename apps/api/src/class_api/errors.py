"""The one exception-handler table: every error becomes an RFC 9457 problem (contract §3.1).

Core errors carry their contract ``code``; Litestar's own errors (routing, parameters, body
size) and anything unexpected are mapped here too. Nothing internal (stack, SQL, exception
text) reaches a client; every exception is logged, without bodies or headers.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from class_api.edge import correlation_id
from class_core.errors import (
    ClassManagementError,
    ConflictError,
    CursorExpiredError,
    DependencyUnavailableError,
    FieldError,
    NotFoundError,
    PreconditionFailedError,
    ValidationError,
)

if TYPE_CHECKING:
    from litestar.types import ExceptionHandlersMap, Scope

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5

ErrorCode = Literal[
    "VALIDATION_ERROR",
    "MULTIPLE_COURSE_ERROR",
    "COURSE_NOT_FOUND",
    "STUDENT_NOT_IN_CLASS",
    "AUTHENTICATION_REQUIRED",
    "RESOURCE_NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "DUPLICATE_STUDENT_EMAIL",
    "RESOURCE_IN_USE",
    "BATCH_FINALIZED",
    "CONFLICT",
    "PRECONDITION_FAILED",
    "CLASS_ARCHIVED",
    "DUPLICATE_EXTERNAL_ID",
    "IMPORT_THRESHOLD_EXCEEDED",
    "IMPORT_ALREADY_UNDONE",
    "CURSOR_EXPIRED",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
]

TITLES: Mapping[str, str] = {
    "VALIDATION_ERROR": "Request validation failed",
    "MULTIPLE_COURSE_ERROR": "A class belongs to exactly one course",
    "COURSE_NOT_FOUND": "Unknown course",
    "STUDENT_NOT_IN_CLASS": "Student is not a member of the class",
    "AUTHENTICATION_REQUIRED": "Authentication required",
    "RESOURCE_NOT_FOUND": "Resource not found",
    "METHOD_NOT_ALLOWED": "Method not allowed",
    "DUPLICATE_STUDENT_EMAIL": "Duplicate student email",
    "RESOURCE_IN_USE": "Resource in use",
    "BATCH_FINALIZED": "Batch already finalized",
    "CONFLICT": "Conflict",
    "PRECONDITION_FAILED": "Precondition failed",
    "CLASS_ARCHIVED": "Class is archived",
    "DUPLICATE_EXTERNAL_ID": "Duplicate external id",
    "IMPORT_THRESHOLD_EXCEEDED": "Import would remove too many members",
    "IMPORT_ALREADY_UNDONE": "Import already undone",
    "CURSOR_EXPIRED": "Cursor unknown or expired",
    "PAYLOAD_TOO_LARGE": "Payload too large",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported media type",
    "INTERNAL_ERROR": "Internal server error",
    "SERVICE_UNAVAILABLE": "Service unavailable",
}

_HTTP_CODES: Mapping[int, tuple[str, str]] = {
    400: ("VALIDATION_ERROR", "The request is malformed."),
    401: ("AUTHENTICATION_REQUIRED", "Authentication is required."),
    404: ("RESOURCE_NOT_FOUND", "No resource exists at this path."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this path."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is larger than 1 MiB."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Request bodies must be application/json."),
    503: ("SERVICE_UNAVAILABLE", "A backing service is unavailable; retry later."),
}

logger = logging.getLogger("class_api.errors")


class ProblemFieldError(msgspec.Struct):
    field: str
    message: str


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details with the service's ``error_code`` and ``correlation_id``."""

    type: str
    title: str
    status: int
    detail: str
    error_code: ErrorCode
    correlation_id: Annotated[str, msgspec.Meta(extra_json_schema={"extra": {"format": "uuid"}})]
    errors: list[ProblemFieldError] | msgspec.UnsetType = msgspec.UNSET


class AuthenticationRequiredError(Exception):
    """Missing or invalid identity headers (401)."""

    code = "AUTHENTICATION_REQUIRED"


class UnsupportedMediaTypeError(Exception):
    """A request body that is not JSON (415), or not what the route takes (its message)."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLargeError(Exception):
    """A body over a route's own limit (413; the roster import's ``HTTP_IMPORT_MAX_BYTES``)."""

    code = "PAYLOAD_TOO_LARGE"


def problem_type(code: str) -> str:
    return "urn:huleedu:class-management:problem:" + code.lower().replace("_", "-")


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    body = ProblemDetails(
        type=problem_type(code),
        title=TITLES.get(code, HTTPStatus(status).phrase),
        status=status,
        detail=detail,
        error_code=code,  # type: ignore[arg-type]
        correlation_id=str(correlation_id(request.scope)),
        errors=[ProblemFieldError(e.field, e.message) for e in errors] if errors else msgspec.UNSET,
    )
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _core_status(exc: ClassManagementError) -> int:
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, PreconditionFailedError):
        return 412
    if isinstance(exc, CursorExpiredError):
        return 410
    if isinstance(exc, DependencyUnavailableError):
        return 503
    return 500


def _unavailable(request: Request[Any, Any, Any]) -> Response[bytes]:
    code, detail = _HTTP_CODES[503]
    return problem_response(
        request, 503, code, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def _internal(request: Request[Any, Any, Any]) -> Response[bytes]:
    return problem_response(request, 500, "INTERNAL_ERROR", "An unexpected error occurred.")


def handle_core_error(
    request: Request[Any, Any, Any], exc: ClassManagementError
) -> Response[bytes]:
    status = _core_status(exc)
    if status == 503:
        return _unavailable(request)
    if status == 500:
        return _internal(request)
    errors = exc.errors if isinstance(exc, ValidationError) else ()
    return problem_response(request, status, exc.code, exc.detail, errors)


def handle_authentication(
    request: Request[Any, Any, Any], exc: AuthenticationRequiredError
) -> Response[bytes]:
    return problem_response(request, 401, exc.code, str(exc) or _HTTP_CODES[401][1])


def handle_media_type(
    request: Request[Any, Any, Any], exc: UnsupportedMediaTypeError
) -> Response[bytes]:
    return problem_response(request, 415, exc.code, str(exc) or _HTTP_CODES[415][1])


def handle_too_large(request: Request[Any, Any, Any], exc: PayloadTooLargeError) -> Response[bytes]:
    return problem_response(request, 413, exc.code, str(exc) or _HTTP_CODES[413][1])


_MISSING_PARAMETER = re.compile(r"^Missing required \w+ parameter '([^']+)'")
_MISSING_OR_UNKNOWN = re.compile(r"^Object (missing required|contains unknown) field `([^`]*)`")


def litestar_field_errors(extra: Any) -> list[FieldError]:
    """Field errors from a Litestar ``ValidationException`` (path and query parameters)."""
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key") or "")
        message = str(item.get("message") or "invalid value")
        if found := _MISSING_OR_UNKNOWN.match(message):
            key = f"{key}.{found.group(2)}" if key else found.group(2)
            message = "field required" if found.group(1) == "missing required" else "unknown field"
        errors.append(FieldError(key, message))
    return errors


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        return _unavailable(request) if status == 503 else _internal(request)
    code, detail = _HTTP_CODES.get(status, ("VALIDATION_ERROR", HTTPStatus(status).phrase))
    headers: dict[str, str] = {}
    if isinstance(exc, MethodNotAllowedException) and exc.headers:
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    if isinstance(exc, NotFoundException):
        return problem_response(request, 404, code, detail)
    if isinstance(exc, ValidationException):
        errors = litestar_field_errors(exc.extra)
        if not errors and (missing := _MISSING_PARAMETER.match(exc.detail)):
            errors = [FieldError(missing.group(1), "this parameter is required")]
        names = ", ".join(e.field for e in errors if e.field)
        detail = f"Invalid request parameters: {names}" if names else "Invalid request."
        return problem_response(request, 400, code, detail, errors)
    return problem_response(request, status, code, detail, headers=headers)


def _dependency_errors() -> tuple[type[BaseException], ...]:
    """Exception types meaning "a backing service is unreachable" (mapped to 503)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from sqlalchemy import exc as sa_exc

        found += [sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError]
    except ImportError:  # pragma: no cover - the api extra installs SQLAlchemy
        pass
    return tuple(found)


_DEPENDENCY_ERRORS = _dependency_errors()


def is_dependency_failure(exc: BaseException) -> bool:
    if isinstance(exc, (DependencyUnavailableError, *_DEPENDENCY_ERRORS)):
        return True
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_dependency_failure(cause)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if is_dependency_failure(exc):
        return _unavailable(request)
    return _internal(request)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ClassManagementError: handle_core_error,
    AuthenticationRequiredError: handle_authentication,
    UnsupportedMediaTypeError: handle_media_type,
    PayloadTooLargeError: handle_too_large,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


# --------------------------------------------------------------------------- logging


def _expected(exc: BaseException) -> bool:
    if isinstance(
        exc, AuthenticationRequiredError | UnsupportedMediaTypeError | PayloadTooLargeError
    ):
        return True
    if isinstance(exc, ClassManagementError):
        return _core_status(exc) < 500
    return isinstance(exc, HTTPException) and exc.status_code < 500


def log_exception(log: Any, scope: Scope, tb: list[str]) -> None:
    """Litestar's exception logging hook: one line per failed request, with the route
    template and correlation id; a stack trace only for server errors. Never the request
    body, headers, query or exception text of client errors (they may hold personal data)."""
    exc = sys.exc_info()[1]
    if exc is None:  # pragma: no cover - always called from an except block
        return
    fields = {
        "method": scope.get("method"),
        "route": scope.get("path_template") or "<unmatched>",
        "correlation_id": str(correlation_id(scope)),
        "error": type(exc).__name__,
    }
    if _expected(exc):
        code = (
            getattr(exc, "code", None)
            or _HTTP_CODES.get(getattr(exc, "status_code", 400), ("VALIDATION_ERROR", ""))[0]
        )
        logger.info("request rejected: %s", code, extra=fields)
    elif is_dependency_failure(exc):
        logger.warning("request failed: a dependency is unavailable", extra=fields, exc_info=exc)
    else:
        logger.error("request failed: unexpected error", extra=fields, exc_info=exc)


__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "AuthenticationRequiredError",
    "PayloadTooLargeError",
    "ProblemDetails",
    "UnsupportedMediaTypeError",
    "log_exception",
    "problem_response",
]
