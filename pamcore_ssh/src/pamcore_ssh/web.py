"""The browser terminal in the dashboard: the full-window xterm.js page and the view that
gives it a single-use token (:mod:`pamcore.webkit`; the core decides who gets one);
the terminal itself talks to the proxy's WebSocket listener (:mod:`pamcore_ssh.browser`)."""

from __future__ import annotations

from flask import Blueprint, jsonify, make_response, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from pamcore.errors import NotFound, PamError
from pamcore.webkit import (
    CSP,
    TOKEN_SECONDS,
    acting_user,
    current_core,
    issue_token,
    token_resource,
    token_secret,
)
from pamcore_ssh.admission import PROTOCOL
from pamcore_ssh.browser import terminal_url

bp = Blueprint(
    "ssh_terminal",
    __name__,
    url_prefix="/ssh",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@bp.route("/terminal/<int:session_id>/<resource>")
@login_required
def terminal(session_id: int, resource: str) -> ResponseReturnValue:
    """The page; it asks for its token only when it connects, so a token never waits."""
    core = current_core()
    with core.reader() as db:
        name = token_resource(core, db, acting_user(db), session_id, resource, PROTOCOL).name
    url = terminal_url(core.config)
    response = make_response(
        render_template(
            "ssh/terminal.html",
            session_id=session_id,
            resource=name,
            token_url=url_for(".token", session_id=session_id, resource=name),
            ws_url=url,
        )
    )
    response.headers["Content-Security-Policy"] = f"{CSP}; connect-src 'self' {url}"
    return response


@bp.route("/terminal/<int:session_id>/<resource>/token", methods=["POST"])
@login_required
def token(session_id: int, resource: str) -> ResponseReturnValue:
    """A token for the session's requester while it is Available, in the body only."""
    core = current_core()
    try:
        with core.reader() as db:
            issued = issue_token(
                core, db, acting_user(db), session_id, resource, PROTOCOL, token_secret()
            )
    except PamError as exc:
        return jsonify(error=str(exc)), 404 if isinstance(exc, NotFound) else 403
    return jsonify(token=issued, url=terminal_url(core.config), expires_in=TOKEN_SECONDS)
