"""Slow clients cannot pin the server (contract §12), checked over raw sockets against the real
``class-api`` process: a connection whose request line and headers have not all arrived
within 10 s of opening, or of its previous response, is closed without a response."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

PREFIX = "CLASS_MANAGEMENT_SERVICE_"
HEAD_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_port() -> Iterator[int]:
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env = {**clean, PREFIX + "USE_MOCK_REPOSITORY": "true"}
    argv = [sys.executable, "-c", "from class_api.main import main; main()"]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "class-api did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _trickle(sock: socket.socket, lines: list[bytes], every: float) -> tuple[float, bytes]:
    """Send one line every ``every`` seconds until the server closes the connection; the
    seconds from the first line until the close, and whatever the server sent meanwhile."""
    start = time.monotonic()
    received = b""
    sock.settimeout(every)
    for line in lines:
        try:
            sock.sendall(line)
        except OSError:  # reset: closed
            return time.monotonic() - start, received
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - start, received
        if not chunk:
            return time.monotonic() - start, received
        received += chunk
    return time.monotonic() - start, received


def _slow_head(n: int = 20) -> list[bytes]:
    return [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n"] + [
        f"X-Slow-{i}: {i}\r\n".encode() for i in range(n)
    ]


def test_a_trickled_head_is_closed_after_10_s_without_a_response(api_port: int) -> None:
    with socket.create_connection(("127.0.0.1", api_port)) as sock:
        took, received = _trickle(sock, _slow_head(), every=2.5)
    assert received == b""
    assert HEAD_TIMEOUT - 1 <= took <= HEAD_TIMEOUT + 3.5, took


def test_the_deadline_restarts_after_each_response(api_port: int) -> None:
    with socket.create_connection(("127.0.0.1", api_port)) as sock:
        sock.settimeout(5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, "closed before the first response"
            first += chunk
        assert first.startswith(b"HTTP/1.1 200")
        # Keep-alive: a second request whose head trickles in is cut off 10 s after the
        # first response, not served after 20 lines x 1 s.
        took, received = _trickle(sock, _slow_head(), every=1.0)
    assert received == b""
    assert took <= HEAD_TIMEOUT + 2, took


def test_a_prompt_client_is_served_on_a_kept_alive_connection(api_port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}") as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(1)
