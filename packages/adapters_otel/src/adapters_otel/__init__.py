"""Optional OpenTelemetry tracing for the service (the ``otel`` extra).

:func:`configure_telemetry` does nothing — and imports nothing of OpenTelemetry — unless the
extra is installed *and* the standard ``OTEL_*`` variables ask for traces
(``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` turns it off). When it
does, it traces HTTP requests (:func:`http_middleware`, Litestar's OpenTelemetry middleware),
SQL statements (every engine made by ``adapters_sql.create_engine`` from then on), outbox
relay rounds and consumed messages (``class_core.telemetry`` spans).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from class_core.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None


EXPORTERS = ("otlp", "console", "none")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces; :class:`ConfigurationError` for an
    exporter this service does not offer."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter not in EXPORTERS:
        raise ConfigurationError("OTEL_TRACES_EXPORTER", f"must be one of {', '.join(EXPORTERS)}")
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def installed() -> bool:
    """Whether the ``otel`` extra is installed (checked without importing it)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("opentelemetry", "opentelemetry.sdk", "opentelemetry.instrumentation.asgi")
    )


def configure_telemetry(
    process: str,
    environ: Mapping[str, str] | None = None,
    *,
    processor: SpanProcessor | None = None,
) -> TracerProvider | None:
    """Turn tracing on for this process when the extra is installed and configured (or when
    a ``processor`` is given, e.g. tests with the SDK's in-memory exporter); returns the
    tracer provider, or ``None`` when nothing was done."""
    global _provider
    if processor is None and not wanted(environ):
        return None
    if not installed():
        log.warning("OTEL_* variables are set but the otel extra is not installed: no traces")
        return None
    from adapters_otel import tracing

    _provider = tracing.install(process, environ, processor)
    return _provider


def http_middleware() -> list[Any]:
    """Litestar middleware that traces each request (a server span named by the route
    template, a child of an incoming ``traceparent``); ``[]`` when tracing is off."""
    if _provider is None:
        return []
    from adapters_otel import tracing

    return [tracing.litestar_middleware(_provider)]


def shutdown_telemetry() -> None:
    """Flush and stop tracing (tests; processes also flush at exit)."""
    global _provider
    if _provider is None:
        return
    from adapters_otel import tracing

    tracing.uninstall(_provider)
    _provider = None
