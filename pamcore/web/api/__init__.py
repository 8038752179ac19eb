"""The REST API under ``/api/v1``: JSON over the same services as the CLI and the dashboard.

Callers authenticate with the dashboard's session cookie (then a changing request carries
the CSRF token in ``X-CSRFToken``) or with ``Authorization: Bearer <API token>`` (scripts;
no cookie, so no CSRF). Errors are RFC 9457 problems (:mod:`pamcore.web.api.problems`).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from pamcore.errors import AuthenticationFailed, PamError
from pamcore.model import User
from pamcore.services.paging import Page
from pamcore.services.tokens import authenticate_token
from pamcore.web.api.problems import from_error, json_response, problem
from pamcore.web.context import acting_user, current_core

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def register(app: Flask) -> None:
    """Mount the API; CSRF is checked here instead (only cookie-authenticated requests)."""
    from pamcore.web.api import catalog, openapi, sessions  # noqa: F401 (routes)

    app.extensions["csrf"].exempt(bp)
    app.register_blueprint(bp)


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("use 'Authorization: Bearer <API token>'")
    return token.strip()


@bp.before_request
def authenticate() -> None:
    """Who calls: a bearer token (checked in its own unit, which records its last use) or
    the signed-in dashboard user; the OpenAPI document is public."""
    if request.endpoint == "api.openapi_document":
        return
    token = _bearer()
    if token is not None:
        core = current_core()
        with core.unit() as db:
            g.api_user_id = authenticate_token(core, db, token).id
        return
    if not current_user.is_authenticated:
        raise AuthenticationFailed(
            "sign in to the dashboard, or send 'Authorization: Bearer <API token>' "
            "(pamcore users token create USER --name NAME)"
        )
    if request.method not in SAFE_METHODS:
        current_app.extensions["csrf"].protect()


def api_user(db: Session) -> User:
    """The caller as a row of ``db`` (the caller's unit of work)."""
    user_id = g.get("api_user_id")
    if user_id is None:
        return acting_user(db)
    user = db.get(User, user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("invalid API token")
    return user


def paged(page: Page[Any], rows: list[Any]) -> Response:
    """A page's rows as the JSON array, and the next page's address in a ``Link`` header
    (RFC 8288, ``rel="next"``): the same query with the next cursor; none on the last."""
    response = json_response(rows)
    if page.next_cursor is not None:
        args = {**request.args.to_dict(), "cursor": page.next_cursor}
        response.headers["Link"] = f'<{url_for(str(request.endpoint), **args)}>; rel="next"'
    return response


class BadBody(Exception):
    """The request body is not the JSON object an operation takes."""


@bp.errorhandler(PamError)
def pam_error(error: PamError) -> Response:
    return from_error(error)


@bp.errorhandler(BadBody)
def bad_body(error: BadBody) -> Response:
    return problem(400, str(error), "bad_request")


@bp.errorhandler(CSRFError)
def csrf_error(error: CSRFError) -> Response:
    return problem(
        400,
        f"{error.description} Send the dashboard's CSRF token in 'X-CSRFToken', "
        "or use an API token",
        "csrf",
    )


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    status = error.code or 500
    return problem(status, error.description or error.name, "http")


@bp.errorhandler(StaleDataError)
def changed_meanwhile(error: StaleDataError) -> Response:
    return problem(409, "this changed meanwhile (another request won); read it again", "conflict")


@bp.errorhandler(Exception)
def unexpected(error: Exception) -> Response:
    """The last line of defence: logged for the operator, a plain problem for the caller."""
    log.exception("unexpected API error on %s %s", request.method, request.path)
    return problem(500, "pamcore could not finish this request; the server log has why", "internal")


#: Methods the catch-all answers, so that any of them on a known address is a 405 problem.
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "QUERY"]


def _allowed_methods() -> list[str]:
    """The methods some operation takes at this request's address (none: no such address)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed: set[str] = set()
    for method in ANY_METHOD:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed | {"OPTIONS"}) if allowed else []


@bp.route("/<path:anything>", methods=ANY_METHOD)
def unknown(anything: str) -> Response:
    """Any other address or method under ``/api/v1`` is a JSON 404 or 405 (with ``Allow``,
    RFC 9110 §15.5.6), not the dashboard's HTML page."""
    if allowed := _allowed_methods():
        response = problem(
            405, f"{request.method} is not an operation of /api/v1/{anything}", "http"
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return problem(404, f"no API operation at /api/v1/{anything}; see /api/v1/openapi.json", "http")
