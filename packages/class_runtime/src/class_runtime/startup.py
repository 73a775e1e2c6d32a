"""The one start-up line of a process (contract §12).

The line names the mode (database kind), the database without its password, whether the
workers run in this process, whether Kafka and Redis are configured and, for the API, where its
docs page is. It never carries a secret: the password of the database URL is dropped, and the
Kafka SASL settings and the internal API key are not mentioned.
"""

from __future__ import annotations

from typing import Any

from class_core.startup import redacted_url, version
from class_runtime.settings import Settings


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
