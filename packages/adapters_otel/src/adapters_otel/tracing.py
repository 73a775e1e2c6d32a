"""The OpenTelemetry side of :mod:`adapters_otel` (imported only when tracing is on)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import event

from class_core import telemetry
from class_core.startup import version

SCOPE = "class_management"
DEFAULT_SERVICE_NAME = "class-management-service"
_PROPAGATOR = TraceContextTextMapPropagator()
_SPAN_KEY = "_cms_otel_span"


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables


def install(
    process: str, environ: Mapping[str, str] | None, processor: SpanProcessor | None
) -> TracerProvider:
    env = os.environ if environ is None else environ
    resource = Resource.create(
        {
            "service.name": env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
            "service.version": version(),
            "process.executable.name": process,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor or BatchSpanProcessor(_exporter(env)))
    tracer = provider.get_tracer(SCOPE, version())

    def span_factory(
        name: str, attributes: Mapping[str, telemetry.Attribute], traceparent: str | None
    ) -> AbstractContextManager[object]:
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        kind = SpanKind.CONSUMER if traceparent is not None else SpanKind.INTERNAL
        return tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=dict(attributes)
        )

    def trace_engine(engine: object) -> None:
        _trace_statements(tracer, engine)

    telemetry.install(span_factory, trace_engine)
    return provider


def uninstall(provider: TracerProvider) -> None:
    telemetry.install(None)
    provider.shutdown()


def _trace_statements(tracer: trace.Tracer, engine: Any) -> None:
    """A client span per SQL statement: its verb as the name, the statement text (with bind
    placeholders, never the values) as ``db.statement``."""
    sync_engine = getattr(engine, "sync_engine", engine)
    system = sync_engine.dialect.name

    def before(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer.start_span(
            verb,
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:4096]},
        )
        setattr(context, _SPAN_KEY, span)

    def after(_conn: Any, _cursor: Any, _s: str, _p: Any, context: Any, _m: Any) -> None:
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            span.end()

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN_KEY, None) if context is not None else None
        if span is not None:
            span.set_status(
                Status(StatusCode.ERROR, type(exception_context.original_exception).__name__)
            )
            span.end()

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)


def litestar_middleware(provider: TracerProvider) -> Any:
    from litestar.plugins.opentelemetry import OpenTelemetryConfig

    return OpenTelemetryConfig(
        tracer_provider=provider,
        server_request_hook_handler=_without_query,
        exclude_spans=["receive", "send"],
    ).middleware


def _without_query(span: trace.Span, scope: dict[str, Any]) -> None:
    """Query strings may carry names or emails (``?q=``): keep them out of traces."""
    if not span.is_recording() or not scope.get("query_string"):
        return
    path = scope.get("path", "")
    span.set_attribute("http.target", path)
    span.set_attribute("url.path", path)
    span.set_attribute("url.query", "REDACTED")
    for name in ("http.url", "url.full"):
        span.set_attribute(name, "REDACTED")
