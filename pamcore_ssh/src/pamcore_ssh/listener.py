"""The SSH proxy listener started by ``pamcore run`` / ``pamcore proxy``: an asyncssh
server offering modern algorithms only, and a once-a-second watch that applies session
ends, extensions and termination requests to the live connections it holds.

One watch per listener (not per connection) keeps a thousand idle sessions at one small
query a second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from collections.abc import Coroutine
from typing import Any

import asyncssh

from pamcore.core import Pamcore
from pamcore.services.common import worker_name
from pamcore.services.connections import session_ends, to_terminate
from pamcore_ssh import admission
from pamcore_ssh.admission import Ticket
from pamcore_ssh.hostkeys import proxy_host_key
from pamcore_ssh.recording import Budget
from pamcore_ssh.relay import Link
from pamcore_ssh.server import ProxyServer
from pamcore_ssh.session_recording import SessionRecordings, recording_cap
from pamcore_ssh.target import close_target

log = logging.getLogger(__name__)

#: Running listeners, so the session hooks (extended, ending) reach their connections.
LISTENERS: weakref.WeakSet[ProxyListener] = weakref.WeakSet()
WATCH_SECONDS = 1.0
_WEAK = ("sha1", "md5", "cbc", "3des", "blowfish", "arcfour", "cast128", "rsa1024")


def modern(names: list[bytes]) -> list[str]:
    """asyncssh's defaults without SHA-1, MD5, CBC and other weak algorithms."""
    return [n.decode() for n in names if not any(w in n.decode().lower() for w in _WEAK)]


def user_facing_algorithms() -> dict[str, list[str]]:
    """What the proxy offers clients, whatever the outgoing side needs; AES-GCM first
    (cheapest per byte in asyncssh, see the engineering notes)."""
    from asyncssh.encryption import get_default_encryption_algs
    from asyncssh.kex import get_default_kex_algs
    from asyncssh.mac import get_default_mac_algs

    ciphers = modern(get_default_encryption_algs())
    ciphers.sort(key=lambda n: "gcm" not in n)
    return {
        "kex_algs": modern(get_default_kex_algs()),
        "encryption_algs": ciphers,
        "mac_algs": modern(get_default_mac_algs()),
    }


class ProxyListener:
    def __init__(self, core: Pamcore, host: str, port: int) -> None:
        self.core = core
        self.host = host
        self._requested_port = port
        self._server: asyncssh.SSHAcceptor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._links: set[Link] = set()
        self._finishing: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._recording_cap = recording_cap(core.config)

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.get_port())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
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
        self._watch = asyncio.create_task(self._watch_loop(), name="ssh-proxy-watch")
        LISTENERS.add(self)
        log.info("ssh proxy listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, close every live connection, record them closed and register
        their recordings (for up to 10 s)."""
        LISTENERS.discard(self)
        if self._watch is not None:
            self._watch.cancel()
        if self._server is None:
            return
        self._server.close()
        links = list(self._links)
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

    def track(self, link: Link) -> None:
        self._links.add(link)

    def recordings_for(self, ticket: Ticket) -> SessionRecordings | None:
        """The connection's recordings when its session is recorded, sharing the session's
        budget with its other live connections here."""
        if not ticket.recording:
            return None
        budget = next(
            (
                link.recordings.budget
                for link in self._links
                if link.ticket.session_id == ticket.session_id and link.recordings is not None
            ),
            None,
        )
        if budget is None:
            budget = Budget(self._recording_cap)
            budget.left -= ticket.recorded_bytes
        return SessionRecordings(self.core, ticket, budget, self.in_background)

    def finish(self, link: Link, reason: str) -> None:
        """The client connection is gone: close the target, count the connection closed."""
        if link not in self._links:
            return
        self._links.discard(link)
        self.in_background(self._finish(link, reason))

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after its caller; :meth:`stop` waits for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, link: Link, reason: str) -> None:
        await close_target(link.target)
        try:
            await asyncio.to_thread(admission.closed, self.core, link.ticket, reason)
        except Exception:
            log.exception(
                "recording the close of ssh connection #%s failed", link.ticket.connection_id
            )

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if not self._links:
                continue
            try:
                ends, doomed = await asyncio.to_thread(
                    self._poll, [link.ticket.session_id for link in self._links]
                )
            except Exception:
                log.exception("ssh proxy watch failed; retrying")
                continue
            now = self.core.now()
            for link in list(self._links):
                if link.ticket.connection_id in doomed:
                    link.close(
                        doomed[link.ticket.connection_id] or "terminated by an administrator"
                    )
                else:
                    link.watch.update(ends.get(link.ticket.session_id), now)

    def _poll(self, session_ids: list[int]) -> tuple[dict[int, dt.datetime | None], dict[int, str]]:
        with self.core.reader() as db:
            return session_ends(db, session_ids), dict(to_terminate(db, worker_name()))

    # -- session hooks, called from any thread -----------------------------------------------

    def session_extended(self, session_id: int, new_end: dt.datetime) -> None:
        self._call_in_loop(self._apply, session_id, new_end)

    def session_ending(self, session_id: int) -> None:
        self._call_in_loop(self._apply, session_id, None)

    def _call_in_loop(self, func, *args) -> None:  # type: ignore[no-untyped-def]
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(func, *args)

    def _apply(self, session_id: int, ends_at: dt.datetime | None) -> None:
        now = self.core.now()
        for link in list(self._links):
            if link.ticket.session_id == session_id:
                link.watch.update(ends_at, now)
