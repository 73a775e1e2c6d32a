"""Strict JSON request bodies.

Litestar converts bodies leniently (``"true"`` would pass as a boolean); the contract wants a
400 for any bad type. This ``before_request`` hook decodes the body strictly against the
handler's ``data`` type first (msgspec, unknown fields forbidden by the DTOs), checks the media
type, and turns msgspec's messages into ``errors[].field`` JSON paths. The handler then receives
the same values through its ``data`` parameter, which also documents the body in OpenAPI.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request

from class_api.errors import UnsupportedMediaTypeError
from class_core.errors import FieldError, ValidationError

MAX_BODY_BYTES = 1024 * 1024
_MESSAGE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(
    r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>[^`]*)`$"
)


def is_json_media_type(media_type: str) -> bool:
    media_type = media_type.lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def field_error(exc: msgspec.ValidationError) -> FieldError:
    """``Expected `str`, got `null` - at `$.person_name.last_name``` → a JSON-path field error."""
    found = _MESSAGE.match(str(exc))
    message = found.group("message") if found else str(exc)
    path = (found.group("path") or "") if found else ""
    path = path.removeprefix(".")
    if named := _NAMED_FIELD.match(message):
        path = f"{path}.{named.group('name')}" if path else named.group("name")
        message = "field required" if named.group("kind") == "missing required" else "unknown field"
    elif message.endswith("got `null`"):
        message = "must not be null"
    return FieldError(path, message)


def decode_body(body: bytes, target: Any) -> Any:
    """Decode ``body`` strictly into ``target`` or raise the core :class:`ValidationError`."""
    if not body.strip():
        raise ValidationError("A JSON request body is required")
    try:
        return msgspec.json.decode(body, type=target, strict=True)
    except msgspec.ValidationError as exc:
        error = field_error(exc)
        detail = f"{error.field}: {error.message}" if error.field else error.message
        raise ValidationError(f"Invalid request body ({detail})", [error]) from None
    except (msgspec.DecodeError, UnicodeDecodeError):  # invalid UTF-8 raises the latter
        raise ValidationError("The request body is not valid JSON") from None


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: 413 over 1 MiB (raised by Litestar while reading), 415 for a
    non-JSON body, 400 for a body that does not match the handler's ``data`` type."""
    data_field = request.route_handler.parsed_data_field
    if data_field is None:
        return
    body = await request.body()
    has_type = "content-type" in request.headers
    if (body or has_type) and not is_json_media_type(request.content_type[0]):
        raise UnsupportedMediaTypeError()
    decode_body(body, data_field.annotation)
