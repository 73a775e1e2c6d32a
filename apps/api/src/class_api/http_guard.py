"""A header deadline for uvicorn's HTTP/1.1 protocol (contract §12: slow clients).

uvicorn's ``timeout_keep_alive`` closes a connection that stays *silent* after a response, but
any byte that arrives cancels it, and nothing bounds how long the request line and headers may
take: a client sending one header line every few seconds holds a connection (and a slot of
the server's connection limit) for as long as it likes. This protocol adds one timer: the
request line and all headers must have arrived within ``HEADER_TIMEOUT`` seconds of the
connection opening, or of the previous response completing; otherwise the connection is
closed without a response. Bodies are not covered (the 1 MiB body limit and the handlers'
own reads bound those); everything else is uvicorn's own httptools protocol, unchanged.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request line and its headers."""

PROTOCOL = "class_api.http_guard:HeaderDeadlineProtocol"
"""What ``uvicorn.run(http=...)`` imports in every server process."""

log = logging.getLogger(__name__)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's head.

    One timer per connection, not one per request: arming sets the deadline (``_head_due``)
    and schedules the timer only when none is pending; disarming clears the deadline and
    leaves the timer be. When the timer fires it closes the connection if the deadline it
    finds has passed, waits for the rest of a deadline set meanwhile, or does nothing when no
    head is awaited. Keep-alive traffic so costs one clock read per request instead of a
    timer scheduled and cancelled per request."""

    header_timeout = HEADER_TIMEOUT
    _head_deadline: asyncio.TimerHandle | None = None
    _head_due: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._head_due = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request (none pipelined): its head has the same deadline.
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_due = None
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._head_due = due = self.loop.time() + self.header_timeout
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_at(due, self._head_timer_fired)

    def _head_timer_fired(self) -> None:
        self._head_deadline = None
        due = self._head_due
        if due is None:  # no head awaited (a request is being handled): nothing to do
            return
        if self.loop.time() < due:  # armed again since this timer was scheduled
            self._head_deadline = self.loop.call_at(due, self._head_timer_fired)
            return
        self._head_too_slow()

    def _head_too_slow(self) -> None:
        self._head_due = None
        if not self.transport.is_closing():
            log.info("closed a connection whose request head took over %gs", self.header_timeout)
            self.transport.close()
