"""The Litestar application: ``create_app(settings, runtime=...)``.

Production: ``create_app()`` reads the settings from the environment and the lifespan opens
the adapters (:func:`class_api.bootstrap.open_services`). Tests and embedding services may pass
a ready :class:`Runtime`; it is used as it is (nothing else is opened for storage).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig

from adapters_otel import http_middleware
from class_api.auth import authorize
from class_api.body import MAX_BODY_BYTES, check_json_body
from class_api.bootstrap import Services, open_services
from class_api.docs_page import assets_router
from class_api.edge import EdgeMiddleware
from class_api.errors import EXCEPTION_HANDLERS, log_exception
from class_api.metrics import ServiceMetrics
from class_api.openapi import finalize_openapi, openapi_config
from class_api.routes import batches, changes, classes, courses, imports, internal, ops, students
from class_api.workers import background_workers
from class_core.runtime import Runtime
from class_runtime import Settings


async def before_request(request: Request[Any, Any, Any]) -> None:
    """Every route: the caller first (401, see :func:`class_api.auth.authorize`), then the
    body (413/415/400, :func:`class_api.body.check_json_body`), before the handler runs."""
    authorize(request)
    await check_json_body(request)


def _logging_config() -> LoggingConfig:
    # Litestar logs through the root logger configured by the process (class_api.logs); its
    # own handlers stay unused.
    return LoggingConfig(
        configure_root_logger=False,
        handlers={
            "console": {"class": "logging.NullHandler"},
            "queue_listener": {"class": "logging.NullHandler"},
        },
        loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}},
        log_exceptions="always",
        exception_logging_handler=log_exception,
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Litestar:
    """The HTTP API. ``runtime`` replaces the adapters that ``settings`` would select."""
    settings = settings or Settings.from_env()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings, runtime=runtime))
            app.state.services = services
            await stack.enter_async_context(background_workers(settings, services, metrics))
            yield

    def provide_runtime() -> Runtime:
        # No parameters: Litestar then validates nothing per request (a provider that takes the
        # app's ``state`` has it converted into its signature model on every call).
        services: Services = app.state.services
        return services.runtime

    app = Litestar(
        route_handlers=[
            classes.owner_routes,
            classes.roster_routes,
            students.routes,
            courses.routes,
            batches.routes,
            imports.routes,
            changes.routes,
            internal.routes,
            ops.healthz,
            ops.metrics,
            assets_router(),
        ],
        dependencies={"rt": Provide(provide_runtime, sync_to_thread=False)},
        before_request=before_request,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State({"settings": settings, "metrics": metrics}),
        openapi_config=openapi_config(),
        logging_config=_logging_config(),
        request_max_body_size=MAX_BODY_BYTES,
        middleware=http_middleware(),  # OpenTelemetry, only when configured (adapters_otel)
    )
    finalize_openapi(app.openapi_schema)
    # Outside the router so that 404/405 responses get a correlation id and a count too.
    app.asgi_handler = EdgeMiddleware(app.asgi_handler, metrics)
    return app
