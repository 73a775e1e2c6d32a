"""Random (version 4) UUIDs in bulk, for paths that create thousands of ids at once.

``uuid.uuid4()`` makes one system call per id; a roster import needs two ids per student.
:func:`uuid4_many` reads the random bytes of a whole batch in one call (the same
``os.urandom`` source), sets the version and variant bits and builds each id with
``UUID(int=...)``.
"""

from __future__ import annotations

import os
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
