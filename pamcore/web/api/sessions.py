"""``/api/v1/sessions``: request, list, show, decide, extend, cancel, end and reveal — each
one call to the service the CLI and the dashboard use."""

from __future__ import annotations

from typing import Any

from flask import Response, g, request

from pamcore.errors import AuthenticationFailed, ValidationError
from pamcore.lifecycle import Status
from pamcore.presenters import session_detail, session_row
from pamcore.services import access, approvals
from pamcore.services import sessions as svc
from pamcore.services.common import worker_name
from pamcore.services.ending import complete_ending
from pamcore.web.api import api_user, bp, json_body, paged, text_field
from pamcore.web.api.problems import json_response
from pamcore.web.auth import signed_in_recently
from pamcore.web.context import current_core


def _request(body: dict[str, Any]) -> svc.SessionRequest:
    resources = body.get("resources")
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise ValidationError("resources", "a list of resource names")
    return svc.SessionRequest(
        activity=text_field(body, "activity"),
        resources=tuple(resources),
        notes=text_field(body, "notes"),
        ticket=text_field(body, "ticket"),
        start=svc.parse_start(body.get("start")),
    )


def _detail(session_id: int) -> Response:
    core = current_core()
    with core.reader() as db:
        return json_response(
            session_detail(svc.show_session(db, api_user(db), session_id), core.now())
        )


@bp.get("/sessions")
def list_sessions() -> Response:
    core = current_core()
    args = request.args
    with core.reader() as db:
        page = svc.page_sessions(
            db, api_user(db), args.get("view", "active"), args.get("limit"), args.get("cursor")
        )
        return paged(page, [session_row(s, core.now()) for s in page.items])


@bp.post("/sessions")
def create_session() -> Response:
    core = current_core()
    wanted = _request(json_body())
    with core.unit() as db:
        session = svc.create_session(core, db, api_user(db), wanted)
        return json_response(session_detail(session, core.now()), 201)


@bp.get("/sessions/<int:session_id>")
def show_session(session_id: int) -> Response:
    return _detail(session_id)


def _decide(session_id: int, approve: bool) -> Response:
    core = current_core()
    comment = text_field(json_body(), "comment")
    decide = approvals.approve_session if approve else approvals.deny_session
    with core.unit() as db:
        session = decide(core, db, api_user(db), session_id, comment)
        return json_response(session_detail(session, core.now()))


@bp.post("/sessions/<int:session_id>/approve")
def approve_session(session_id: int) -> Response:
    return _decide(session_id, approve=True)


@bp.post("/sessions/<int:session_id>/deny")
def deny_session(session_id: int) -> Response:
    return _decide(session_id, approve=False)


@bp.post("/sessions/<int:session_id>/extend")
def extend_session(session_id: int) -> Response:
    core = current_core()
    with core.unit() as db:
        session = svc.extend_session(core, db, api_user(db), session_id)
    return _detail(session.session_id)


@bp.post("/sessions/<int:session_id>/cancel")
def cancel_session(session_id: int) -> Response:
    core = current_core()
    reason = text_field(json_body(), "reason")
    with core.unit() as db:
        actor = api_user(db)
        status = svc.cancel_session(core, db, actor, session_id, reason).status
        who = actor.username
    if status == Status.ENDING:  # it was running: remove what was created for it, now
        complete_ending(core, session_id, worker_name(), who)
    return _detail(session_id)


@bp.post("/sessions/<int:session_id>/end")
def end_session(session_id: int) -> Response:
    core = current_core()
    with core.unit() as db:
        actor = api_user(db)
        svc.end_session(core, db, actor, session_id)
        who = actor.username
    # The post-session actions run now, outside the transaction (else the scheduler would).
    complete_ending(core, session_id, worker_name(), who)
    return _detail(session_id)


@bp.post("/sessions/<int:session_id>/password")
def reveal_password(session_id: int) -> Response:
    """Audited by the service; the response must never be stored by any cache. A cookie
    caller must have signed in recently, as in the dashboard; a token is its own proof."""
    core = current_core()
    if g.get("api_user_id") is None and not signed_in_recently():
        raise AuthenticationFailed("confirm your password in the dashboard, then try again")
    purpose = text_field(json_body(), "purpose", "view")
    with core.unit() as db:
        shown = access.reveal_password(core, db, api_user(db), session_id, purpose)
    response = json_response(
        {
            "username": shown.username,
            "password": str(shown.password),
            "seconds": shown.seconds,
            "expires_at": shown.expires_at,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
