"""The operations endpoint of ``class-scheduler``: ``GET /healthz`` and ``GET /metrics`` on
``SCHEDULER_HTTP_PORT`` (contract §12).

Two read-only routes do not need a web framework: this is a small HTTP/1.1 server on asyncio
streams, one request per connection (``Connection: close``). A client that has not sent its
request line and headers within :data:`HEADER_TIMEOUT_SECONDS` is dropped without an answer,
so that slow clients cannot pin the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from class_core.env import PREFIX
from class_scheduler.health import METRICS_CONTENT_TYPE, SchedulerStatus

log = logging.getLogger("class_scheduler.http")

HEADER_TIMEOUT_SECONDS = 10.0
MAX_HEAD_BYTES = 16 * 1024
PORT_VARIABLE = PREFIX + "SCHEDULER_HTTP_PORT"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}  # fmt: skip


class PortUnavailableError(Exception):
    """The operations port cannot be bound; the message names the variable."""


class OpsServer:
    """Serves ``status`` on ``host:port`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, status: SchedulerStatus, host: str, port: int) -> None:
        self._status = status
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0 in tests)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise PortUnavailableError(
                f"{PORT_VARIABLE}: cannot listen on {self._host}:{self._port} ({reason}); "
                "choose another port, or 0 to turn the endpoint off"
            ) from None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(HEADER_TIMEOUT_SECONDS):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # too slow, gone, or too large: closed without an answer
            status, content_type, body = await self._answer(head)
            reason = _REASONS.get(status, "")
            writer.write(
                (
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n"
                ).encode("ascii")
                + (b"" if head.startswith(b"HEAD ") else body)
            )
            await writer.drain()
        except Exception:  # one broken connection never stops the server
            log.warning("operations endpoint: request failed", exc_info=True)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        try:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("ascii").split(" ", 2)
        except ValueError:
            return _json(400, {"status": 400, "title": "Bad Request"})
        path = target.split("?", 1)[0].rstrip("/") or "/"
        if path not in ("/healthz", "/metrics"):
            return _json(404, {"status": 404, "title": "Not Found"})
        if method not in ("GET", "HEAD"):
            return _json(405, {"status": 405, "title": "Method Not Allowed"})
        if path == "/healthz":
            body, status = await self._status.health()
            return _json(status, body)
        return 200, METRICS_CONTENT_TYPE, await self._status.metrics()


def _json(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()
