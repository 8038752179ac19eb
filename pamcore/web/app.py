"""The dashboard's app factory: one Flask app per :class:`~pamcore.core.Pamcore`, with
Flask-Login, CSRF on every form, error pages, and the blueprints of every area (plugins'
blueprints too, through ``pamcore_register_blueprints``)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask, Response, current_app, flash, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PamError
from pamcore.health import ServiceStates
from pamcore.lifecycle import Status
from pamcore.monitoring import Monitor
from pamcore.presenters import describe_remaining
from pamcore.services.terminal_tokens import instance_secret
from pamcore.web import (
    admin,
    api,
    approvals,
    auditing,
    auth,
    dashboard,
    monitoring,
    sessions,
    wizard,
)
from pamcore.web.auth import is_safe_next, load_user
from pamcore.web.ratelimit import AttemptLimiter

log = logging.getLogger(__name__)

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"
login_manager.user_loader(load_user)

csrf = CSRFProtect()

#: Content Security Policy: every asset is served by the dashboard itself (works offline).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def _secret_key(core: Pamcore) -> str:
    """The key ``pamcore init`` wrote; without one (tests, a bare core) a per-process key,
    which only means sign-ins do not survive a restart."""
    key = instance_secret(core)
    if key is not None:
        return key
    log.warning("no web secret key file (run 'pamcore init'); sign-ins last until restart")
    return secrets.token_urlsafe(48)


def create_app(
    core: Pamcore,
    config_overrides: dict[str, Any] | None = None,
    *,
    states: ServiceStates | None = None,
) -> Flask:
    """Build the dashboard for ``core``; ``config_overrides`` are Flask settings (tests set
    ``TESTING``, ``WTF_CSRF_ENABLED``); ``states`` are the services of the process it runs
    in, which ``/readyz`` reports on."""
    https = core.config.web_https
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(core),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_NAME="pamcore_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https,
        #: Strict-Transport-Security on every answer when people reach the dashboard over
        #: HTTPS only (never over plain HTTP, RFC 6797 §7.2); browsers then refuse http for a year.
        PAMCORE_HSTS="max-age=31536000" if https else None,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the sign-in
        MAX_CONTENT_LENGTH=1024 * 1024,
        #: Seconds after sign-in during which a password may be revealed without re-entry.
        PAMCORE_FRESH_SECONDS=15 * 60,
        #: Seconds between refreshes of the live tables (htmx polling).
        PAMCORE_POLL_SECONDS=3,
        #: Sign-in attempts one client address may make within the window (seconds).
        PAMCORE_SIGN_IN_ATTEMPTS=30,
        PAMCORE_SIGN_IN_WINDOW=300,
    )
    app.config.update(config_overrides or {})
    app.extensions["pamcore"] = core
    if core.config.web_trusted_proxies:
        # werkzeug's ProxyFix takes the client address and scheme from the headers the
        # nearest trusted proxies appended, and no further back (a client cannot spoof it).
        hops = core.config.web_trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions["pamcore_sign_in_limiter"] = AttemptLimiter(
        app.config["PAMCORE_SIGN_IN_ATTEMPTS"], app.config["PAMCORE_SIGN_IN_WINDOW"]
    )
    app.extensions["pamcore_monitor"] = Monitor(core, states, metrics=core.config.web_metrics)
    login_manager.init_app(app)
    csrf.init_app(app)

    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(wizard.bp)
    app.register_blueprint(sessions.bp)
    app.register_blueprint(approvals.bp)
    app.register_blueprint(monitoring.bp)
    api.register(app)
    admin.register(app)
    auditing.register(app)
    core.hooks.register_blueprints(app)

    app.jinja_env.globals.update(Status=Status, describe_remaining=describe_remaining)
    _register_error_pages(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if hsts := current_app.config["PAMCORE_HSTS"]:
        response.headers.setdefault("Strict-Transport-Security", hsts)
    if request.endpoint != "static":
        # Pages may show who did what, or a password: never kept by a shared cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _back() -> ResponseReturnValue:
    """Where a refused form post returns: the page it came from when it is ours."""
    target = request.referrer or ""
    host = request.host_url
    path = "/" + target[len(host) :] if target.startswith(host) else ""
    return redirect(path if is_safe_next(path) else "/", code=303)


def _register_error_pages(app: Flask) -> None:
    def page(status: int, title: str, message: str) -> ResponseReturnValue:
        return render_template("errors/error.html", status=status, title=title, message=message), (
            status
        )

    @app.errorhandler(PamError)
    def pam_error(exc: PamError) -> ResponseReturnValue:
        """A refusal or a validation message: back to the form with the message on a post,
        an error page on a read."""
        if isinstance(exc, NotFound):
            return page(404, "Not found", str(exc))
        if isinstance(exc, AuthenticationFailed):
            flash(str(exc), "error")
            return redirect("/login", code=303)
        if request.method == "POST":
            flash(str(exc), "error")
            return _back()
        return page(403 if exc.kind == "denied" else 400, "Not possible", str(exc))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return page(
            400,
            "The form expired",
            "This form is no longer valid (it was open too long, or came from elsewhere). "
            "Go back, reload the page and submit it again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        messages = {
            403: "You do not have the role this page needs. Ask an administrator if you "
            "should have access.",
            404: "There is nothing at this address. Use the menu to find your way.",
            405: "This address does not accept that kind of request.",
        }
        status = exc.code or 500
        return page(status, exc.name, messages.get(status, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return page(
            500,
            "Something went wrong",
            "pamcore could not finish this request. Try again; if it keeps happening, "
            "give an administrator the time it happened so they can find it in the log.",
        )
