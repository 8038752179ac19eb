"""``/api/v1/sessions``: request, list, show, decide, extend, cancel, end and reveal — each
one call to the service the CLI and the dashboard use."""

from __future__ import annotations

from flask import Response, g

from pamcore.errors import AuthenticationFailed
from pamcore.lifecycle import Status
from pamcore.presenters import session_detail, session_row
from pamcore.services import access, approvals
from pamcore.services import sessions as svc
from pamcore.services.common import worker_name
from pamcore.services.ending import complete_ending
from pamcore.web.api import api_user, paged
from pamcore.web.api.models import (
    Comment,
    Reason,
    Revealed,
    RevealRequest,
    SessionDetail,
    SessionPath,
    SessionRequest,
    SessionRow,
    SessionsQuery,
)
from pamcore.web.api.operations import operation
from pamcore.web.api.problems import json_response
from pamcore.web.auth import signed_in_recently
from pamcore.web.context import current_core

#: Errors of every operation on one session: not allowed, none such (or not yours to see),
#: its state does not allow it, a wrong input.
ON_A_SESSION = (403, 404, 409, 422)
#: What a created session's answer leads to: its id in every operation on one session.
ON_THE_NEW_SESSION = {
    name: {"session_id": "$response.body#/id"}
    for name in (
        "show_session",
        "approve_session",
        "deny_session",
        "extend_session",
        "cancel_session",
        "end_session",
        "reveal_password",
    )
}


def _detail(session_id: int) -> Response:
    core = current_core()
    with core.reader() as db:
        return json_response(
            session_detail(svc.show_session(db, api_user(db), session_id), core.now())
        )


@operation(
    "GET",
    "/sessions",
    "Sessions you may see (all of them for admins and auditors), newest request first, a "
    "page at a time",
    list[SessionRow],
    query_model=SessionsQuery,
    errors=(422,),
    paged=True,
)
def list_sessions(query: SessionsQuery) -> Response:
    core = current_core()
    limit = None if query.limit is None else str(query.limit)
    with core.reader() as db:
        page = svc.page_sessions(db, api_user(db), query.view, limit, query.cursor)
        return paged(page, [session_row(s, core.now()) for s in page.items])


@operation(
    "POST",
    "/sessions",
    "Request a session (it may wait for approval)",
    SessionDetail,
    status=201,
    body_model=SessionRequest,
    errors=(403, 409, 422),
    links=ON_THE_NEW_SESSION,
)
def create_session(body: SessionRequest) -> Response:
    core = current_core()
    wanted = svc.SessionRequest(
        activity=body.activity,
        resources=tuple(body.resources),
        notes=body.notes,
        ticket=body.ticket,
        start=body.start,
    )
    with core.unit() as db:
        session = svc.create_session(core, db, api_user(db), wanted)
        return json_response(session_detail(session, core.now()), 201)


@operation(
    "GET",
    "/sessions/{session_id}",
    "One session with its approvals",
    SessionDetail,
    path_model=SessionPath,
    errors=(404, 422),
)
def show_session(path: SessionPath) -> Response:
    return _detail(path.session_id)


def _decide(session_id: int, comment: str, approve: bool) -> Response:
    core = current_core()
    decide = approvals.approve_session if approve else approvals.deny_session
    with core.unit() as db:
        session = decide(core, db, api_user(db), session_id, comment)
        return json_response(session_detail(session, core.now()))


@operation(
    "POST",
    "/sessions/{session_id}/approve",
    "Approve at the current tier",
    SessionDetail,
    path_model=SessionPath,
    body_model=Comment,
    errors=ON_A_SESSION,
)
def approve_session(path: SessionPath, body: Comment) -> Response:
    return _decide(path.session_id, body.comment, approve=True)


@operation(
    "POST",
    "/sessions/{session_id}/deny",
    "Deny; the requester sees the comment",
    SessionDetail,
    path_model=SessionPath,
    body_model=Comment,
    errors=ON_A_SESSION,
)
def deny_session(path: SessionPath, body: Comment) -> Response:
    return _decide(path.session_id, body.comment, approve=False)


@operation(
    "POST",
    "/sessions/{session_id}/extend",
    "Extend by the profile's increment",
    SessionDetail,
    path_model=SessionPath,
    errors=ON_A_SESSION,
)
def extend_session(path: SessionPath) -> Response:
    core = current_core()
    with core.unit() as db:
        session = svc.extend_session(core, db, api_user(db), path.session_id)
    return _detail(session.session_id)


@operation(
    "POST",
    "/sessions/{session_id}/cancel",
    "Cancel before or during the session",
    SessionDetail,
    path_model=SessionPath,
    body_model=Reason,
    errors=ON_A_SESSION,
)
def cancel_session(path: SessionPath, body: Reason) -> Response:
    core = current_core()
    session_id = path.session_id
    with core.unit() as db:
        actor = api_user(db)
        status = svc.cancel_session(core, db, actor, session_id, body.reason).status
        who = actor.username
    if status == Status.ENDING:  # it was running: remove what was created for it, now
        complete_ending(core, session_id, worker_name(), who)
    return _detail(session_id)


@operation(
    "POST",
    "/sessions/{session_id}/end",
    "End an Available or Active session now",
    SessionDetail,
    path_model=SessionPath,
    errors=ON_A_SESSION,
)
def end_session(path: SessionPath) -> Response:
    core = current_core()
    session_id = path.session_id
    with core.unit() as db:
        actor = api_user(db)
        svc.end_session(core, db, actor, session_id)
        who = actor.username
    # The post-session actions run now, outside the transaction (else the scheduler would).
    complete_ending(core, session_id, worker_name(), who)
    return _detail(session_id)


@operation(
    "POST",
    "/sessions/{session_id}/password",
    "Reveal the session's password for its view window (audited)",
    Revealed,
    path_model=SessionPath,
    body_model=RevealRequest,
    errors=ON_A_SESSION,
)
def reveal_password(path: SessionPath, body: RevealRequest) -> Response:
    """Audited by the service; the response must never be stored by any cache. A cookie
    caller must have signed in recently, as in the dashboard; a token is its own proof."""
    core = current_core()
    if g.get("api_user_id") is None and not signed_in_recently():
        raise AuthenticationFailed("confirm your password in the dashboard, then try again")
    with core.unit() as db:
        shown = access.reveal_password(core, db, api_user(db), path.session_id, body.purpose)
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
