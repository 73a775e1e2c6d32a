"""Property-based conformance: schemathesis drives every operation of the app's own OpenAPI
document (in-process, over ASGI) as two owners and as an internal service, and checks that
nothing answers 5xx and that every response (status, content type, headers, body) is the one
the document promises."""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from class_api.app import create_app
from tests.e2e.conftest import INTERNAL, A, B, settings_for

APP = create_app(settings_for())  # in-memory adapters opened by the app's own lifespan
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", APP)
CHECKS: list[Any] = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]
_CALLERS = itertools.cycle([A, B])
_ROSTER_CALLERS = itertools.cycle([A, INTERNAL, B])


def _auth(path: str) -> dict[str, str]:
    if path.startswith("/internal/"):
        return INTERNAL
    if path.endswith("/roster"):
        return next(_ROSTER_CALLERS)
    return next(_CALLERS)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi(case: schemathesis.Case[Any]) -> None:
    headers: dict[str, Any] = {**dict(case.headers or {}), **_auth(case.path)}
    case.call_and_validate(headers=headers, checks=CHECKS)
