"""The OpenAPI 3.1 description of ``/api/v1``, written as data and served at
``/api/v1/openapi.json``; tests run schemathesis against the live app so it cannot drift."""

from __future__ import annotations

from typing import Any

from flask import Response

from pamcore.lifecycle import Status
from pamcore.services.access import PURPOSES
from pamcore.services.common import MAX_ID
from pamcore.services.paging import DEFAULT_LIMIT, MAX_LIMIT
from pamcore.services.sessions import VIEWS
from pamcore.web.api import bp
from pamcore.web.api.problems import MEDIA_TYPE, json_response

NAME = {"type": "string", "minLength": 1}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
MAYBE_TEXT = {"type": ["string", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "A problem (RFC 9457)",
            "content": {MEDIA_TYPE: {"schema": _ref("Problem")}},
        }
        for status in statuses
    }


def _ok(schema: dict[str, Any], description: str = "OK", status: int = 200) -> dict[str, Any]:
    return {
        str(status): {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    """A list operation's answer: one page as an array, the next page's address in Link."""
    return {
        "200": {
            "description": "One page, newest first",
            "headers": {
                "Link": {
                    "description": "The next page's address, '<...>; rel=\"next\"' (RFC "
                    "8288): this query with the next cursor. Absent on the last page.",
                    "schema": {"type": "string"},
                }
            },
            "content": {"application/json": {"schema": {"type": "array", "items": item}}},
        }
    }


#: Query parameters of every list operation (cursor paging, :mod:`pamcore.services.paging`).
PAGING = [
    {
        "name": "limit",
        "in": "query",
        "description": f"Rows per page (default {DEFAULT_LIMIT})",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "Opaque: where the previous page's Link 'next' continues. Omit for "
        "the first page; a cursor is good for the list (and view) that gave it.",
        "schema": {"type": "string"},
    },
]

SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}

#: Errors any authenticated operation may answer with.
COMMON = (400, 401)


def _action(summary: str, body: dict[str, Any] | None, errors: tuple[int, ...]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [SESSION_ID],
        "responses": {**_ok(_ref("SessionDetail")), **_problems(*COMMON, *errors)},
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


SCHEMAS: dict[str, Any] = {
    "Problem": _obj(
        {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string"},
        },
        ["type", "title", "status", "detail"],
    ),
    "SessionRow": _obj(
        {
            "id": {"type": "integer"},
            "activity": {"type": "string"},
            "resources": {"type": "array", "items": {"type": "string"}},
            "requester": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in Status]},
            "status_label": {"type": "string"},
            "start": TIME,
            "ends_at": MAYBE_TIME,
            "remaining": MAYBE_TEXT,
        }
    ),
    "Approval": _obj(
        {
            "tier": {"type": "integer"},
            "approver": {"type": "string"},
            "decision": {"type": "string", "enum": ["approved", "denied"]},
            "comment": {"type": "string"},
            "at": TIME,
            "via_escalation": {"type": "boolean"},
        }
    ),
    "SessionDetail": {
        "allOf": [
            _ref("SessionRow"),
            _obj(
                {
                    "profile": {"type": "string"},
                    "notes": {"type": "string"},
                    "ticket": {"type": "string"},
                    "scheduled_start": TIME,
                    "login_account": MAYBE_TEXT,
                    "extensions_used": {"type": "integer"},
                    "extensions_left": {"type": "integer"},
                    "current_tier": {"type": ["integer", "null"]},
                    "waiting_for": MAYBE_TEXT,
                    "approvals": {"type": "array", "items": _ref("Approval")},
                    "outcome": MAYBE_TEXT,
                    "finished_at": MAYBE_TIME,
                }
            ),
        ]
    },
    "SessionRequest": _obj(
        {
            "activity": {**NAME, "description": "Activity name (case-insensitive)"},
            "resources": {"type": "array", "items": NAME, "minItems": 1},
            "notes": {"type": "string"},
            "ticket": {"type": "string"},
            "start": {**MAYBE_TIME, "description": "Omit or null for now"},
        },
        ["activity", "resources"],
    ),
    "Comment": _obj({"comment": {"type": "string"}}, []),
    "Reason": _obj({"reason": {"type": "string"}}, []),
    "RevealRequest": _obj({"purpose": {"type": "string", "enum": list(PURPOSES)}}, []),
    "Revealed": _obj(
        {
            "username": {"type": "string"},
            "password": {"type": "string"},
            "seconds": {"type": "integer"},
            "expires_at": TIME,
        }
    ),
    "Activity": _obj(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "kind": {"type": "string", "enum": ["resource", "credential"]},
        }
    ),
    "Resource": _obj(
        {
            "name": {"type": "string"},
            "address": {"type": "string"},
            "platform": {"type": "string"},
            "description": {"type": "string"},
            "protocols": {
                "type": "array",
                "items": _obj({"name": {"type": "string"}, "port": {"type": "integer"}}),
            },
        }
    ),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pamcore REST API",
        "version": "1",
        "description": "Activity sessions for scripts: the same rules as the dashboard and "
        "the CLI. Authenticate with 'Authorization: Bearer <token>' (pamcore users token "
        "create) or the dashboard's session cookie plus 'X-CSRFToken' on changes.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": {
        "/sessions": {
            "get": {
                "summary": "Sessions you may see (all of them for admins and auditors), "
                "newest request first, a page at a time",
                "parameters": [
                    {"name": "view", "in": "query", "schema": {"enum": list(VIEWS)}},
                    *PAGING,
                ],
                "responses": {**_page(_ref("SessionRow")), **_problems(*COMMON, 422)},
            },
            "post": {
                "summary": "Request a session (it may wait for approval)",
                "requestBody": _body(_ref("SessionRequest")),
                "responses": {
                    **_ok(_ref("SessionDetail"), "Created", 201),
                    **_problems(*COMMON, 403, 422),
                },
            },
        },
        "/sessions/{session_id}": {
            "get": {
                "summary": "One session with its approvals",
                "parameters": [SESSION_ID],
                "responses": {**_ok(_ref("SessionDetail")), **_problems(*COMMON, 404)},
            }
        },
        "/sessions/{session_id}/approve": {
            "post": _action(
                "Approve at the current tier", _body(_ref("Comment")), (403, 404, 409, 422)
            )
        },
        "/sessions/{session_id}/deny": {
            "post": _action(
                "Deny; the requester sees the comment", _body(_ref("Comment")), (403, 404, 409, 422)
            )
        },
        "/sessions/{session_id}/extend": {
            "post": _action("Extend by the profile's increment", None, (403, 404, 409))
        },
        "/sessions/{session_id}/cancel": {
            "post": _action(
                "Cancel before or during the session", _body(_ref("Reason")), (403, 404, 409, 422)
            )
        },
        "/sessions/{session_id}/end": {
            "post": _action("End an Available or Active session now", None, (403, 404, 409))
        },
        "/sessions/{session_id}/password": {
            "post": {
                "summary": "Reveal the session's password for its view window (audited)",
                "parameters": [SESSION_ID],
                "requestBody": _body(_ref("RevealRequest")),
                "responses": {
                    **_ok(_ref("Revealed")),
                    **_problems(*COMMON, 403, 404, 409, 422),
                },
            }
        },
        "/activities": {
            "get": {
                "summary": "Activities, by the names POST /sessions takes, a page at a time",
                "parameters": PAGING,
                "responses": {**_page(_ref("Activity")), **_problems(*COMMON, 422)},
            }
        },
        "/resources": {
            "get": {
                "summary": "Resources, by the names POST /sessions takes, a page at a time",
                "parameters": PAGING,
                "responses": {**_page(_ref("Resource")), **_problems(*COMMON, 422)},
            }
        },
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "pamcore_session"},
        },
    },
}


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(DOCUMENT)
