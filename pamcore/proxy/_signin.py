"""Who and where: a proxy signs the user in and finds the session a login means, each call
in its own unit of work (run it with ``asyncio.to_thread``). The decisions stay in the
services (directory, twofactor, sessions, access); this is the glue all proxies shared.

Two conventions for a second factor: a protocol that can ask twice asks for the code next
(:func:`sign_in`, then :func:`sign_in_code`); one with a single password field takes the
code appended to the password (:func:`sign_in_appended`, ``Secr3t-Pw123456``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, NotFound, PolicyDenied
from pamcore.lifecycle import CONNECTABLE, OPEN, Status
from pamcore.model import ActivitySession, Resource, User
from pamcore.services.access import (
    authorize_connection,
    finished_reason,
    sessions_on,
    waiting_reason,
)
from pamcore.services.common import by_name, get_session
from pamcore.services.connections import connectable_choices
from pamcore.services.directory import authenticate, authenticate_key, get_user
from pamcore.services.sessions import find_or_request
from pamcore.services.twofactor import totp_enabled, verify_second_factor

#: RFC 6238 codes as authenticator apps show them.
CODE_DIGITS = 6
NEEDS_CODE = (
    "this account also needs a verification code: type your password followed by the "
    f"{CODE_DIGITS}-digit code from your authenticator app"
)


@dataclass(frozen=True)
class SignIn:
    """A password that signed in: whose, and whether a code must follow (TOTP is on)."""

    user_id: int
    needs_code: bool


def sign_in(core: Pamcore, username: str, password: str) -> SignIn:
    """Check the password; raises AuthenticationFailed with the reason. With
    ``needs_code`` the user is not signed in until :func:`sign_in_code` passes."""
    with core.unit() as db:
        user = authenticate(core, db, username, password)
        return SignIn(user.id, totp_enabled(user))


def sign_in_code(core: Pamcore, user_id: int, code: str) -> int:
    """The second step for a user with TOTP; raises AuthenticationFailed (counted like a
    wrong password)."""
    with core.unit() as db:
        return verify_second_factor(core, db, user_id, code).id


def sign_in_key(core: Pamcore, username: str, fingerprint: str) -> int:
    """A public key the user registered (the proxy checked the signature)."""
    with core.unit() as db:
        return authenticate_key(core, db, username, fingerprint).id


def sign_in_appended(core: Pamcore, username: str, password_then_code: str) -> int:
    """The user's id once the password signs in, with the current code appended for a
    user with TOTP. The right password without the code is refused with
    :data:`NEEDS_CODE` (audited ``auth.second_factor_required``), not counted as a wrong
    password; a wrong code is."""
    with core.unit() as db:
        secret, code = password_then_code, None
        if _has_totp(db, username) and _ends_with_code(password_then_code):
            secret, code = password_then_code[:-CODE_DIGITS], password_then_code[-CODE_DIGITS:]
        user = authenticate(core, db, username, secret)
        if not totp_enabled(user):
            return user.id
        if code is None:
            raise AuthenticationFailed(NEEDS_CODE).audited(
                user.username, "auth.second_factor_required", method="password"
            )
        return verify_second_factor(core, db, user.id, code).id


def _has_totp(db: Session, username: str) -> bool:
    try:
        return totp_enabled(get_user(db, username))
    except NotFound:
        return False  # authenticate() refuses it in the same words as a wrong password


def _ends_with_code(text: str) -> bool:
    return len(text) > CODE_DIGITS and text[-CODE_DIGITS:].isdigit()


@dataclass(frozen=True)
class Choice:
    """One line of the menu shown to a login without a resource."""

    activity: str
    resource: str
    session_id: int

    def label(self) -> str:
        return f"{self.resource} ({self.activity}, session #{self.session_id})"


def choices(core: Pamcore, user_id: int, protocol: str) -> list[Choice]:
    """The user's connectable sessions × their resources reachable over ``protocol``."""
    with core.reader() as db:
        user = db.get(User, user_id)
        if user is None:
            raise NotFound(f"no user #{user_id}")
        return [
            Choice(session.activity.name, resource.name, session.id)
            for session, resource in connectable_choices(db, user, protocol)
        ]


@dataclass(frozen=True)
class Route:
    """Where a signed-in user goes: the session, and why it cannot be used yet (``None``
    when it can)."""

    session_id: int
    resource_name: str
    waiting: str | None = None


def route(core: Pamcore, user_id: int, activity: str | None, resource: str, protocol: str) -> Route:
    """The session a DirectConnect login means. With an activity, the user's open session
    or a new request (which may wait for approval or a schedule); without one, the user's
    open session on ``resource`` of its only activity, connectable first. Raises PamError
    (audited ``connection.refused``) when there is none or ``resource`` lacks
    ``protocol``."""
    with core.unit() as db:
        user = db.get(User, user_id)
        if user is None:
            raise NotFound(f"no user #{user_id}")
        target = by_name(db, Resource, resource)
        if target.port_for(protocol) is None:
            _refuse(core, db, user, target, protocol)
        if activity is not None:
            session = find_or_request(core, db, user, activity, target.name)
        else:
            session = _open_session(core, db, user, target, protocol)
        waiting = None
        if Status(session.status) not in CONNECTABLE:
            waiting = waiting_reason(session, core.now())
        return Route(session.id, target.name, waiting)


def still_waiting(core: Pamcore, session_id: int) -> str | None:
    """The waiting room's poll: why the session still waits, ``None`` once connectable; a
    refusal (PolicyDenied) saying how it finished when it was denied, canceled or ended."""
    with core.reader() as db:
        session = get_session(db, session_id)
        status = Status(session.status)
        if status in CONNECTABLE:
            return None
        if status in OPEN:
            return waiting_reason(session, core.now())
        raise PolicyDenied(finished_reason(session, core.now()))


def _open_session(
    core: Pamcore, db: Session, user: User, target: Resource, protocol: str
) -> ActivitySession:
    open_ = [s for s in sessions_on(db, user, target) if Status(s.status) in OPEN]
    if len({s.activity_id for s in open_}) == 1:
        ready = [s for s in open_ if Status(s.status) in CONNECTABLE]
        return (ready or open_)[0]
    _refuse(core, db, user, target, protocol)


def _refuse(core: Pamcore, db: Session, user: User, target: Resource, protocol: str) -> NoReturn:
    """Let the core say why ``user`` cannot connect (no such port, no session, several
    activities): ``authorize_connection`` raises its audited refusal in these cases."""
    authorize_connection(core, db, user, target, protocol)
    raise AssertionError("authorize_connection granted a connection route refused")
