"""Identity at the edge (contract §3.1).

``/v1`` callers are identified by ``X-User-ID`` (set by the trusted gateway); ``/internal/v1``
callers by ``X-Internal-API-Key`` (constant-time compared with ``INTERNAL_API_KEY``) plus
``X-Service-ID``. Guards run before any parameter or body is looked at, so a caller without
identity always gets 401 first. Dependencies then hand the identity to the handlers.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide

from class_api.edge import correlation_id
from class_api.errors import AuthenticationRequiredError
from class_core.runtime import RequestContext, Runtime
from class_core.text import user_id_problem
from class_runtime import Settings

USER_HEADER = "X-User-ID"
INTERNAL_KEY_HEADER = "X-Internal-API-Key"
SERVICE_HEADER = "X-Service-ID"

USER_SECURITY = "UserId"
INTERNAL_KEY_SECURITY = "InternalApiKey"
SERVICE_SECURITY = "ServiceId"
USER_AUTH: list[dict[str, list[str]]] = [{USER_SECURITY: []}]
INTERNAL_AUTH: list[dict[str, list[str]]] = [{INTERNAL_KEY_SECURITY: [], SERVICE_SECURITY: []}]
USER_OR_INTERNAL_AUTH = USER_AUTH + INTERNAL_AUTH


_USER_STATE = "cms_user_id"  # the checked id, kept in the request's scope state


def user_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's ``X-User-ID``; missing, blank, longer than 255 characters or holding a
    control character (NUL cannot even be stored) → 401.

    Header values arrive as bytes, which the server hands over decoded as Latin-1. A gateway
    sends a non-ASCII id as UTF-8, so bytes that are valid UTF-8 are read as UTF-8 (the length
    counts characters, and the id stored in ``validated_by`` and in events is the one sent);
    anything else stays as Latin-1 read it."""
    state = connection.scope.get("state")
    known = state.get(_USER_STATE) if state is not None else None
    if known is not None:  # checked earlier in this request (authorize, then the context)
        return known  # type: ignore[no-any-return]
    value = connection.headers.get(USER_HEADER)
    if value is None or not value.strip():
        raise AuthenticationRequiredError(f"The {USER_HEADER} header is required.")
    if not value.isascii():
        value = _utf8_or_as_is(value)
    problem = user_id_problem(value)
    if problem is not None:
        raise AuthenticationRequiredError(f"The {USER_HEADER} header {problem}.")
    connection.scope.setdefault("state", {})[_USER_STATE] = value
    return value


def _utf8_or_as_is(value: str) -> str:
    raw = value.encode("latin-1", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _check_internal(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    settings: Settings = connection.app.state.settings
    expected = settings.internal_api_key
    given = connection.headers.get(INTERNAL_KEY_HEADER)
    service = connection.headers.get(SERVICE_HEADER)
    valid_key = (
        expected is not None
        and given is not None
        and hmac.compare_digest(given.encode("latin-1"), expected.encode("utf-8"))
    )
    if not valid_key or service is None or not service.strip():
        raise AuthenticationRequiredError(
            f"Valid {INTERNAL_KEY_HEADER} and {SERVICE_HEADER} headers are required."
        )


def is_internal_call(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the caller presents the internal key (which then alone decides)."""
    return INTERNAL_KEY_HEADER in connection.headers


# Who may call a route is declared on its router as ``opt={"auth": ...}`` (one of the values
# below) and checked by :func:`authorize` in the application's ``before_request`` hook, before
# the body is read. (Litestar guards would do the same but copy the route handler on every
# call: measurable on the hot read routes.) A route without the option is public.
AUTH_OPT = "auth"
USER = "user"
INTERNAL = "internal"
USER_OR_INTERNAL = "user_or_internal"
AUTH_MODES = frozenset({USER, INTERNAL, USER_OR_INTERNAL})


def authorize(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Raise the 401 problem when the caller does not present what the route asks for."""
    mode = connection.route_handler.opt.get(AUTH_OPT)
    if mode is None:
        return
    if mode == USER:
        user_id(connection)
    elif mode == INTERNAL:
        _check_internal(connection)
    elif mode == USER_OR_INTERNAL:
        if is_internal_call(connection):
            _check_internal(connection)
        else:
            user_id(connection)
    else:  # pragma: no cover - a typo in a router's opt must not open the route
        raise RuntimeError(f"unknown auth mode {mode!r}")


# The providers below take the runtime (``rt``) although they do not use it: a handler's
# dependencies that do not depend on each other are resolved in an anyio task group, two tasks
# per request; chained, they are simply called one after the other.


def provide_context(
    request: Request[Any, Any, Any], rt: NamedDependency[Runtime]
) -> RequestContext:
    """Who acts, and under which correlation id (carried into every event)."""
    return RequestContext(user_id(request), correlation_id(request.scope))


def provide_roster_owner(
    request: Request[Any, Any, Any], rt: NamedDependency[Runtime]
) -> str | None:
    """The owner whose class may be read, or ``None`` for a trusted internal caller."""
    return None if is_internal_call(request) else user_id(request)


CONTEXT = {"ctx": Provide(provide_context, sync_to_thread=False)}
ROSTER_OWNER = {"owner_id": Provide(provide_roster_owner, sync_to_thread=False)}
