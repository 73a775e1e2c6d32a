"""A minimal host service that embeds the Class Management library against PostgreSQL.

It keeps the library's tables (``cms_*``, own Alembic version table) in its own database,
uses its own engine, calls the use cases, and delivers the outbox through its own event sink
instead of Kafka. Run it::

    python examples/embedded_service.py postgresql://postgres@127.0.0.1:5432/hostdb
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from adapters_messaging import Delivery, OutboxRelay
from adapters_sql import create_engine, upgrade
from class_core import OutboxMessage, RequestContext
from class_core.use_cases import (
    CreateClass,
    CreateStudent,
    PersonName,
    create_class,
    create_student,
)
from class_runtime import Settings, open_runtime


class HostBus:
    """The host's own event bus: here it just keeps what it is given."""

    def __init__(self) -> None:
        self.received: list[OutboxMessage] = []

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        self.received.extend(messages)
        return [Delivery.delivered() for _ in messages]


async def main(database_url: str) -> dict[str, object]:
    engine = create_engine(database_url)  # or wrap the host's existing AsyncEngine
    try:
        await upgrade(engine)  # our tables and our own version table, nothing of the host's
        # The apps' own factory, on the host's engine: runtime, outbox store, notifier.
        async with open_runtime(Settings.of(database_url=database_url), engine=engine) as opened:
            runtime = opened.runtime
            ctx = RequestContext(user_id="teacher-42")
            cls = await create_class(runtime, ctx, CreateClass("Svenska 1 — 9A", ["SV1"]))
            student = await create_student(
                runtime,
                ctx,
                CreateStudent(PersonName("Åsa", "Öberg"), "asa.oberg@example.org", [cls.id]),
            )
            bus = HostBus()
            relay = OutboxRelay(opened.outbox_store, bus)
            published = await relay.run_once()
        topics = [m.topic for m in bus.received]
        envelope = json.loads(bus.received[0].payload)
        return {
            "class_id": str(cls.id),
            "student_id": str(student.id),
            "published": published,
            "topics": topics,
            "first_event_type": envelope["event_type"],
        }
    finally:
        await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: embedded_service.py DATABASE_URL")
    print(json.dumps(asyncio.run(main(sys.argv[1])), indent=2))
