"""Who and where for RDP: sign-in, the DirectConnect login or routing token resolved to a
session, the connection admitted with its target and credential, and closed. Synchronous
calls into the core's services (as in ``pamcore_ssh.admission``), run by the listener in
worker threads (``asyncio.to_thread``).

An RDP connection is two TCP connections (docs/design/rdp.md §3.4): Phase A signs the user in and
resolves the session (:func:`sign_in_password`, :func:`resolve_login`) without counting a
connection; Phase B, after the redirection ticket, admits it (:func:`admit`, audited as
``connection.authorized``); the listener closes it
(:func:`pamcore.services.connections.close_connection`).

**Second factor.** RDP's Client Info PDU has one password field and the inline prompt one
input line, so a user with TOTP types the password immediately followed by the current
six-digit code (``Secr3t-Pw123456``), in the client or at the prompt. A password alone is
refused for them with a sentence that says so; it is not counted as a wrong password.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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
from pamcore.services.connections import admit_connection
from pamcore.services.directory import authenticate, get_user
from pamcore.services.sessions import find_or_request
from pamcore.services.twofactor import totp_enabled, verify_second_factor
from pamcore.vault import Revealed
from pamcore_rdp.proxy.trust import CertificateTrust, certificate_trust
from pamcore_rdp.settings import target_settings

PROTOCOL = "rdp"
#: RFC 6238 codes as authenticator apps show them.
CODE_DIGITS = 6
NEEDS_CODE = (
    "this account also needs a verification code: type your password followed by the "
    f"{CODE_DIGITS}-digit code from your authenticator app"
)


@dataclass(frozen=True)
class Route:
    """Where a signed-in user goes: the session, and why it cannot be used yet (``None``
    when it can; Phase A then redirects with a ticket naming ``session_id``)."""

    session_id: int
    resource_name: str
    waiting: str | None = None


@dataclass(frozen=True)
class Grant:
    """An admitted connection: the live-connection row, the session, and the target with
    its credential (which stays out of ``repr``)."""

    connection_id: int
    session_id: int
    username: str
    resource_id: int
    resource_name: str
    ends_at: dt.datetime
    #: The profile's warning window: the relay's banner and Ctrl+X (off when zero).
    warning: dt.timedelta
    #: Whether the profile allows extensions: Ctrl+X is offered and taken only then.
    extendable: bool
    recording: bool
    address: str
    port: int
    #: The target account, without a ``DOMAIN\\`` prefix (that goes to ``domain``).
    login_account: str
    password: Revealed | None = field(repr=False)
    domain: str
    #: ``auto`` | ``nla`` | ``tls`` and ``negotiate`` | ``ntlm`` (:mod:`pamcore_rdp.settings`).
    security: str
    nla_mechanism: str
    #: What the target's TLS certificate must match (:mod:`pamcore_rdp.proxy.trust`).
    trust: CertificateTrust


def sign_in_password(core: Pamcore, username: str, password: str) -> int:
    """The user's id once ``password`` signs in (with the code appended for TOTP users);
    raises AuthenticationFailed with the sentence the user sees."""
    with core.unit() as db:
        secret, code = password, None
        if _has_totp(db, username) and _ends_with_code(password):
            secret, code = password[:-CODE_DIGITS], password[-CODE_DIGITS:]
        user = authenticate(core, db, username, secret)
        if not totp_enabled(user):
            return user.id
        if code is None:  # the right password without the code: audited, then the prompt
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


def resolve_login(core: Pamcore, user_id: int, activity: str | None, resource: str) -> Route:
    """The session a DirectConnect login means. With an activity, the user's open session
    or a new request (which may wait for approval or a schedule), as the SSH proxy does;
    without one, the user's open session on ``resource`` (several activities there must
    be named). Raises PamError (audited ``connection.refused``) when there is none."""
    with core.unit() as db:
        user = db.get(User, user_id)
        assert user is not None
        target = by_name(db, Resource, resource)
        if target.port_for(PROTOCOL) is None:
            _refuse(core, db, user, target)
        if activity is not None:
            session = find_or_request(core, db, user, activity, target.name)
        else:
            session = _open_session(core, db, user, target)
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


def _open_session(core: Pamcore, db: Session, user: User, target: Resource) -> ActivitySession:
    """The user's open session on ``target`` of its only activity, connectable first;
    anything else is refused in the words of ``authorize_connection``."""
    open_ = [s for s in sessions_on(db, user, target) if Status(s.status) in OPEN]
    if len({s.activity_id for s in open_}) == 1:
        ready = [s for s in open_ if Status(s.status) in CONNECTABLE]
        return (ready or open_)[0]
    _refuse(core, db, user, target)


def _refuse(core: Pamcore, db: Session, user: User, target: Resource) -> NoReturn:
    """Let the core say why ``user`` cannot connect (no rdp port, no session, several
    activities): authorize_connection raises its audited refusal in these cases."""
    authorize_connection(core, db, user, target, PROTOCOL)
    raise AssertionError("authorize_connection granted a connection Phase A refused")


def admit(
    core: Pamcore,
    user_id: int,
    activity: str | None,
    resource: str,
    peer: str,
    session_id: int | None = None,
) -> Grant:
    """Authorise the connection (audited) and count it as live; raises PamError.
    ``session_id`` pins the session (a redirection ticket or routing token names one)."""
    with core.unit() as db:
        admitted = admit_connection(
            core, db, user_id, resource, PROTOCOL, peer, activity, session_id
        )
        grant, target = admitted.grant, admitted.resource
        settings = target_settings(target)
        domain, account = split_account(grant.login_account, settings.domain)
        return Grant(
            connection_id=admitted.live.id,
            session_id=grant.session.id,
            username=admitted.user.username,
            resource_id=target.id,
            resource_name=target.name,
            ends_at=grant.ends_at,
            warning=dt.timedelta(minutes=grant.session.profile.warning_minutes),
            extendable=grant.session.profile.allows_extension,
            recording=grant.session.profile.recording,
            address=target.address,
            port=grant.port,
            login_account=account,
            password=grant.password,
            domain=domain,
            security=settings.security,
            nla_mechanism=settings.nla_mechanism,
            trust=certificate_trust(target),
        )


def split_account(account: str, default_domain: str) -> tuple[str, str]:
    """(domain, user) of a vaulted account: ``CORP\\admin`` names its domain; otherwise the
    resource's ``rdp.domain`` (a ``user@corp.example`` UPN stays whole, NTLM accepts it)."""
    domain, sep, user = account.partition("\\")
    return (domain, user) if sep else (default_domain, account)
