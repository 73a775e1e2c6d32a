"""Versions and ``If-Match`` preconditions (contract §8).

Every class and student has a ``version``: 1 when created, +1 with every committed change. A
write may name the versions it expects (``If-Match``): ``*`` (any version, the object must
exist) or a comma-separated list of quoted versions. Weak tags (``W/"3"``) are valid syntax but
never match (a strong comparison, RFC 9110 §13.1.1); anything else is a validation error.

The header is parsed at the edge into an :class:`IfMatch` that remembers a syntax error
instead of raising it, because the contract orders the checks: the object must exist (404)
before the header's syntax is judged (400), and the version is compared (412) after that.
"""

from __future__ import annotations

import re

from attrs import frozen

from class_core.errors import PreconditionFailedError, ValidationError

# One entity tag (RFC 9110 §8.8.3): an optional weak prefix and a quoted opaque tag.
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\U0010ffff]*)"\s*')


@frozen
class IfMatch:
    """A parsed ``If-Match`` header: ``any_version`` (``*``), or the strong versions listed."""

    any_version: bool = False
    versions: frozenset[int] = frozenset()
    syntax_error: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> IfMatch | None:
        """``None`` for no header (any version will do)."""
        if header is None:
            return None
        text = header.strip()
        if text == "*":
            return cls(any_version=True)
        versions: set[int] = set()
        position, tags = 0, 0
        while position < len(text):
            found = _TAG.match(text, position)
            if found is None:
                return cls(syntax_error="must be * or a comma-separated list of quoted versions")
            tags += 1
            weak, opaque = found.group(1), found.group(2)
            if weak is None and opaque.isascii() and opaque.isdigit() and len(opaque) <= 18:
                versions.add(int(opaque))
            position = found.end()
            if position < len(text):
                if text[position] != ",":
                    return cls(
                        syntax_error="must be * or a comma-separated list of quoted versions"
                    )
                position += 1
                if position >= len(text):
                    return cls(syntax_error="ends with a comma")
        if tags == 0:
            return cls(syntax_error="must not be empty")
        return cls(versions=frozenset(versions))

    def check(self, version: int) -> None:
        """Judge the header against the stored ``version`` of an object that exists: a syntax
        error is a :class:`ValidationError` (400), a mismatch a
        :class:`PreconditionFailedError` (412)."""
        if self.syntax_error is not None:
            raise ValidationError.for_field("If-Match", self.syntax_error)
        if not self.any_version and version not in self.versions:
            raise PreconditionFailedError(
                f"The stored version is {version}; If-Match names none equal to it"
            )


def check_if_match(if_match: IfMatch | None, version: int) -> None:
    """:meth:`IfMatch.check` when a header was given; no header means any version."""
    if if_match is not None:
        if_match.check(version)
