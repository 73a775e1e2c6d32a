"""Dependency probes for the health endpoints of ``class-api`` and ``class-scheduler``: one
rule for what a probe's answer means, so both report a dependency the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("class_runtime.health")

PROBE_TIMEOUT_SECONDS = 2.0

Probe = Callable[[], Awaitable[bool]]
"""``True`` when the dependency answers; it must not raise for "down"."""


async def probe_status(probe: Probe | None) -> str:
    """``not_configured`` without a probe, ``ok`` when it answers in time, else
    ``unavailable`` (a probe that fails in any way reports its dependency as down)."""
    if probe is None:
        return "not_configured"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            return "ok" if await probe() else "unavailable"
    except Exception:
        log.warning("health probe failed", exc_info=True)
        return "unavailable"
