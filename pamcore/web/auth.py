"""Sign-in, second factor, sign-out and re-authentication; the Flask-Login user; and the
decorators views use to say who may open them (roles, a recent sign-in)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, login_user, logout_user

from pamcore.errors import AuthenticationFailed
from pamcore.model import Role, User
from pamcore.services import signins, twofactor
from pamcore.services.directory import authenticate
from pamcore.web.context import acting_user, current_core
from pamcore.web.ratelimit import AttemptLimiter

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

#: How long a password step may wait for its second factor.
PENDING_SECONDS = 300

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class WebUser:
    """The signed-in person as Flask-Login sees them: no hash, no secret, just who."""

    id: int
    username: str
    display_name: str
    role: Role
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    @classmethod
    def of(cls, user: User) -> WebUser:
        return cls(user.id, user.username, user.display_name or user.username, Role(user.role))

    def get_id(self) -> str:
        return str(self.id)

    def has_role(self, *roles: str) -> bool:
        return self.role.value in roles


def remember_sign_in(store: MutableMapping[str, Any], sign_in: signins.SignIn) -> None:
    """Write ``sign_in`` into the session cookie ``store``."""
    store["sign_in"] = [sign_in.generation, sign_in.signed_in_at, sign_in.seen_at]


def _sign_in_of(user_id: str) -> signins.SignIn | None:
    """The sign-in this request's cookie claims, or ``None`` for a cookie without one."""
    held = session.get("sign_in")
    if not user_id.isdigit() or not isinstance(held, list) or len(held) != 3:
        return None
    try:
        return signins.SignIn(int(user_id), int(held[0]), float(held[1]), float(held[2]))
    except (TypeError, ValueError):
        return None


def load_user(user_id: str) -> WebUser | None:
    """Flask-Login's loader: the sign-ins service says whether the cookie's sign-in still
    stands; a table refreshing itself (an htmx GET) does not count as the person's activity."""
    claimed = _sign_in_of(user_id)
    current = None
    if claimed is not None:
        polling = request.method == "GET" and "HX-Request" in request.headers
        core = current_core()
        with core.reader() as db:
            current = signins.current_sign_in(core, db, claimed, activity=not polling)
            user = WebUser.of(current[0]) if current is not None else None
    if current is None:
        session.clear()
        return None
    remember_sign_in(session, current[1])
    return user


def role_required(*roles: str) -> Callable[[F], F]:
    """Only signed-in users with one of ``roles`` (403 otherwise)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _now() -> float:
    """Seconds on the core's clock, the one every other time in pamcore is read from."""
    return current_core().now().timestamp()


def signed_in_recently() -> bool:
    at = session.get("auth_at", 0)
    return _now() - float(at) < current_app.config["PAMCORE_FRESH_SECONDS"]


