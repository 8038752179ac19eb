"""The SSH proxy listener started by ``pamcore run`` / ``pamcore proxy``: an asyncssh
server offering modern algorithms only (and, beside it, the browser terminal's WebSocket
listener), the admission of a client into a link to its target, and the core's watch
(:class:`pamcore.proxy.LiveConnections`) that applies session ends, extensions and
termination requests to the live connections, at once when announced and at least once a
second.

One watch per listener (not per connection) keeps a thousand idle sessions at one small
query a second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Coroutine
from typing import Any

import asyncssh

from pamcore.core import Pamcore
from pamcore.errors import PamError, PolicyDenied
from pamcore.proxy import (
    Admitted,
    LiveConnections,
    admit,
    close,
    extend,
    extensions_left_phrase,
    instance_secret,
    session_end,
)
from pamcore_ssh import admission
from pamcore_ssh.admission import PROTOCOL
from pamcore_ssh.browser import TerminalListener
from pamcore_ssh.hostkeys import proxy_host_key
from pamcore_ssh.relay import Client, Link
from pamcore_ssh.server import ProxyServer
from pamcore_ssh.session_end import EndWatch
from pamcore_ssh.session_recording import SessionRecordings, recording_cap
from pamcore_ssh.target import (
    HostKeySeen,
    SshTarget,
    TargetError,
    close_target,
    connect_target,
    key_refusal,
    legacy_in_use,
    negotiated,
    ssh_target,
    target_spec,
)

log = logging.getLogger(__name__)

#: What the proxy offers its users: a current OpenSSH server's defaults (sshd_config(5),
#: OpenSSH 10) less what ssh-audit flags there: the NIST-curve and finite-field key
#: exchanges, umac-64 and the encrypt-and-MAC modes. Post-quantum hybrid key exchange
#: first, curve25519 for clients without it; AES-GCM first among the ciphers (cheapest per
#: byte in asyncssh, docs/design/ssh.md §4). The side toward targets is separate
#: (:mod:`pamcore_ssh.target`, and per resource the Cisco legacy plugin).
USER_FACING_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "kex_algs": (
        "mlkem768x25519-sha256",
        "sntrup761x25519-sha512",
        "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
    ),
    "encryption_algs": (
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes256-ctr",
        "aes192-ctr",
        "aes128-ctr",
    ),
    "mac_algs": (
        "umac-128-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
    ),
}


def user_facing_algorithms() -> dict[str, list[str]]:
    """:data:`USER_FACING_ALGORITHMS` that this asyncssh build has (sntrup761 needs
    liboqs), as ``create_server`` keyword arguments."""
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.kex import get_kex_algs
    from asyncssh.mac import get_mac_algs

    supported = {
        "kex_algs": get_kex_algs(),
        "encryption_algs": get_encryption_algs(),
        "mac_algs": get_mac_algs(),
    }
    return {
        kind: [name for name in names if name.encode() in supported[kind]]
        for kind, names in USER_FACING_ALGORITHMS.items()
    }


class ProxyListener:
    def __init__(
        self, core: Pamcore, host: str, port: int, terminal_port: int | None = None
    ) -> None:
        """``terminal_port``: where the browser terminal listens (``None``: it does not)."""
        self.core = core
        self.host = host
        self._requested_port = port
        self._terminal_port = terminal_port
        self.terminals: TerminalListener | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self.live: LiveConnections[Link] = LiveConnections(core, "ssh proxy")
        self._finishing: set[asyncio.Task[None]] = set()
        self._recording_cap = recording_cap(core.config)

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.get_port())

    async def start(self) -> None:
        key = await asyncio.to_thread(proxy_host_key, self.core)
        self._server = await asyncssh.create_server(
            lambda: ProxyServer(self),
            self.host,
            self._requested_port,
            server_host_keys=[key],
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            login_timeout=60,
            keepalive_interval=30,
            **user_facing_algorithms(),
        )
        self.live.watch(Link.close, lambda link, ends_at, now: link.watch.update(ends_at, now))
        log.info("ssh proxy listening on %s:%s", self.host, self.port)
        if self._terminal_port is not None:
            await self._start_terminals(self._terminal_port)

    async def _start_terminals(self, port: int) -> None:
        """The browser terminal, when the instance has a secret key to check its tokens;
        without one (or on a busy port) the SSH listener still serves native clients."""
        secret = await asyncio.to_thread(instance_secret, self.core)
        if secret is None:
            log.error("browser terminal not started: no instance secret key (pamcore init)")
            return
        terminals = TerminalListener(self, secret)
        try:
            await terminals.start(self.host, port)
        except OSError as exc:
            log.error("browser terminal not started on port %s: %s", port, exc.strerror or exc)
            return
        self.terminals = terminals

    async def stop(self) -> None:
        """Stop accepting, close every live connection, record them closed and register
        their recordings (for up to 10 s)."""
        await self.live.stop_watch()
        if self._server is None:
            return
        self._server.close()
        if self.terminals is not None:
            await self.terminals.stop()
        links = [link for _, link in self.live.items()]
        for link in links:
            link.client.close()
            self.finish(link, "the proxy stopped")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            if self._finishing:
                await asyncio.wait(set(self._finishing), timeout=deadline - loop.time())
            elif any(link.recordings and link.recordings.recording for link in links):
                await asyncio.sleep(0.05)  # channels still closing their recorders
            else:
                break
        await self._server.wait_closed()
        self._server = None

    # -- live connections ------------------------------------------------------------------

    async def open_link(
        self,
        client: Client,
        user_id: int,
        activity: str | None,
        resource: str,
        peer: str,
        session_id: int | None = None,
    ) -> Link:
        """Admit ``user_id`` (audited, counted live), connect to the target with the
        session's credential and its host key checked, and track the link; raises PamError
        with the line the user sees."""
        admitted = await asyncio.to_thread(
            admit,
            self.core,
            PROTOCOL,
            user_id,
            resource,
            peer=peer,
            activity=activity,
            session_id=session_id,
            recording_cap=self._recording_cap,
            extra=ssh_target,
        )
        try:
            target = await self._connect(admitted)
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, PamError) else "target connection failed"
            await close(self.core, admitted, reason)
            raise
        link = Link(admitted, target, client, self._end_watch, self.recordings_for(admitted))
        self.live.add(admitted, link)
        log.info(
            "ssh open: %s to %s as %s (session #%s)",
            admitted.username,
            admitted.resource_name,
            admitted.login_account,
            admitted.session_id,
        )
        return link

    async def _connect(self, admitted: Admitted[SshTarget]) -> asyncssh.SSHClientConnection:
        seen = HostKeySeen()
        spec = target_spec(admitted)
        try:
            target = await connect_target(
                spec,
                lambda line, offered: key_refusal(admitted, line, offered),
                seen,
                lambda error: asyncio.to_thread(
                    admission.handshake_hint, self.core, admitted.resource_id, error
                ),
            )
        except TargetError as exc:
            refusal = key_refusal(admitted, seen.line, seen.fingerprint) if seen.line else None
            if refusal is not None:
                await asyncio.to_thread(
                    admission.host_key_outcome,
                    self.core,
                    admitted,
                    seen.line,
                    seen.fingerprint,
                    refusal,
                )
            raise PolicyDenied(str(exc)) from None
        try:
            await asyncio.to_thread(
                admission.host_key_outcome, self.core, admitted, seen.line, seen.fingerprint, None
            )
            used = negotiated(target, seen)
            legacy = legacy_in_use(spec, used)
            if legacy:
                await asyncio.to_thread(
                    admission.legacy_algorithms_used, self.core, admitted, used, legacy
                )
        except BaseException:
            await close_target(target)
            raise
        return target

    def _end_watch(self, link: Link) -> EndWatch:
        """Warnings, Ctrl+X and the forced close for ``link``."""

        async def extended() -> str:
            return await asyncio.to_thread(self._extend, link.admitted.session_id)

        async def lookup() -> tuple[dt.datetime | None, dt.datetime]:
            ends_at = await asyncio.to_thread(session_end, self.core, link.admitted.session_id)
            return ends_at, self.core.now()

        return EndWatch(
            link.admitted.ends_at,
            link.admitted.warning,
            link.admitted.extendable,
            extend=extended,
            notify=link.notify,
            close=link.close,
            lookup=lookup,
        )

    def _extend(self, session_id: int) -> str:
        """Ctrl+X: the core's extend service decides (window, count, profile)."""
        try:
            extension = extend(self.core, session_id)
        except PamError as exc:
            return f"not extended: {exc}"
        return (
            f"session extended until {extension.new_end:%Y-%m-%d %H:%M} UTC "
            f"({extensions_left_phrase(extension)})"
        )

    def recordings_for(self, admitted: Admitted[SshTarget]) -> SessionRecordings | None:
        """The connection's recordings when its session is recorded, within the session's
        budget, which its connections on every node share."""
        if admitted.budget is None:
            return None
        return SessionRecordings(self.core, admitted, admitted.budget, self.in_background)

    def finish(self, link: Link, reason: str) -> None:
        """The client connection is gone: close the target, count the connection closed."""
        held = len(self.live)
        self.live.discard(link)
        if len(self.live) == held:  # finished already
            return
        self.in_background(self._finish(link, reason))

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after its caller; :meth:`stop` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, link: Link, reason: str) -> None:
        await close_target(link.target)
        await close(self.core, link.admitted, reason)
