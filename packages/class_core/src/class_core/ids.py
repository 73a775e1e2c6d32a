"""Random (version 4) UUIDs in bulk, for paths that create thousands of ids at once.

``uuid.uuid4()`` makes one system call per id; a roster import needs two ids per student.
:func:`uuid4_many` reads the random bytes of a whole batch in one call (the same
``os.urandom`` source) and lets ``UUID`` set the version and variant bits.
"""

from __future__ import annotations

import os
from uuid import UUID


def uuid4_many(count: int) -> list[UUID]:
    """``count`` new random UUIDs (version 4), like ``[uuid.uuid4() for _ in range(count)]``."""
    raw = os.urandom(16 * count)
    return [UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * count, 16)]
