"""Operations: ``/healthz`` and ``/metrics`` (no authentication)."""

from __future__ import annotations

import asyncio
import logging

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from class_api.bootstrap import Services
from class_api.dto import HealthChecksOut, HealthOut
from class_api.metrics import CONTENT_TYPE, ServiceMetrics
from class_core.clock import SystemClock
from class_runtime.health import PROBE_TIMEOUT_SECONDS, probe_status

log = logging.getLogger("class_api.health")


async def health(services: Services) -> tuple[HealthOut, int]:
    names = ("database", "kafka", "redis")
    results = await asyncio.gather(*(probe_status(services.probes.get(n)) for n in names))
    checks = HealthChecksOut(*results)  # type: ignore[arg-type]
    if checks.database != "ok":
        return HealthOut("unhealthy", checks), 503
    if "unavailable" in (checks.kafka, checks.redis):
        return HealthOut("degraded", checks), 200
    return HealthOut("healthy", checks), 200


@get(
    "/healthz",
    responses={
        503: ResponseSpec(
            HealthOut, description="The database is unreachable.", generate_examples=False
        )
    },
    summary="Health",
    tags=["operations"],
)
async def healthz(state: State) -> Response[HealthOut]:
    """``healthy``; ``degraded`` (200) when a configured Kafka or Redis is down; ``unhealthy``
    (503) when the database is unreachable."""
    body, status = await health(state.services)
    return Response(body, status_code=status, headers={"Cache-Control": "no-store"})


@get(
    "/metrics",
    media_type=CONTENT_TYPE,
    summary="Prometheus metrics",
    tags=["operations"],
    response_description="Prometheus text exposition format.",
)
async def metrics(state: State) -> Response[bytes]:
    registry: ServiceMetrics = state.metrics
    services: Services = state.services
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            status = await services.outbox_status(SystemClock().now())
        if status is not None:
            registry.set_outbox_status(status)
    except Exception:  # stale outbox gauges are better than no metrics
        log.warning("outbox status unavailable for metrics", exc_info=True)
    return Response(registry.render(), media_type=CONTENT_TYPE)
