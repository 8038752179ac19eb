"""Phase A's questions to the core: who is connecting (the one-time routing token of the
dashboard's ``.rdp`` file, or the DirectConnect login ``user+activity+resource`` typed in
the client), whether their password signs in, and whether the session can be used now;
then a one-time redirect token for Phase B. A session that cannot be used yet is
polled for the front's waiting room, for at most ``[plugins.rdp] waiting_room_minutes``
by the core's clock; one that finished (a stale ``.rdp`` file's ended session) is refused
in Phase A with how it finished, before any redirection.

**Second factor.** RDP's Client Info PDU has one password field and the inline prompt one
input line, so a user with TOTP types the password immediately followed by the current
six-digit code (``Secr3t-Pw123456``), in the client or at the prompt
(:func:`pamcore.proxy.sign_in_appended`). A password alone is refused for them with a
sentence that says so; it is not counted as a wrong password.

The proxy kit's calls are synchronous: they run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, PamError, PolicyDenied
from pamcore.proxy import (
    GRAMMAR,
    ConnectionPass,
    DirectConnectName,
    format_utc,
    instance_secret,
    parse_login,
    redeem_token,
    route,
    sign_in_appended,
    still_waiting,
)
from pamcore_rdp.pdu.clientinfo import ClientInfo
from pamcore_rdp.pdu.x224 import ConnectionRequest
from pamcore_rdp.proxy.client_leg import sentence
from pamcore_rdp.proxy.front import Outcome, Redirect, Retry, Visitor, Waiting
from pamcore_rdp.proxy.redirect_tokens import RedirectTokens
from pamcore_rdp.proxy.target import PROTOCOL
from pamcore_rdp.rdpfile import RDP_FILE, file_token
from pamcore_rdp.settings import DEFAULT_WAITING_ROOM_MINUTES


class FileTokens:
    """Redeems the routing tokens of ``.rdp`` files, once each across every node."""

    def __init__(self, core: Pamcore) -> None:
        self.core = core

    def redeem(self, token: str) -> ConnectionPass:
        """The token's pass (user, session, resource); raises PamError with the reason."""
        secret = instance_secret(self.core)
        if secret is None:
            raise PolicyDenied("this proxy cannot check .rdp files (no instance secret key)")
        return redeem_token(self.core, token, PROTOCOL, secret, RDP_FILE)


@dataclass(frozen=True)
class _ByName:
    """The first connection named a DirectConnect login."""

    login: DirectConnectName


@dataclass(frozen=True)
class _ByFile:
    """The first connection carried a ``.rdp`` file's routing token: user and session fixed."""

    redeemed: ConnectionPass


@dataclass(frozen=True)
class _Pending:
    """A signed-in user's session that waits, and when the waiting room gives up (core
    clock)."""

    user_id: int
    session_id: int
    resource_name: str
    until: dt.datetime


class CoreGate:
    """The :class:`pamcore_rdp.proxy.front.Gate` of one client connection."""

    def __init__(
        self,
        core: Pamcore,
        redirects: RedirectTokens,
        file_tokens: FileTokens,
        client_ip: str,
        waiting_room: dt.timedelta = dt.timedelta(minutes=DEFAULT_WAITING_ROOM_MINUTES),
    ) -> None:
        self.core = core
        self.redirects = redirects
        self.file_tokens = file_tokens
        self.client_ip = client_ip
        self.waiting_room = waiting_room

    async def identify(self, request: ConnectionRequest, info: ClientInfo) -> Visitor:
        """The ``.rdp`` file's token when it redeems; else the DirectConnect login from
        Client Info, or from the ``mstshash`` cookie (the file's user name is the login,
        so a spent token still routes by name)."""
        token = file_token(request.routing_token or "")
        refusal: PamError | None = None
        if token is not None:
            try:
                redeemed = await asyncio.to_thread(self.file_tokens.redeem, token)
            except PamError as exc:
                refusal = exc
            else:
                return Visitor(redeemed.username, redeemed.resource_name, _ByFile(redeemed))
        text = info.username or request.cookie or ""
        if not text:
            raise refusal or PolicyDenied(
                f"Type your login as {GRAMMAR} in the client's user name."
            )
        login = parse_login(text)
        if login.resource is None:
            raise refusal or PolicyDenied(
                f"'{text}' names no resource: log in as user+resource or user+activity+resource."
            )
        return Visitor(login.username, login.resource, _ByName(login))

    async def sign_in(self, visitor: Visitor, password: str) -> Outcome:
        """Password, then the session (found or requested); a redirect token when it can be used."""
        try:
            user_id = await asyncio.to_thread(
                sign_in_appended, self.core, visitor.username, password
            )
        except AuthenticationFailed as exc:
            return Retry(sentence(str(exc)))
        where = visitor.context
        if isinstance(where, _ByFile):
            # The token was issued for an Available session: one that finished since is
            # refused here, saying so (a redirection would only be refused in Phase B).
            session_id, resource = where.redeemed.session_id, where.redeemed.resource_name
            waiting = await asyncio.to_thread(still_waiting, self.core, session_id)
        else:
            assert isinstance(where, _ByName) and where.login.resource is not None
            found = await asyncio.to_thread(
                route,
                self.core,
                user_id,
                where.login.activity,
                where.login.resource,
                PROTOCOL,
            )
            session_id, resource = found.session_id, found.resource_name
            waiting = found.waiting
        if waiting is None:
            token = await asyncio.to_thread(
                self.redirects.issue, user_id, session_id, resource, self.client_ip
            )
            return Redirect(token)
        until = self.core.now() + self.waiting_room
        return self._waiting(_Pending(user_id, session_id, resource, until), waiting)

    async def poll(self, waiting: Waiting) -> Redirect | Waiting:
        """The session again: a redirect token once it is Available; a refusal when it finished
        (denied, canceled, ended) or the waiting room's bound passed."""
        pending = waiting.context
        assert isinstance(pending, _Pending)
        reason = await asyncio.to_thread(still_waiting, self.core, pending.session_id)
        if reason is None:
            token = await asyncio.to_thread(
                self.redirects.issue,
                pending.user_id,
                pending.session_id,
                pending.resource_name,
                self.client_ip,
            )
            return Redirect(token)
        if self.core.now() >= pending.until:
            minutes = self.waiting_room.total_seconds() / 60
            raise PolicyDenied(
                f"stopped waiting after {minutes:g} minute{'' if minutes == 1 else 's'}: "
                f"{reason}. "
                "Connect again to wait more"
            )
        return self._waiting(pending, reason)

    def _waiting(self, pending: _Pending, reason: str) -> Waiting:
        """The card of a waiting session: why, and what happens next."""
        until = format_utc(pending.until, self.core.now())
        return Waiting(
            f"{sentence(reason)} You go on to the desktop as soon as it is available. "
            f"Waiting until {until} at most; close the window to leave.",
            pending,
        )
