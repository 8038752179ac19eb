"""The API under schemathesis, as an outside fuzzer runs it with a bearer token: every
check (``--checks all``), schema-valid and schema-invalid input for every operation, then
the stateful phase (request a session, follow the document's links and act on it). Issue
11 item 8: ids past 64 bits were 500s, undeclared methods HTML, valid requests refused."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES

from pamcore.core import Pamcore
from tests.web.roles import api_token, bearer, build_app

EXAMPLES = 10  # per operation and generation mode; 200 found nothing more, once
STATEFUL = settings(
    max_examples=15,
    stateful_step_count=6,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
#: Inputs whose validity the schema cannot know: names of what exists, a start before now,
#: a cursor of another list, a ticket the profile asks for. A schema-valid request may
#: still be a 422 for these, and only for these.
UNKNOWABLE = {"activity", "resources", "start", "cursor", "ticket"}
#: Bodies that name what the test world has, so that the stateful phase creates sessions.
REAL_REQUESTS = (
    {"activity": "Check out root", "resources": ["db01"]},
    {"activity": "Linux Admin", "resources": ["web01"], "ticket": "CHG1"},
)


def only_unknowable_input_is_unprocessable(ctx: Any, response: Any, case: Any) -> None:
    """Valid data is accepted, except a 422 naming an input only the server can judge."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 422:
        field = response.json().get("field")
        assert field in UNKNOWABLE, f"schema-valid input refused: {response.text}"


def all_checks() -> list[Any]:
    """Every check schemathesis has (the CLI's ``--checks all``), and ours."""
    load_all_checks()
    builtin = [check for check in CHECKS.get_all() if not is_check_class(check)]
    return [*builtin, only_unknowable_input_is_unprocessable]


def load_schema(app: Any) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
                }
            }
        }
    )
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)


@pytest.mark.slow
@pytest.mark.usefixtures("world")
def test_api_under_the_fuzzer(core: Pamcore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    app = build_app(core)
    schema = load_schema(app)
    headers = bearer(api_token(core, "alice"))
    checks = all_checks()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def conforms(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=checks)

            conforms()

    class Stateful(schema.as_state_machine()):  # type: ignore[misc]
        """Each scenario starts from the same state (what it created is canceled after), so
        hypothesis sees the same answers when it replays one."""

        created_in_all = 0

        def setup(self) -> None:
            self.requests, self.created = 0, []

        def before_call(self, case: schemathesis.Case) -> None:
            """Every other request names what exists, so later steps act on a session."""
            if case.operation.label == "POST /sessions":
                if self.requests % 2 == 0:
                    case.body = dict(REAL_REQUESTS[self.requests // 2 % len(REAL_REQUESTS)])
                self.requests += 1

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            if case.operation.label == "POST /sessions" and response.status_code == 201:
                self.created.append(response.json()["id"])
                Stateful.created_in_all += 1

        def teardown(self) -> None:
            client = app.test_client()
            for session_id in self.created:
                client.post(f"/api/v1/sessions/{session_id}/cancel", json={}, headers=headers)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=checks,
                headers=headers,
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    Stateful.run(settings=STATEFUL)
    assert Stateful.created_in_all > 0
    assert "unexpected" not in caplog.text
