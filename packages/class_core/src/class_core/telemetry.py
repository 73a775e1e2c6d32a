"""Optional tracing hooks (OpenTelemetry, see ``adapters_otel``), without any dependency.

The relay, the consumer and the SQL adapter mark their work with :func:`span` and announce
new engines with :func:`engine_created`. Nothing happens unless a tracer was installed with
:func:`install` (``adapters_otel.configure_telemetry`` does that when the ``otel`` extra is
installed and ``OTEL_*`` variables configure an exporter): by default :func:`span` is a
no-op context manager and no tracing library is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Attribute = str | int | float | bool


class SpanFactory(Protocol):
    """Opens a span named ``name`` around the work inside; ``traceparent`` (W3C) makes it a
    child of that remote context instead of the current span."""

    def __call__(
        self, name: str, attributes: Mapping[str, Attribute], traceparent: str | None
    ) -> AbstractContextManager[object]: ...


# What :func:`install` set (process-wide registration, like ``logging``'s handlers: not a cache).
_factory: SpanFactory | None = None
_engine_hook: Callable[[object], None] | None = None


def install(
    factory: SpanFactory | None, engine_hook: Callable[[object], None] | None = None
) -> None:
    """Route :func:`span` to ``factory`` and call ``engine_hook`` for every engine created
    from now on (``None``: back to no tracing)."""
    global _factory, _engine_hook
    _factory = factory
    _engine_hook = engine_hook


def active() -> bool:
    return _factory is not None


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Attribute] | None = None,
    *,
    traceparent: str | None = None,
) -> Iterator[None]:
    """A span around the work inside when tracing is installed; else nothing."""
    factory = _factory
    if factory is None:
        yield
        return
    with factory(name, attributes or {}, traceparent):
        yield


def engine_created(engine: object) -> None:
    """Called by the SQL adapter for each new engine (to trace its statements)."""
    hook = _engine_hook
    if hook is not None:
        hook(engine)
