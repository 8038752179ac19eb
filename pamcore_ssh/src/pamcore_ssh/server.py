"""One client connection to the proxy: sign-in (password or registered key; a user with
TOTP signs in by keyboard-interactive, password then code), the DirectConnect login
resolved after sign-in, then every session channel relayed.

Refusals are one line in the user's terminal; an authentication failure is one auth
banner line (RFC 4252 §5.4), since no terminal exists yet. Forwarding is refused with a
reason and audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import asyncssh
from asyncssh.auth import KbdIntChallenge, KbdIntResponse

from pamcore.errors import PamError, PolicyDenied
from pamcore.proxy import (
    DirectConnectName,
    SignIn,
    choices,
    parse_login,
    route,
    sign_in,
    sign_in_code,
    sign_in_key,
    still_waiting,
)
from pamcore_ssh import admission, lobby
from pamcore_ssh.admission import PROTOCOL
from pamcore_ssh.hostkeys import fingerprint
from pamcore_ssh.process import RelayProcess
from pamcore_ssh.relay import Link

if TYPE_CHECKING:
    from pamcore_ssh.listener import ProxyListener

log = logging.getLogger(__name__)

#: What a client asking to forward a port is told (OpenSSH prints it after "open failed").
FORWARDING = "port forwarding (ssh -L, -D, -W) is not allowed through pamcore"
#: What a user is told when admitting the connection failed on our side.
UNEXPECTED = (
    "pamcore could not open this connection because of an internal error (the operator "
    "can find it in the proxy's log); connect again in a moment"
)

#: Wrong passwords or codes per connection before those methods are withdrawn (as OpenSSH's
#: NumberOfPasswordPrompts), so a client retrying in a loop cannot lock the account itself.
MAX_TRIES = 3


class ProxyServer(asyncssh.SSHServer):
    """asyncssh makes one per client connection."""

    def __init__(self, listener: ProxyListener) -> None:
        self.listener = listener
        self.core = listener.core
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer = ""
        self.login: DirectConnectName | None = None
        self.user_id: int | None = None
        self.link: Link | None = None
        self._keys_tried: dict[str, int | None] = {}
        #: Keyboard-interactive: the user whose password was right and whose code is due.
        self._code_due: int | None = None
        self._failures = 0
        self._admitting = asyncio.Lock()

    # -- connection and sign-in ------------------------------------------------------------

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer = f"{peer[0]}:{peer[1]}"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.listener.finish(self.link, self.link.closing or "closed by the client")
            self.link = None

    def begin_auth(self, username: str) -> bool:
        try:
            self.login = parse_login(username)
        except PamError as exc:
            self._banner(str(exc))
        return True

    def _banner(self, text: str) -> None:
        if self.conn is not None:
            self.conn.send_auth_banner(f"pamcore: {text}\r\n")

    def password_auth_supported(self) -> bool:
        return self._failures < MAX_TRIES

    async def validate_password(self, username: str, password: str) -> bool:
        """Password alone: refused for a user with TOTP, who must also give a code."""
        signed_in = await self._password_step(password)
        if signed_in is None:
            return False
        if signed_in.needs_code:
            self._banner("this account also needs a verification code; use keyboard-interactive")
            return False
        self.user_id = signed_in.user_id
        return True

    def kbdint_auth_supported(self) -> bool:
        return self._failures < MAX_TRIES

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> KbdIntChallenge:
        """Keyboard-interactive (RFC 4256): the password first; a code follows for TOTP."""
        self._code_due = None
        return "", "", "", [("Password: ", False)]

    async def validate_kbdint_response(
        self, username: str, responses: KbdIntResponse
    ) -> KbdIntChallenge:
        if len(responses) != 1:
            return False
        if self._code_due is None:
            signed_in = await self._password_step(responses[0])
            if signed_in is None:
                return False
            if not signed_in.needs_code:
                self.user_id = signed_in.user_id
                return True
            self._code_due = signed_in.user_id
            return "", "", "", [("Verification code: ", False)]
        user_id, self._code_due = self._code_due, None
        try:
            self.user_id = await asyncio.to_thread(sign_in_code, self.core, user_id, responses[0])
        except PamError as exc:
            self._failures += 1
            self._banner(str(exc))
            return False
        return True

    async def _password_step(self, password: str) -> SignIn | None:
        """Who a right password signs in, and whether a code is due; ``None`` (told in a
        banner) if not right."""
        if self.login is None:
            return None
        try:
            return await asyncio.to_thread(sign_in, self.core, self.login.username, password)
        except PamError as exc:
            self._failures += 1
            self._banner(str(exc))
            return None

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        """Called once to ask and once with the signature: the answer is kept per key."""
        if self.login is None:
            return False
        fp = fingerprint(key)
        if fp not in self._keys_tried:
            try:
                self._keys_tried[fp] = await asyncio.to_thread(
                    sign_in_key, self.core, self.login.username, fp
                )
            except PamError:
                self._keys_tried[fp] = None
        self.user_id = self._keys_tried[fp] or self.user_id
        return self._keys_tried[fp] is not None

    # -- channels: sessions relayed, forwarding refused (RFC 4254 §7) ------------------------

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        """``ssh -L``, ``-D`` and ``-W``: refused with a reason OpenSSH prints."""
        self._forwarding_refused("direct-tcpip", f"{dest_host}:{dest_port}")
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, FORWARDING)

    def unix_connection_requested(self, dest_path: str) -> bool:
        """``ssh -L`` to a Unix socket: refused as TCP forwarding is."""
        self._forwarding_refused("direct-streamlocal", dest_path)
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, FORWARDING)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        """``ssh -R``: a global request's failure carries no reason (RFC 4254 §4)."""
        self._forwarding_refused("tcpip-forward", f"{listen_host}:{listen_port}")
        return False

    def _forwarding_refused(self, kind: str, where: str) -> None:
        log.info("ssh %s from %s: %s to %s refused", self.login, self.peer, kind, where)
        if self.login is not None:
            self.listener.in_background(
                asyncio.to_thread(
                    admission.forwarding_refused, self.core, self.login, kind, where, self.peer
                )
            )

    def session_requested(self) -> RelayProcess:
        return RelayProcess(self._serve_channel)

    async def _serve_channel(self, process: RelayProcess) -> None:
        try:
            link = await self._admitted(process)
        except PamError as exc:
            log.info("ssh refused %s from %s: %s", self.login, self.peer, exc)
            self._refuse(process, str(exc))
            return
        except Exception:
            # A fault of ours or of the database (never the user's): logged with its
            # traceback for the operator, the user told in words, no half-made link.
            log.exception("ssh admission of %s from %s failed", self.login, self.peer)
            self._refuse(process, UNEXPECTED)
            return
        await link.relay(process)

    @staticmethod
    def _refuse(process: RelayProcess, line: str) -> None:
        with contextlib.suppress(OSError, asyncssh.Error):  # the client may be gone
            if process.term_type is not None:
                process.stderr.write(b"\r\n")
            lobby.say(process, line)
            process.exit(1)

    async def _admitted(self, process: RelayProcess) -> Link:
        """The connection's link, made by its first channel (later ones share it)."""
        async with self._admitting:
            if self.link is not None:
                return self.link
            assert self.login is not None and self.user_id is not None and self.conn
            activity, resource = await self._where(process)
            self.link = await self.listener.open_link(
                self.conn, self.user_id, activity, resource, self.peer
            )
            return self.link

    async def _where(self, process: RelayProcess) -> tuple[str | None, str]:
        """(activity, resource) from the login name: the menu and the waiting room."""
        assert self.login is not None and self.user_id is not None
        if self.login.resource is None:
            options = await asyncio.to_thread(choices, self.core, self.user_id, PROTOCOL)
            if not options:
                raise PolicyDenied(
                    "you have no Available session; request one in the dashboard, or log "
                    "in as user+activity+resource"
                )
            chosen = options[0] if len(options) == 1 else await lobby.pick(process, options)
            return chosen.activity, chosen.resource
        if self.login.activity is not None:
            found = await asyncio.to_thread(
                route,
                self.core,
                self.user_id,
                self.login.activity,
                self.login.resource,
                PROTOCOL,
            )
            if found.waiting is not None:
                await lobby.wait_until_available(
                    process,
                    found.waiting,
                    lambda: asyncio.to_thread(still_waiting, self.core, found.session_id),
                )
        return self.login.activity, self.login.resource
