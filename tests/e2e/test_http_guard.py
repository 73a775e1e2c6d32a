"""The header deadline of ``class_api.http_guard`` (contract §12) on a real uvicorn server with
a short deadline: a slow head closes the connection; a keep-alive connection whose requests
come in time stays open however long it lives (one timer per connection, re-armed lazily)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from class_api.http_guard import HeaderDeadlineProtocol

DEADLINE = 0.4


class ShortDeadline(HeaderDeadlineProtocol):
    header_timeout = DEADLINE


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    number = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        hello, host="127.0.0.1", port=number, http=ShortDeadline, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield number
    server.should_exit = True
    await task


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    body = await asyncio.wait_for(reader.readexactly(2), 2)
    return head + body


async def closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False


async def test_a_head_slower_than_the_deadline_closes_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n")
    await asyncio.sleep(DEADLINE / 2)
    writer.write(b"Host: x\r\n")  # a byte arriving does not extend the deadline
    assert not await closed(reader, DEADLINE / 4)
    assert await closed(reader, DEADLINE)
    writer.close()


async def test_requests_in_time_keep_the_connection_open_past_many_deadlines(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 3 * DEADLINE:
        writer.write(REQUEST)
        assert (await response(reader)).endswith(b"ok")
        await asyncio.sleep(DEADLINE * 0.6)  # every wait shorter than the deadline
    writer.write(REQUEST)
    assert (await response(reader)).endswith(b"ok")
    writer.close()


async def test_the_next_head_has_the_deadline_counted_from_the_last_response(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(DEADLINE * 0.7)
    writer.write(REQUEST)
    assert (await response(reader)).endswith(b"ok")
    # The first deadline (from the connection's start) passes while the connection waits for
    # its second head: not closed then, only a deadline after the response.
    assert not await closed(reader, DEADLINE * 0.7)
    assert await closed(reader, DEADLINE)
    writer.close()
