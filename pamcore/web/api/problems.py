"""RFC 9457 problem details: every API error is ``application/problem+json`` with a
message a person can act on, and never a traceback."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from pamcore.errors import PamError, ValidationError
from pamcore.presenters import plain

MEDIA_TYPE = "application/problem+json"

#: HTTP status of each :attr:`PamError.kind`; a kind not listed is a plain 400.
STATUS_BY_KIND = {
    "validation": 422,
    "not_found": 404,
    "denied": 403,
    "authentication": 401,
    "invalid_transition": 409,
    "action_failed": 409,
    "protocol": 409,
}

TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
}


def problem(status: int, detail: str, kind: str = "", field: str | None = None) -> Response:
    """One problem response; ``kind`` names the ``type`` (``urn:pamcore:problem:<kind>``)."""
    body: dict[str, Any] = {
        "type": f"urn:pamcore:problem:{kind}" if kind else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pamcore"'
    return response


def from_error(error: PamError) -> Response:
    status = STATUS_BY_KIND.get(error.kind, 400)
    field = error.field if isinstance(error, ValidationError) else None
    return problem(status, str(error), error.kind, field)


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON body with times as ISO 8601 UTC (``...Z``), the way the CLI's ``--json`` does."""
    return Response(json.dumps(plain(data)), status=status, mimetype="application/json")
