"""The RDP proxy listener started by ``pamcore run`` / ``pamcore proxy``: it reads each
client's X.224 Connection Request and sends it to Phase B (the relay) when it carries a
redirect token that redeems, else to Phase A (the front, which signs the user in and
redirects back here with a redirect token). The core's watch
(:class:`pamcore.proxy.LiveConnections`) closes live relays whose session ended or that an
administrator terminated, at once when announced and at least once a second.

Nothing a client sends can stop the listener: every connection's failure is logged (the
layer and what was malformed, never a secret) and only that connection closes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from contextlib import suppress

from pamcore.core import Pamcore
from pamcore.errors import PamError
from pamcore.proxy import UNEXPECTED, Admitted, LiveConnections, admit, close
from pamcore_rdp.certs import proxy_tls_context
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.wire import read_pdu
from pamcore_rdp.pdu.x224 import ConnectionRequest, parse_connection_request
from pamcore_rdp.proxy import front
from pamcore_rdp.proxy.client_leg import ClientLeg, FrontClosed, refuse, sentence
from pamcore_rdp.proxy.gate import CoreGate, FileTokens
from pamcore_rdp.proxy.recording import recording_cap
from pamcore_rdp.proxy.redirect_tokens import RedirectPass, RedirectRefused, RedirectTokens
from pamcore_rdp.proxy.relay import Relay
from pamcore_rdp.proxy.target import PROTOCOL, RdpTarget, rdp_target
from pamcore_rdp.rdpfile import file_token
from pamcore_rdp.settings import waiting_room

log = logging.getLogger(__name__)

#: How long a new connection may take to send its X.224 Connection Request.
REQUEST_TIMEOUT = 10.0
#: How long stop() waits for connections to record their close.
STOP_SECONDS = 10.0


class RdpListener:
    """The RDP proxy of one ``pamcore run`` / ``pamcore proxy`` process; its redirect
    tokens are held in the database, so the client's reconnection may reach any node."""

    def __init__(self, core: Pamcore, host: str, port: int) -> None:
        self.core = core
        self.host = host
        self._requested_port = port
        self.redirects = RedirectTokens(core)
        #: How long a connection waits for its session (``[plugins.rdp]``, checked here).
        self.waiting_room = waiting_room(core.config)
        #: Each session's recording cap in bytes (``[plugins.rdp]``, checked here too).
        self.recording_cap = recording_cap(core.config)
        #: Seconds a new connection has for its Connection Request (tests shorten it).
        self.request_timeout = REQUEST_TIMEOUT
        self.file_tokens = FileTokens(core)
        self._server: asyncio.Server | None = None
        self._tls: ssl.SSLContext | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._relays: LiveConnections[Relay] = LiveConnections(core, "rdp proxy")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def relays(self) -> tuple[Relay, ...]:
        """The live relays (their banners and counters, for tests and the bench)."""
        return tuple(relay for _, relay in self._relays.items())

    async def start(self) -> None:
        self._tls = await asyncio.to_thread(proxy_tls_context, self.core)
        self._server = await asyncio.start_server(self._accept, self.host, self._requested_port)
        self._relays.watch(Relay.close, _update)
        log.info("rdp proxy listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, close every connection and let them record their close."""
        await self._relays.stop_watch()  # unsubscribed before the loop may close
        if self._server is None:
            return
        self._server.close()
        for relay in self.relays:
            relay.close("the proxy stopped")
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=STOP_SECONDS)
            for task in pending:
                task.cancel()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), STOP_SECONDS)
        self._server = None

    # -- one connection ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = _peer_ip(writer)
        try:
            await self._serve(reader, writer, peer)
        except RdpProtocolError as exc:
            log.warning("rdp %s: %s; connection closed", peer, exc)
        except (FrontClosed, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            log.info("rdp %s: connection ended: %s", peer, exc or type(exc).__name__)
        except TimeoutError:
            log.info("rdp %s: the client stopped answering; connection closed", peer)
        except Exception:
            log.exception("rdp %s: unexpected failure; connection closed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        request = parse_connection_request(await read_pdu(reader, self.request_timeout))
        assert self._tls is not None
        conn = ClientLeg(reader, writer, peer)
        token = request.routing_token
        if token is None or file_token(token) is not None:
            gate = CoreGate(self.core, self.redirects, self.file_tokens, peer, self.waiting_room)
            await front.serve(conn, request, self._tls, gate)
            return
        try:
            redirect = await asyncio.to_thread(self.redirects.redeem, token, peer)
        except RedirectRefused as exc:
            log.info("rdp %s: redirect token refused: %s", peer, exc)
            await refuse(conn, request, self._tls, sentence(str(exc)))
            return
        await self._relay(conn, request, redirect)

    async def _relay(
        self, conn: ClientLeg, request: ConnectionRequest, redirect: RedirectPass
    ) -> None:
        """Phase B: admit the connection (audited, counted live), relay it, record its
        close. A refusal is shown in the RDP window by the front."""
        assert self._tls is not None
        try:
            admitted: Admitted[RdpTarget] = await asyncio.to_thread(
                admit,
                self.core,
                PROTOCOL,
                redirect.user_id,
                redirect.resource_name,
                peer=conn.peer,
                session_id=redirect.session_id,
                recording_cap=self.recording_cap,
                extra=rdp_target,
            )
        except PamError as exc:
            log.info("rdp %s: relay refused: %s", conn.peer, exc)
            await refuse(conn, request, self._tls, sentence(str(exc)))
            return
        except Exception:
            log.exception("rdp %s: admission failed", conn.peer)
            await refuse(conn, request, self._tls, sentence(UNEXPECTED))
            return
        relay = Relay(self.core, admitted, conn.reader, conn.writer, request, self._tls)
        self._relays.add(admitted, relay)
        reason = "the connection failed"
        try:
            reason = await relay.run()
        finally:
            self._relays.discard(relay)
            await close(self.core, admitted, reason)


def _update(relay: Relay, ends_at: dt.datetime | None, now: dt.datetime) -> None:
    """The watch's news for ``relay``: its banner, then the close when its session ended
    (``None``) or its end time passed."""
    if ends_at is None:
        relay.close("the session was ended")
        return
    relay.session_end(ends_at, now)
    if ends_at <= now:
        relay.close("session end time reached")


def _peer_ip(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if peer else "unknown"
