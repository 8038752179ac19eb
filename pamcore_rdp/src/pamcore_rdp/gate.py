"""Phase A's questions to the core: who is connecting (the one-time routing token of the
dashboard's ``.rdp`` file, or the DirectConnect login ``user+activity+resource`` typed in
the client), whether their password signs in, and whether the session can be used now;
then a one-time redirection ticket for Phase B.

The core's services are synchronous: they run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.directconnect import GRAMMAR, DirectConnectName, parse_login
from pamcore.errors import AuthenticationFailed, PamError, PolicyDenied
from pamcore.model import User
from pamcore.services.terminal_tokens import (
    SpentTokens,
    TerminalPass,
    instance_secret,
    redeem_terminal_token,
)
from pamcore_rdp import admission
from pamcore_rdp.clientinfo import ClientInfo
from pamcore_rdp.front import Admitted, Outcome, Retry, Visitor, Waiting, sentence
from pamcore_rdp.rdpfile import RDP_FILE, file_token
from pamcore_rdp.tickets import TicketBook
from pamcore_rdp.x224 import ConnectionRequest


class FileTokens:
    """Redeems the routing tokens of ``.rdp`` files, once each, in this listener."""

    def __init__(self, core: Pamcore) -> None:
        self.core = core
        self._spent = SpentTokens()

    def redeem(self, token: str) -> tuple[TerminalPass, str]:
        """The token's pass and the user's name; raises PamError with the reason."""
        secret = instance_secret(self.core)
        if secret is None:
            raise PolicyDenied("this proxy cannot check .rdp files (no instance secret key)")
        with self.core.reader() as db:
            granted = redeem_terminal_token(
                self.core, db, token, admission.PROTOCOL, secret, self._spent, RDP_FILE
            )
            user = db.get(User, granted.user_id)
            if user is None:
                raise PolicyDenied("the user of this .rdp file no longer exists")
            return granted, user.username


@dataclass(frozen=True)
class _ByName:
    """The first connection named a DirectConnect login."""

    login: DirectConnectName


@dataclass(frozen=True)
class _ByFile:
    """The first connection carried a ``.rdp`` file's routing token: user and session fixed."""

    granted: TerminalPass


class CoreGate:
    """The :class:`pamcore_rdp.front.Gate` of one client connection."""

    def __init__(
        self, core: Pamcore, tickets: TicketBook, file_tokens: FileTokens, client_ip: str
    ) -> None:
        self.core = core
        self.tickets = tickets
        self.file_tokens = file_tokens
        self.client_ip = client_ip

    async def identify(self, request: ConnectionRequest, info: ClientInfo) -> Visitor:
        """The ``.rdp`` file's token when it redeems; else the DirectConnect login from
        Client Info, or from the ``mstshash`` cookie (the file's user name is the login,
        so a spent token still routes by name)."""
        token = file_token(request.routing_token or "")
        refusal: PamError | None = None
        if token is not None:
            try:
                granted, username = await asyncio.to_thread(self.file_tokens.redeem, token)
            except PamError as exc:
                refusal = exc
            else:
                return Visitor(username, granted.resource_name, _ByFile(granted))
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
        """Password, then the session (found or requested); a ticket when it can be used."""
        try:
            user_id = await asyncio.to_thread(
                admission.sign_in_password, self.core, visitor.username, password
            )
        except AuthenticationFailed as exc:
            return Retry(sentence(str(exc)))
        where = visitor.context
        if isinstance(where, _ByFile):
            # The token was issued for an Available session; Phase B's admission checks it
            # again and shows a refusal if it ended meanwhile.
            session_id, resource = where.granted.session_id, where.granted.resource_name
        else:
            assert isinstance(where, _ByName) and where.login.resource is not None
            route = await asyncio.to_thread(
                admission.resolve_login,
                self.core,
                user_id,
                where.login.activity,
                where.login.resource,
            )
            if route.waiting is not None:
                return Waiting(sentence(route.waiting))
            session_id, resource = route.session_id, route.resource_name
        return Admitted(self.tickets.issue(user_id, session_id, resource, self.client_ip))
