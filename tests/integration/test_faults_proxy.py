"""The fault proxy itself (tests/support/faultproxy.py): each mode does what the fault tests
rely on, on its own loop and from a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.faultproxy import FaultProxy, Mode, ThreadedFaultProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest_asyncio.fixture(loop_scope="session")
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _roundtrip(
    port: int, payload: bytes = b"ping", timeout: float = 2.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    return reader, writer, data


async def test_pass_latency_stall_drop_reset(echo_port: int) -> None:
    async with FaultProxy("127.0.0.1", echo_port) as proxy:
        reader, writer, data = await _roundtrip(proxy.port)
        assert data == b"ping"
        assert proxy.connections == 1

        proxy.latency(150)
        started = time.monotonic()
        writer.write(b"slow")
        assert await reader.readexactly(4) == b"slow"
        assert time.monotonic() - started >= 0.3  # held both ways

        proxy.stall()
        writer.write(b"held")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), 0.3)
        stalled_reader, stalled_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        stalled_writer.write(b"new!")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(stalled_reader.readexactly(4), 0.3)
        proxy.pass_through()  # a partition heals: held bytes go through, nothing is lost
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
        assert await asyncio.wait_for(stalled_reader.readexactly(4), 2) == b"new!"

        proxy.drop()
        dropped_reader, _ = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(dropped_reader.read(10), 2) == b""  # closed at once
        writer.write(b"live")  # existing connections keep working
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"live"

        proxy.reset()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 2)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(stalled_reader.read(10), 2)
        assert proxy.connections == 0
        stalled_writer.close()
        writer.close()

        proxy.pass_through()
        reader, writer, data = await _roundtrip(proxy.port)
        assert data == b"ping"
        assert proxy.cut() == 1  # one-shot reset; the mode stays "pass"
        assert proxy.mode is Mode.PASS
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 2)
        writer.close()
        _, writer, data = await _roundtrip(proxy.port)
        assert data == b"ping"
        writer.close()


def _blocking_roundtrip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.settimeout(2)
        s.sendall(b"sync")
        return s.recv(4)


def test_threaded_proxy_serves_blocking_clients() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _threaded_modes(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _threaded_modes(echo_port: int) -> None:
    with ThreadedFaultProxy("127.0.0.1", echo_port) as proxy:
        # Blocking clients (other processes, other loops): the proxy runs on its own loop.
        assert _blocking_roundtrip(proxy.port) == b"sync"
        proxy.drop()
        try:
            answer = _blocking_roundtrip(proxy.port)
        except OSError:  # refused on send or on receive, depending on timing
            answer = b""
        assert answer == b""
        proxy.pass_through()
        assert _blocking_roundtrip(proxy.port) == b"sync"
        assert proxy.accepted == 3