def fresh_login_required(view: F) -> F:
    """Sensitive actions (revealing a password) need a sign-in of the last few minutes;
    otherwise the user confirms their password first and comes back."""

    @functools.wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not signed_in_recently():
            flash("Confirm your password to continue.", "info")
            back = request.form.get("back") or request.path
            return redirect(url_for("auth.reauthenticate", next=back), code=303)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def is_safe_next(target: str | None) -> bool:
    """Only a path on this host: no scheme, no host, no ``//`` or ``\\`` tricks."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(c) < 32 for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _next_or_home(target: str | None) -> str:
    return target if target and is_safe_next(target) else url_for("dashboard.active")


def _limiter() -> AttemptLimiter:
    """Sign-in attempts per client address (the core locks accounts; this slows one
    address), counted per app so two apps, or two tests, never share a count."""
    return cast(AttemptLimiter, current_app.extensions["pamcore_sign_in_limiter"])


def _client() -> str:
    """The client's address: behind ``web_trusted_proxies`` reverse proxies, the one the
    nearest proxy saw (ProxyFix in the app factory), never a header the client chose."""
    return request.remote_addr or "unknown"


def _finish_sign_in(user: User, target: str | None) -> ResponseReturnValue:
    session.clear()  # nothing of a previous sign-in (or a fixation attempt) survives
    login_user(WebUser.of(user), fresh=True)
    remember_sign_in(session, signins.start_sign_in(current_core(), user))
    session["auth_at"] = _now()
    return redirect(_next_or_home(target), code=303)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = request.values.get("next")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_next_or_home(target))
    if request.method == "GET":
        return render_template("auth/login.html", next=target, username="")
    username = request.form.get("username", "")
    wait = _limiter().retry_after(_client())
    if wait:
        flash(f"Too many sign-in attempts from your address; try again in {wait} s.", "error")
        return render_template("auth/login.html", next=target, username=username), 429
    core = current_core()
    try:
        with core.unit() as db:
            user = authenticate(core, db, username, request.form.get("password", ""))
            if twofactor.totp_enabled(user):
                session["pending_2fa"] = {"user": user.id, "at": _now(), "next": target}
                return redirect(url_for("auth.second_factor"), code=303)
            return _finish_sign_in(user, target)
    except AuthenticationFailed as exc:
        _limiter().failed(_client())
        flash(f"Sign-in failed: {exc}.", "error")
        return render_template("auth/login.html", next=target, username=username), 401


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor() -> ResponseReturnValue:
    pending = session.get("pending_2fa")
    if not pending or _now() - pending["at"] > PENDING_SECONDS:
        session.pop("pending_2fa", None)
        flash("Sign in with your password first.", "info")
        return redirect(url_for("auth.login"), code=303)
    if request.method == "GET":
        return render_template("auth/code.html")
    if _limiter().retry_after(_client()):
        flash("Too many attempts from your address; wait a few minutes.", "error")
        return render_template("auth/code.html"), 429
    core = current_core()
    try:
        with core.unit() as db:
            user = twofactor.verify_second_factor(
                core, db, pending["user"], request.form.get("code", "")
            )
            return _finish_sign_in(user, pending.get("next"))
    except AuthenticationFailed as exc:
        _limiter().failed(_client())
        flash(f"Sign-in failed: {exc}.", "error")
        return render_template("auth/code.html"), 401


@bp.route("/reauth", methods=["GET", "POST"])
@login_required
def reauthenticate() -> ResponseReturnValue:
    """Confirm the password (and code) again before a sensitive action."""
    target = request.values.get("next")
    if request.method == "GET":
        return render_template("auth/reauth.html", next=target)
    core = current_core()
    try:
        with core.unit() as db:
            user = authenticate(core, db, current_user.username, request.form.get("password", ""))
            if twofactor.totp_enabled(user):
                twofactor.verify_second_factor(core, db, user.id, request.form.get("code", ""))
    except AuthenticationFailed as exc:
        flash(f"Not confirmed: {exc}.", "error")
        return render_template("auth/reauth.html", next=target), 401
    session["auth_at"] = _now()
    return redirect(_next_or_home(target), code=303)


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    """Sign out of every browser at once: a copy of this cookie is worth nothing after."""
    if current_user.is_authenticated:
        core = current_core()
        with core.unit() as db:
            signins.sign_out(core, db, acting_user(db))
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/account/second-factor", methods=["GET"])
@login_required
def account() -> ResponseReturnValue:
    with current_core().reader() as db:
        enabled = twofactor.totp_enabled(acting_user(db))
    return render_template("auth/account.html", enabled=enabled, enrolment=None)


@bp.route("/account/second-factor/start", methods=["POST"])
@fresh_login_required
def start_enrolment() -> ResponseReturnValue:
    """Show the new secret once (this response only); it is in force after a code."""
    core = current_core()
    with core.unit() as db:
        enrolment = twofactor.start_enrolment(core, db, acting_user(db))
        enabled = twofactor.totp_enabled(acting_user(db))
    session["totp_enrolment"] = enrolment.secret_id  # an id, not the secret
    return render_template("auth/account.html", enabled=enabled, enrolment=enrolment)


@bp.route("/account/second-factor/confirm", methods=["POST"])
@login_required
def confirm_enrolment() -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        twofactor.confirm_enrolment(
            core,
            db,
            acting_user(db),
            int(session.get("totp_enrolment") or 0),
            request.form.get("code", ""),
        )
    session.pop("totp_enrolment", None)
    flash("Second factor enabled: sign-ins now ask for a code from your app.", "success")
    return redirect(url_for("auth.account"), code=303)


@bp.route("/account/second-factor/remove", methods=["POST"])
@fresh_login_required
def remove_second_factor() -> ResponseReturnValue:
    core = current_core()
    with core.unit() as db:
        user = acting_user(db)
        twofactor.disable_totp(core, db, user, user)
    flash("Second factor removed.", "success")
    return redirect(url_for("auth.account"), code=303)
