"""In-memory adapters: first-class fakes for tests and for ``USE_MOCK_REPOSITORY``.

They keep the same promises as the SQL adapter (the contract suite in ``tests/integration``
runs against both): transactions roll back, emails are unique per owner, one placeholder per
class, owner scoping, orders and filters.
"""

from class_core.testing.clock import FixedClock
from class_core.testing.memory import (
    InMemoryOutboxStore,
    InMemoryStore,
    InMemoryUnitOfWork,
    RecordingNotifier,
    memory_runtime,
)

__all__ = [
    "FixedClock",
    "InMemoryOutboxStore",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "RecordingNotifier",
    "memory_runtime",
]
