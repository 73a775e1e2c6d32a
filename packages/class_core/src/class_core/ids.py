"""New ids: random (version 4) UUIDs in bulk, and time-ordered (version 7) ones for classes.

``uuid.uuid4()`` makes one system call per id; a roster import needs two ids per student.
:func:`uuid4_many` reads the random bytes of a whole batch in one call (the same
``os.urandom`` source), sets the version and variant bits and builds each id with
``UUID(int=...)``.

:func:`uuid7` (RFC 9562; ``uuid.uuid7`` only from Python 3.14) starts with the creation time:
a class's memberships are keyed ``(class_id, student_id)``, so the classes an import creates
together have their members side by side at the right edge of that index instead of in a
thousand random places of it (docs/performance.md, "The sweep's look-up, time-ordered class
ids, and timing in turns", point 2).
"""

from __future__ import annotations

import os
from datetime import datetime
from uuid import UUID

# RFC 4122 version 4: the version nibble is 0100, the variant bits are 10.
_KEEP = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def uuid4_many(count: int) -> list[UUID]:
    """``count`` new random UUIDs (version 4), like ``[uuid.uuid4() for _ in range(count)]``."""
    raw = os.urandom(16 * count)
    return [
        UUID(int=(int.from_bytes(raw[i : i + 16], "big") & _KEEP) | _SET)
        for i in range(0, 16 * count, 16)
    ]


# RFC 9562 version 7: 48 bits of Unix time in milliseconds, the version nibble 0111, 12 random
# bits, the variant bits 10, 62 random bits.
_V7_VERSION = 0x7 << 76
_V7_VARIANT = 0b10 << 62


def uuid7(at: datetime) -> UUID:
    """A new time-ordered UUID (version 7) for an object created at ``at`` (timezone-aware):
    ids of objects created later sort after it (those of the same millisecond in any order);
    74 random bits, as unguessable as an id needs to be."""
    millis = int(at.timestamp() * 1000)
    if not 0 <= millis < 1 << 48:
        raise ValueError(f"a version-7 UUID cannot hold the time {at.isoformat()}")
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    rand_a, rand_b = (rand >> 62) & 0xFFF, rand & ((1 << 62) - 1)
    return UUID(int=(millis << 80) | _V7_VERSION | (rand_a << 64) | _V7_VARIANT | rand_b)
