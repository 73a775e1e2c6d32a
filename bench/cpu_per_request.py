"""CPU per request: ``python -m bench.cpu_per_request [get,post,batches] [--seconds N]``.

Runs the HTTP benchmark's load (:mod:`bench.http_bench`: 16 connections creating students in
one class, 8 reading a class of 30, 8 reading the teacher's queue of 500 pending batches:
``class-api`` only) against ``class-api`` and the bare reference, one after
the other on a fresh database, and reports for each the throughput, P50/P95 and the CPU time
per request of the server process and of all PostgreSQL processes (from ``/proc``, Linux
only). Unlike a throughput ratio, CPU per request hardly moves when other work shares the
machine, so it is the figure to compare changes with on a busy box (docs/performance.md).
The PostgreSQL figure includes whatever else the database server does meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from uuid import UUID

from bench import http_bench
from bench.loadgen import LoadSpec, run_in_process
from bench.services import free_port, fresh_database, wait_for_port


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds of every process named ``postgres`` so far."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            total += process_cpu(int(entry))
        except OSError:  # the process ended meanwhile
            continue
    return total


async def _measure(name: str, pid: int, spec: LoadSpec) -> str:
    server0, pg0, t0 = process_cpu(pid), postgres_cpu(), time.monotonic()
    result = await run_in_process(spec)
    server1, pg1, t1 = process_cpu(pid), postgres_cpu(), time.monotonic()
    requests = max(1.0, result.rate * (t1 - t0))  # warm-up included: the CPU window is whole
    return (
        f"{name}: {result.rate:,.0f}/s, P50 {result.p50_ms:.1f} ms, P95 {result.p95_ms:.1f} ms"
        f" | server {100 * (server1 - server0) / (t1 - t0):.0f} % CPU,"
        f" {1e6 * (server1 - server0) / requests:,.0f} µs/request"
        f" | PostgreSQL {1e6 * (pg1 - pg0) / requests:,.0f} µs/request"
    )


async def main(routes: list[str], seconds: float) -> None:
    async with fresh_database() as url:
        api_class, ref_class, read_class = await http_bench._seed(url)
        env = http_bench._env(url)
        servers: list[tuple[str, Callable[[int], list[str]], UUID]] = [
            ("class-api", http_bench.api_argv, api_class),
            ("bare", http_bench.reference_argv, ref_class),
        ]
        for name, argv, post_class in servers:
            port = free_port()
            proc = subprocess.Popen(
                argv(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                wait_for_port(port, 60.0, proc)
                for route in routes:
                    if route == "post":
                        tag = f"{name}-{time.time_ns()}"
                        spec = http_bench.post_spec(port, post_class, tag, seconds, 1.0)
                    elif route == "batches":
                        if name != "class-api":
                            continue  # the bare reference has no queue
                        spec = http_bench.queue_spec(port, seconds, 1.0)
                    else:
                        spec = http_bench.get_spec(port, read_class, seconds, 1.0)
                    print(await _measure(f"{name} {route.upper()}", proc.pid, spec), flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_per_request", description=__doc__)
    parser.add_argument(
        "routes", nargs="?", default="get,post", help="a comma-separated list of get, post, batches"
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    args = parser.parse_args(argv)
    routes = [r.strip().lower() for r in args.routes.split(",") if r.strip()]
    if not routes or any(r not in ("get", "post", "batches") for r in routes):
        parser.error("routes: a comma-separated list of get, post, batches")
    asyncio.run(main(routes, args.seconds))


if __name__ == "__main__":
    cli(sys.argv[1:])
