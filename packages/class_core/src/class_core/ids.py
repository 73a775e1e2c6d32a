"""Random (version 4) UUIDs in bulk, for paths that create thousands of ids at once.

``uuid.uuid4()`` costs a system call and the general ``UUID.__init__`` (argument checks for
six input forms) per id; a roster import needs two ids per student. :func:`uuid4_many` reads
the random bytes of a whole batch in one call and builds each ``UUID`` from its integer, the
way ``UUID.__setstate__`` (unpickling) does. The ids are ordinary ``uuid.UUID`` objects, as
random as ``uuid4()``'s (the same ``os.urandom`` source), with the same version and variant
bits.
"""

from __future__ import annotations

import os
from uuid import UUID, SafeUUID

# RFC 4122 version 4: the version nibble is 0100, the variant bits are 10.
_KEEP = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)
_UNKNOWN = SafeUUID.unknown


def uuid4_many(count: int) -> list[UUID]:
    """``count`` new random UUIDs (version 4), like ``[uuid.uuid4() for _ in range(count)]``."""
    raw = os.urandom(16 * count)
    new, setattr_ = object.__new__, object.__setattr__
    ids: list[UUID] = []
    append = ids.append
    for start in range(0, 16 * count, 16):
        value = (int.from_bytes(raw[start : start + 16], "big") & _KEEP) | _SET
        # What UUID(int=value) ends with, without re-checking a value that is in range.
        uid = new(UUID)
        setattr_(uid, "int", value)
        setattr_(uid, "is_safe", _UNKNOWN)
        append(uid)
    return ids
