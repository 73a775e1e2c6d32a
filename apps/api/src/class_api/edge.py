"""The outermost layer of every HTTP exchange: correlation id, trace context (W3C
``traceparent``, see :mod:`class_core.tracing`) and request metrics.

It wraps Litestar's whole ASGI handler (router and exception handling included) rather than
sitting in the route middleware stack, because routing failures (404, 405) never reach route
middleware and still need a correlation id and a count.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from litestar.enums import ScopeType

from class_api.metrics import UNMATCHED_ROUTE, ServiceMetrics
from class_core.tracing import TRACEPARENT, current_traceparent, trace_context

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "X-Correlation-ID"
_HEADER_KEY = CORRELATION_HEADER.lower().encode()
_STATE_KEY = "correlation_id"
_TRACE_KEY = TRACEPARENT.encode()
_UUID_TEXT = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def parse_correlation_id(value: str | None) -> UUID:
    """The given id when it is a UUID (8-4-4-4-12, any case), else a new one."""
    if value is not None and _UUID_TEXT.match(value.strip()):
        return UUID(value.strip())
    return uuid4()


def correlation_id(scope: Scope | dict[str, Any]) -> UUID:
    """This request's correlation id, fixed on first use and kept in the scope state."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(_STATE_KEY)
    if isinstance(found, UUID):
        return found
    raw = next((v for k, v in scope.get("headers", ()) if k.lower() == _HEADER_KEY), None)
    cid = parse_correlation_id(raw.decode("latin-1") if raw is not None else None)
    state[_STATE_KEY] = cid
    return cid


class EdgeMiddleware:
    """Assigns the correlation id, echoes it on every response and records request metrics
    by route template (``scope["path_template"]``, set by the router on a match)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        # Both request headers this layer reads, found in one pass (first occurrence wins).
        raw_id: bytes | None = None
        raw_trace: bytes | None = None
        for key, value in scope["headers"]:
            key = key.lower()
            if key == _HEADER_KEY:
                if raw_id is None:
                    raw_id = value
            elif key == _TRACE_KEY and raw_trace is None:
                raw_trace = value
        cid = parse_correlation_id(raw_id.decode("latin-1") if raw_id is not None else None)
        scope.setdefault("state", {})[_STATE_KEY] = cid  # read by correlation_id()
        header_value = str(cid).encode()
        status = 500
        started = time.perf_counter()

        async def send_with_correlation(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_KEY
                ]
                headers.append((_HEADER_KEY, header_value))
                message["headers"] = headers
            await send(message)

        try:
            if raw_trace is None and current_traceparent() is None:
                # Nothing to make current (the context already holds none): no context switch.
                await self.app(scope, receive, send_with_correlation)
            else:
                with trace_context(raw_trace):  # into every event this request causes
                    await self.app(scope, receive, send_with_correlation)
        finally:
            route = scope.get("path_template") or UNMATCHED_ROUTE
            self.metrics.observe_request(
                scope["method"], route, status, time.perf_counter() - started
            )
