"""The OpenAPI document against the running app (schemathesis): every operation's answers
conform to it, and no generated input makes the API fail with a 5xx."""

from __future__ import annotations

import logging

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pamcore.core import Pamcore
from tests.conftest import World
from tests.web.roles import api_token, bearer, build_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 12


def test_api_conforms_to_its_openapi_document(
    core: Pamcore, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", build_app(core))
    headers = bearer(api_token(core, "alice"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        conforms()
    assert "unexpected error" not in caplog.text
