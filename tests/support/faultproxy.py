"""A small TCP fault proxy for fault-injection tests.

:class:`FaultProxy` listens on a free loopback port and forwards every connection to a target
(PostgreSQL, Redis, the Kafka-protocol broker …). Its mode can be switched at any time:

- ``pass`` — forward bytes as they come;
- ``latency`` — forward, but hold every chunk ``latency_ms`` milliseconds first;
- ``stall`` — accept new connections but never connect them onward, and stop forwarding on
  existing ones (bytes are kept, not lost: a network partition, not a crash); switching back
  to ``pass`` lets held bytes through;
- ``drop`` — close new connections as soon as they are accepted (existing ones keep working);
- ``reset`` — reset every existing connection now (``SO_LINGER`` 0, so the peers see an RST,
  not a clean FIN) and every new one on accept.

:meth:`FaultProxy.cut` resets the existing connections once without changing the mode: a
connection cut mid-request from which clients may reconnect at once.

Use it as an async context manager on the test's event loop (in-process clients)::

    async with FaultProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@{proxy.address}/db"
        proxy.set_mode(Mode.STALL)

or, when the clients live in other processes (or on another event loop, like Litestar's test
clients, which block the test's loop while they run a request), on a background thread::

    with ThreadedFaultProxy("127.0.0.1", 6379) as proxy:
        proxy.drop()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

_CHUNK = 65536


class Mode(Enum):
    PASS = "pass"
    LATENCY = "latency"
    STALL = "stall"
    DROP = "drop"
    RESET = "reset"


def _abort(writer: asyncio.StreamWriter, *, rst: bool) -> None:
    """Close a connection now; with ``rst`` the peer gets a TCP reset."""
    transport = writer.transport
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Link:
    """One client connection and its upstream connection (once made)."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _abort(writer, rst=True)
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    """A TCP proxy on ``host:port`` (a free port by default) to ``target_host:target_port``.

    Every method except :meth:`start`/:meth:`stop` is synchronous and must be called on the
    proxy's own event loop (see :class:`ThreadedFaultProxy` for other threads).
    """

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self.mode = Mode.PASS
        self.latency_ms = 0.0
        self.accepted = 0
        """Connections accepted so far (whatever happened to them)."""
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.set_mode(Mode.DROP)  # wakes the connections waiting for a stall to end
        self.cut()
        handlers = list(self._handlers)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def address(self) -> str:
        """``host:port`` where clients connect."""
        return f"{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    # ------------------------------------------------------------------ modes

    def set_mode(self, mode: Mode, latency_ms: float | None = None) -> None:
        self.mode = mode
        if latency_ms is not None:
            self.latency_ms = latency_ms
        if mode is Mode.RESET:
            self.cut()
        # Wake the pumps that wait for a stall to end; the next waiters get a fresh event.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def pass_through(self) -> None:
        self.set_mode(Mode.PASS)

    def latency(self, ms: float) -> None:
        self.set_mode(Mode.LATENCY, ms)

    def stall(self) -> None:
        self.set_mode(Mode.STALL)

    def drop(self) -> None:
        self.set_mode(Mode.DROP)

    def reset(self) -> None:
        self.set_mode(Mode.RESET)

    def cut(self) -> int:
        """Reset every open connection now (mode unchanged); returns how many."""
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        return len(links)

    # ------------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio's stream server treats a cancelled handler task as an error: when the proxy
        # (or its loop) shuts down, the handler just ends.
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode is Mode.DROP:
            _abort(writer, rst=False)
            return
        if self.mode is Mode.RESET:
            _abort(writer, rst=True)
            return
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._wait_while_stalled()
            if link not in self._links:  # cut while waiting
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _abort(writer, rst=True)
                return
            link.upstream = up_writer
            if link not in self._links:
                link.reset()
                return
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)
            for w in (writer, link.upstream):
                if w is not None and not w.transport.is_closing():
                    w.transport.abort()

    async def _wait_while_stalled(self) -> None:
        while self.mode is Mode.STALL:
            await self._changed.wait()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:  # one side closed: the link ends (both sides are closed)
                    return
                await self._wait_while_stalled()
                if self.mode is Mode.LATENCY and self.latency_ms > 0:
                    await asyncio.sleep(self.latency_ms / 1000)
                    await self._wait_while_stalled()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


class ThreadedFaultProxy:
    """A :class:`FaultProxy` on its own event loop in a daemon thread; every method may be
    called from any thread and returns once the change is in effect."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._args = (target_host, target_port)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._proxy: FaultProxy | None = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        assert self._loop is not None, "the proxy is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def proxy(self) -> FaultProxy:
        assert self._proxy is not None, "the proxy is not started"
        return self._proxy

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()

        async def make() -> FaultProxy:
            proxy = FaultProxy(*self._args, host=self._host, port=self._port)
            await proxy.start()
            return proxy

        self._proxy = self._call(make())

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._proxy is not None:
            with contextlib.suppress(Exception):
                self._call(self._proxy.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return self.proxy.address

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    def _run(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)

        return self._call(call())

    def set_mode(self, mode: Mode, latency_ms: float | None = None) -> None:
        self._run(self.proxy.set_mode, mode, latency_ms)

    def pass_through(self) -> None:
        self.set_mode(Mode.PASS)

    def latency(self, ms: float) -> None:
        self.set_mode(Mode.LATENCY, ms)

    def stall(self) -> None:
        self.set_mode(Mode.STALL)

    def drop(self) -> None:
        self.set_mode(Mode.DROP)

    def reset(self) -> None:
        self.set_mode(Mode.RESET)

    def cut(self) -> int:
        count: int = self._run(self.proxy.cut)
        return count

    @property
    def connections(self) -> int:
        count: int = self._run(lambda: self.proxy.connections)
        return count


async def bounded(
    fn: Callable[..., T], *args: Any, timeout: float = 15.0, **kwargs: Any
) -> tuple[T, float]:
    """Run a blocking call (a synchronous HTTP client, say) on a worker thread, so that the
    event loop stays free, and fail the test if it takes longer than ``timeout`` seconds: under
    a fault, a hang is the bug being looked for. Returns the result and the seconds taken."""
    import pytest

    started = time.monotonic()
    try:
        result = await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout)
    except TimeoutError:
        pytest.fail(f"{getattr(fn, '__name__', fn)} hung for more than {timeout}s")
    return result, time.monotonic() - started
