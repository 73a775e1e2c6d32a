"""A small closed-loop HTTP/1.1 keep-alive load generator for loopback servers.

Run as its own process (``python -m bench.loadgen '<json spec>'``) so that it does not share
an interpreter with the server under test; it prints one JSON object. Each of ``connections``
connections sends one request, reads the whole response, and sends the next, for ``warmup``
plus ``duration`` seconds; only exchanges that start after the warm-up and end inside the
window count. The number of requests is bounded by ``max_requests`` and the run by its time.
Responses must carry ``Content-Length`` (Litestar's do).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from typing import Any

import attrs


@attrs.frozen
class LoadSpec:
    port: int
    method: str
    path: str
    connections: int
    duration: float
    warmup: float = 1.0
    headers: dict[str, str] = attrs.field(factory=dict)
    # "{n}" is replaced by a per-request counter, "{run}" by a token unique to this run.
    body_template: str | None = None
    expect_status: int = 200
    max_requests: int = 2_000_000
    host: str = "127.0.0.1"


@attrs.frozen
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    first_error: str | None = None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _request_bytes(n: int, prefix: bytes, template: str | None) -> bytes:
    if template is None:
        return prefix + b"Content-Length: 0\r\n\r\n"
    body = template.replace("{n}", str(n)).encode()
    return prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by the load generator")
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_load(spec: LoadSpec) -> LoadResult:
    """Drive the server as described by ``spec``; never more than ``max_requests``."""
    headers = {"Host": f"{spec.host}:{spec.port}", **spec.headers}
    if spec.body_template is not None:
        headers.setdefault("Content-Type", "application/json")
    prefix = f"{spec.method} {spec.path} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers.items()
    )
    template = spec.body_template
    if template is not None:
        template = template.replace("{run}", secrets.token_hex(4))
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution
    started = clock()
    window_start = started + spec.warmup
    window_end = window_start + spec.duration
    latencies: list[float] = []
    counter = 0
    errors = 0
    first_error: str | None = None

    async def client() -> None:
        nonlocal counter, errors, first_error
        reader, writer = await asyncio.open_connection(spec.host, spec.port)
        try:
            while counter < spec.max_requests:
                counter += 1
                request = _request_bytes(counter, prefix, template)
                t0 = clock()
                if t0 >= window_end:
                    return
                writer.write(request)
                status, body = await _read_response(reader)
                t1 = clock()
                if status != spec.expect_status:
                    errors += 1
                    if first_error is None:
                        first_error = f"{status}: {body[:300].decode(errors='replace')}"
                    continue
                if t0 >= window_start and t1 <= window_end:
                    latencies.append(t1 - t0)
        finally:
            writer.close()

    async with asyncio.timeout(spec.warmup + spec.duration + 30):
        await asyncio.gather(*(client() for _ in range(spec.connections)))
    latencies.sort()
    seconds = spec.duration
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        rate=len(latencies) / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        first_error=first_error,
    )


async def run_in_process(spec: LoadSpec, python: str = sys.executable) -> LoadResult:
    """Run the load generator in a child process and return its result."""
    proc = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "bench.loadgen",
        json.dumps(attrs.asdict(spec)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": _project_root()},
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {err.decode(errors='replace')[-2000:]}")
    data: dict[str, Any] = json.loads(out)
    return LoadResult(**data)


def _project_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


def main(argv: list[str]) -> None:
    spec = LoadSpec(**json.loads(argv[0]))
    try:
        import uvloop

        result = uvloop.run(run_load(spec))
    except ImportError:
        result = asyncio.run(run_load(spec))
    print(json.dumps(attrs.asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
