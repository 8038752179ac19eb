"""Who and where: sign-in, the DirectConnect login name resolved to a grant, the waiting
room's poll, the menu's choices, host-key decisions. Synchronous calls into the core's
services, run by the proxy in worker threads (``asyncio.to_thread``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from pamcore.core import Pamcore
from pamcore.directconnect import DirectConnectName
from pamcore.errors import PolicyDenied
from pamcore.lifecycle import CONNECTABLE, OPEN, Status
from pamcore.model import ActivitySession, Resource, User
from pamcore.services.access import finished_reason, waiting_reason
from pamcore.services.common import get_session
from pamcore.services.connections import LEGACY_ALGORITHMS, admit_connection, connectable_choices
from pamcore.services.directory import authenticate, authenticate_key
from pamcore.services.inventory import host_key_refusal, pin_host_key
from pamcore.services.sessions import find_or_request
from pamcore.services.terminal_tokens import TerminalPass, redeem_terminal_token
from pamcore.services.twofactor import totp_enabled, verify_second_factor
from pamcore_ssh.hooks import ssh_algorithms, ssh_handshake_hint, ssh_terminal_assistants
from pamcore_ssh.hookspecs import TerminalAssistant
from pamcore_ssh.target import TargetSpec

PROTOCOL = "ssh"


@dataclass(frozen=True)
class Ticket:
    """An admitted connection: the live-connection row, the session, and the target."""

    connection_id: int
    session_id: int
    username: str
    resource_name: str
    ends_at: dt.datetime
    warning: dt.timedelta
    #: Whether the profile allows extensions: Ctrl+X is offered and taken only then.
    extendable: bool
    recording: bool
    target: TargetSpec
    #: A detached copy of the resource's pin and first-use flag, for the host-key rule.
    key_policy: Resource
    #: Plugins' helpers for each terminal channel (``pamcore_ssh_terminal_assistant``);
    #: they may hold a vaulted secret, so they stay out of ``repr``.
    assistants: tuple[Callable[[], TerminalAssistant], ...] = field(default=(), repr=False)

    def host_key_refusal(self, line: str, offered: str) -> str | None:
        return host_key_refusal(self.key_policy, line, offered)


@dataclass(frozen=True)
class Pending:
    """The session exists but is not Available yet: the waiting room shows ``reason``."""

    session_id: int
    reason: str


@dataclass(frozen=True)
class Choice:
    """One line of the menu shown to a login without a resource."""

    activity: str
    resource: str
    session_id: int

    def label(self) -> str:
        return f"{self.resource} ({self.activity}, session #{self.session_id})"


def sign_in_password(core: Pamcore, username: str, password: str) -> tuple[int, bool]:
    """(the user's id, whether a verification code must follow: TOTP is on); raises
    AuthenticationFailed with the reason."""
    with core.unit() as db:
        user = authenticate(core, db, username, password)
        return user.id, totp_enabled(user)


def sign_in_code(core: Pamcore, user_id: int, code: str) -> int:
    """The second step for a user with TOTP; raises AuthenticationFailed (counted like a
    wrong password)."""
    with core.unit() as db:
        return verify_second_factor(core, db, user_id, code).id


def sign_in_key(core: Pamcore, username: str, key_fingerprint: str) -> int:
    with core.unit() as db:
        return authenticate_key(core, db, username, key_fingerprint).id


def choices(core: Pamcore, user_id: int) -> list[Choice]:
    with core.reader() as db:
        user = db.get(User, user_id)
        assert user is not None
        return [
            Choice(session.activity.name, resource.name, session.id)
            for session, resource in connectable_choices(db, user, PROTOCOL)
        ]


def request(core: Pamcore, user_id: int, activity: str, resource: str) -> Pending | None:
    """DirectConnect with an activity: find the user's open session or create one (which
    may wait for approval or a schedule); ``None`` when it can be connected to now."""
    with core.unit() as db:
        user = db.get(User, user_id)
        assert user is not None
        session = find_or_request(core, db, user, activity, resource)
        if Status(session.status) in CONNECTABLE:
            return None
        return Pending(session.id, waiting_reason(session, core.now()))


def still_waiting(core: Pamcore, session_id: int) -> str | None:
    """The waiting room's poll: why it still waits, ``None`` once connectable; a refusal
    (PolicyDenied) when it was denied, canceled or failed meanwhile."""
    with core.reader() as db:
        session = get_session(db, session_id)
        status = Status(session.status)
        if status in CONNECTABLE:
            return None
        if status in OPEN:
            return waiting_reason(session, core.now())
        raise PolicyDenied(finished_reason(session, core.now()))


def admit(
    core: Pamcore,
    user_id: int,
    activity: str | None,
    resource: str,
    peer: str,
    session_id: int | None = None,
) -> Ticket:
    """Authorise the connection (audited) and count it as live; raises PamError.
    ``session_id`` pins the session (the browser terminal's token names one)."""
    with core.unit() as db:
        admitted = admit_connection(
            core, db, user_id, resource, PROTOCOL, peer, activity, session_id
        )
        grant, target = admitted.grant, admitted.resource
        session: ActivitySession = grant.session
        return Ticket(
            connection_id=admitted.live.id,
            session_id=session.id,
            username=admitted.user.username,
            resource_name=target.name,
            ends_at=grant.ends_at,
            warning=dt.timedelta(minutes=session.profile.warning_minutes),
            extendable=session.profile.allows_extension,
            recording=session.profile.recording,
            target=TargetSpec(
                resource_id=target.id,
                resource_name=target.name,
                address=target.address,
                port=grant.port,
                username=grant.login_account,
                password=grant.password,
                private_key=grant.private_key,
                pinned_key=target.host_key,
                algorithms=ssh_algorithms(core.hooks, target, core.config),
            ),
            key_policy=Resource(
                name=target.name,
                host_key=target.host_key,
                trust_on_first_use=target.trust_on_first_use,
            ),
            assistants=tuple(ssh_terminal_assistants(core.hooks, core, db, session, target)),
        )


def redeem(core: Pamcore, token: str, secret: str) -> TerminalPass:
    """A browser terminal's token, spent on every node; raises AuthenticationFailed."""
    with core.reader() as db:
        return redeem_terminal_token(core, db, token, PROTOCOL, secret)


def host_key_outcome(
    core: Pamcore, ticket: Ticket, line: str, offered: str, refusal: str | None
) -> None:
    """After the key exchange: pin a first-use key, or audit a refused one."""
    with core.unit() as db:
        if refusal is None:
            pin_host_key(core, db, ticket.target.resource_id, line, ticket.username)
            return
        core.audit(
            db,
            ticket.username,
            "connection.host_key_refused",
            target=ticket.resource_name,
            session_id=ticket.session_id,
            protocol=PROTOCOL,
            offered=offered,
            reason=refusal,
        )


def handshake_hint(core: Pamcore, resource_id: int, error: str) -> str | None:
    with core.reader() as db:
        resource = db.get(Resource, resource_id)
        return ssh_handshake_hint(core.hooks, resource, error, core.config) if resource else None


def legacy_algorithms_used(
    core: Pamcore, ticket: Ticket, used: dict[str, str], legacy: list[str]
) -> None:
    """Audit a connection that negotiated algorithms only a plugin enabled (the
    dashboard's badge reads this event)."""
    with core.unit() as db:
        core.audit(
            db,
            ticket.username,
            LEGACY_ALGORITHMS,
            target=ticket.resource_name,
            session_id=ticket.session_id,
            protocol=PROTOCOL,
            connection=ticket.connection_id,
            legacy=",".join(legacy),
            **used,
        )


def forwarding_refused(
    core: Pamcore, login: DirectConnectName, kind: str, where: str, peer: str
) -> None:
    """Audit a refused forwarding request (``ssh -L``, ``-D``, ``-W``, ``-R``): ``kind`` is
    the SSH channel or request type, ``where`` its destination or listening address."""
    with core.unit() as db:
        core.audit(
            db,
            login.username,
            "connection.forwarding_refused",
            target=login.resource or "",
            protocol=PROTOCOL,
            kind=kind,
            destination=where,
            peer=peer,
        )
