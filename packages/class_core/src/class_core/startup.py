"""What a process says about itself: ``--version`` and the one start-up line (contract §12).

The start-up line names the mode (database kind), the database without its password, whether
the workers run in this process, whether Kafka and Redis are configured and, for the API, where
its docs page is. It never carries a secret: the password of the database URL is dropped, and
the Kafka SASL settings and the internal API key are not mentioned.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from class_core.settings import Settings

DISTRIBUTION = "class-management"


def version() -> str:
    """The installed version of the ``class-management`` distribution."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def version_line() -> str:
    """What ``--version`` prints: ``class-management <version>``."""
    return f"{DISTRIBUTION} {version()}"


def redacted_url(url: str) -> str:
    """``url`` without its password (and without a query string, which may carry one)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.netloc:  # sqlite+aiosqlite:///path: no credentials to hide
        return url.split("?", 1)[0]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def docs_url(host: str, port: int) -> str:
    """The docs page of an API listening on ``host:port`` (a wildcard host → ``localhost``)."""
    shown = "localhost" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/schema"


def startup_summary(
    process: str,
    settings: Settings,
    *,
    workers: str,
    docs: str | None = None,
    **more: object,
) -> tuple[str, dict[str, Any]]:
    """The start-up line of ``process`` as (message, fields), to be logged as
    ``log.info(message, extra=fields)``: the console format appends the fields as
    ``key=value``, the JSON format as keys. ``workers`` says which background work runs in
    this process (e.g. ``in-process``, ``off``, ``sweep,relay,consumer``)."""
    kind = settings.database_kind
    fields: dict[str, Any] = {
        "version": version(),
        "mode": kind,
        "database": "in-memory" if kind == "memory" else redacted_url(settings.database_url),
        "workers": workers,
        "kafka": "configured"
        if settings.kafka_bootstrap_servers
        else "not configured (events wait in the outbox)",
        "redis": "configured" if settings.redis_url else "not configured",
    }
    if docs is not None:
        fields["docs"] = docs
    fields.update(more)
    return f"{process} starting", fields
