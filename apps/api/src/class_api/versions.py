"""Versions on the wire (contract §8): ``ETag: "<version>"`` on single-object responses and
``If-Match`` on writes. The ETag guards writes only: no conditional GET, no 304."""

from __future__ import annotations

from typing import Annotated, TypeVar

from litestar import Response
from litestar.datastructures import ResponseHeader
from litestar.params import HeaderParameter

from class_core.versions import IfMatch

T = TypeVar("T")

IfMatchHeader = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description=(
            "Apply the change only to these versions: `*` (any) or quoted versions such as "
            '`"3"` or `"3", "4"`. Weak tags never match; other syntax is a 400; no listed '
            "version equal to the stored one is a 412 and nothing changes."
        ),
    ),
]
"""The ``If-Match`` request header, as given (parsed by :func:`if_match`)."""

ETAG_HEADERS = [
    ResponseHeader(
        name="ETag",
        documentation_only=True,
        required=True,
        description='The object\'s version as a strong entity tag, e.g. `"3"`.',
    )
]


def if_match(header: str | None) -> IfMatch | None:
    """The parsed header; a syntax error is judged by the use case once the object is found."""
    return IfMatch.parse(header)


def with_etag(content: T, version: int, status_code: int = 200) -> Response[T]:
    """``content`` with ``ETag: "<version>"``."""
    return Response(content, status_code=status_code, headers={"ETag": f'"{version}"'})
