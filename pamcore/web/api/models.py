"""The typed shapes of ``/api/v1`` (pydantic): what each operation takes in its path, query
and body, and what it answers. Requests are validated with these very classes and the
OpenAPI document is generated from them, so the two cannot disagree. Bounds come from the
services' own constants; rules that need the database or the clock stay in the services."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from pamcore.lifecycle import Status
from pamcore.services.access import PURPOSES
from pamcore.services.approvals import MAX_COMMENT
from pamcore.services.common import MAX_ID
from pamcore.services.paging import LIMIT_RULE, MAX_LIMIT, WRONG_CURSOR
from pamcore.services.sessions import MAX_NOTES, MAX_REASON, MAX_RESOURCES, MAX_TICKET, VIEWS

#: Free text never holds NUL: no person types it, and PostgreSQL cannot store it.
NO_NUL = r"^[^\x00]*$"
MAX_NAME = 200


#: What a wrong parameter is told, in the services' words (pydantic's would name types).
RULES = {
    "limit": LIMIT_RULE,
    "cursor": WRONG_CURSOR,
    "session_id": f"a session id: a whole number 1-{MAX_ID}",
}


def _digits(value: Any) -> Any:
    """A number in a path or query is ASCII digits only (no sign, space, ``_`` or ``.0``,
    which pydantic's lax parsing would take); anything else fails as not an integer."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("a whole number (digits only)")
    return value


def _text(limit: int, description: str) -> Any:
    return Field("", max_length=limit, pattern=NO_NUL, description=description)


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_digits)]


class Request(BaseModel):
    """A request body: JSON types as they are (no ``"1"`` for 1), and an unknown field is an
    error naming it rather than silently ignored (a mistyped ``tickt`` must not pass)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class SessionPath(BaseModel):
    session_id: Id


class Paging(BaseModel):
    """Cursor paging of every list (:mod:`pamcore.services.paging`)."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_digits)] | None = Field(
        None, description="Rows per page (default 200)"
    )
    cursor: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Opaque: where the previous page's Link 'next' continues. Omit for the "
        "first page; a cursor is good for the list (and view) that gave it.",
    )


class SessionsQuery(Paging):
    view: Literal[tuple(VIEWS)] = Field("active", description="Which sessions")  # type: ignore[valid-type]


class SessionRequest(Request):
    activity: Name = Field(description="Activity name (case-insensitive)")
    resources: list[Name] = Field(min_length=1, max_length=MAX_RESOURCES)
    notes: str = _text(MAX_NOTES, "Why, for the approvers and the audit log")
    ticket: str = _text(MAX_TICKET, "Change or incident number (some profiles need one)")
    start: AwareDatetime | None = Field(
        None, description="RFC 3339 with a zone; omit or null for now"
    )


class Comment(Request):
    comment: str = _text(MAX_COMMENT, "Shown to the requester")


class Reason(Request):
    reason: str = _text(MAX_REASON, "Why it was canceled")


class RevealRequest(Request):
    purpose: Literal[PURPOSES] = "view"  # type: ignore[valid-type]


class Problem(BaseModel):
    """RFC 9457 problem details: every error."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = Field(None, description="The input to fix (422)")


class SessionRow(BaseModel):
    id: int
    activity: str
    resources: list[str]
    requester: str
    status: Status
    status_label: str
    start: dt.datetime
    ends_at: dt.datetime | None
    remaining: str | None


class Approval(BaseModel):
    tier: int
    approver: str
    decision: Literal["approved", "denied"]
    comment: str
    at: dt.datetime
    via_escalation: bool


class SessionDetail(SessionRow):
    profile: str
    notes: str
    ticket: str
    scheduled_start: dt.datetime
    login_account: str | None
    extensions_used: int
    extensions_left: int
    current_tier: int | None
    waiting_for: str | None
    approvals: list[Approval]
    outcome: str | None
    finished_at: dt.datetime | None


class Revealed(BaseModel):
    username: str
    password: str
    seconds: int
    expires_at: dt.datetime


class Activity(BaseModel):
    name: str
    description: str
    kind: Literal["resource", "credential"]


class Protocol(BaseModel):
    name: str
    port: int


class Resource(BaseModel):
    name: str
    address: str
    platform: str
    description: str
    protocols: list[Protocol]
