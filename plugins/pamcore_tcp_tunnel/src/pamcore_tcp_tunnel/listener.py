"""The proxy side of the tunnel: sign in, admit, connect, relay until the end time.

The listener uses the proxy kit (:mod:`pamcore.proxy`): a user with a second factor
appends the current code to the password (``Secr3t-Pw123456``), as with RDP, since the
login line has one password field. The kit's watch moves each tunnel's hard stop when its
session is extended and cuts it when the session ends or an administrator terminates it,
whichever node made the change. Every step has a timeout, so a silent client, a slow
database or an unreachable resource never pins a connection. Database work runs in a
worker thread (``asyncio.to_thread``): the services are synchronous, and password hashing
must not stall other tunnels.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.errors import PamError
from pamcore.proxy import (
    UNEXPECTED,
    Admitted,
    LiveConnections,
    admit,
    close,
    sign_in_appended,
)
from pamcore_tcp_tunnel.wire import MAX_LINE, HandshakeError, Hello, one_line, parse_hello, relay

log = logging.getLogger(__name__)

PROTOCOL = "tcp"
HELLO_TIMEOUT = 15.0
AUTH_TIMEOUT = 20.0
CONNECT_TIMEOUT = 10.0


@dataclass(eq=False)
class Tunnel:
    """A live tunnel as the watch sees it: its hard stop, the end time that stop was set
    for, and why the proxy cut it (empty: its end time came)."""

    deadline: asyncio.Timeout
    ends_at: dt.datetime
    reason: str = ""


class TunnelListener:
    """One listening socket; each accepted connection is one tunnel."""

    def __init__(
        self, core: Pamcore, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.core = core
        self.host = host
        self._requested_port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tunnels: LiveConnections[Tunnel] = LiveConnections(core, "tcp tunnel")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self._requested_port, limit=MAX_LINE, ssl=self._ssl
        )
        self._tunnels.watch(self._cut, self._move)
        log.info("tcp tunnel listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting and close every live tunnel."""
        await self._tunnels.stop_watch()
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self._server.wait_closed()
        self._server = None

    # -- the watch's news ----------------------------------------------------------------------

    def _move(self, tunnel: Tunnel, ends_at: dt.datetime | None, now: dt.datetime) -> None:
        """Cut the tunnel when its session can no longer be used, else move its hard stop
        to the session's end time if that changed (an extension)."""
        if ends_at is None:
            self._cut(tunnel, "the session was ended")
        elif ends_at != tunnel.ends_at and not tunnel.deadline.expired():
            tunnel.ends_at = ends_at
            tunnel.deadline.reschedule(self._loop_time(ends_at))

    def _cut(self, tunnel: Tunnel, reason: str) -> None:
        if not tunnel.deadline.expired() and not tunnel.reason:
            tunnel.reason = reason
            tunnel.deadline.reschedule(asyncio.get_running_loop().time())

    def _loop_time(self, moment: dt.datetime) -> float:
        return asyncio.get_running_loop().time() + (moment - self.core.now()).total_seconds()

    # -- one tunnel -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer, peer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("tcp tunnel from %s failed", peer)
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                line = await reader.readuntil(b"\n")
            hello = parse_hello(line)
        except TimeoutError:
            return await _refuse(writer, f"no PAMCORE line within {HELLO_TIMEOUT:g} s")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return await _refuse(writer, "expected one PAMCORE line first")
        except HandshakeError as exc:
            return await _refuse(writer, str(exc))
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                admitted = await asyncio.to_thread(self._sign_in_and_admit, hello, peer)
        except PamError as exc:
            log.info("tcp tunnel refused for %s from %s: %s", hello.username, peer, exc)
            return await _refuse(writer, str(exc))
        except TimeoutError:
            return await _refuse(writer, "the check of your session took too long; try again")
        except Exception:
            log.exception("tcp tunnel admission of %s from %s failed", hello.username, peer)
            return await _refuse(writer, UNEXPECTED)
        reason = "closed"
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    target = await asyncio.open_connection(admitted.address, admitted.port)
            except (OSError, TimeoutError) as exc:
                why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or "error")
                reason = f"cannot reach {admitted.resource_name} on port {admitted.port} ({why})"
                return await _refuse(writer, reason)
            writer.write(b"OK\n")
            await writer.drain()
            log.info(
                "tcp tunnel open: %s to %s (session #%s)",
                admitted.username,
                admitted.resource_name,
                admitted.session_id,
            )
            reason = await self._relay_until_end(admitted, (reader, writer), target)
        finally:
            await close(self.core, admitted, reason)

    def _sign_in_and_admit(self, hello: Hello, peer: object) -> Admitted[None]:
        """The login line's password (with the code appended for a second factor), then
        the connection authorised and counted (worker thread)."""
        user_id = sign_in_appended(self.core, hello.username, hello.password)
        return admit(
            self.core,
            PROTOCOL,
            user_id,
            hello.resource,
            peer=_address(peer),
            activity=hello.activity,
        )

    async def _relay_until_end(
        self,
        admitted: Admitted[None],
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> str:
        """Relay until a side closes, the session's end time passes (hard stop) or the
        watch cuts the tunnel; returns why it stopped."""
        ends_at = admitted.ends_at
        tunnel = Tunnel(asyncio.timeout_at(self._loop_time(ends_at)), ends_at)
        self._tunnels.add(admitted, tunnel)
        try:
            async with tunnel.deadline:
                await relay(client, target)
        except TimeoutError:
            reason = tunnel.reason or "end time reached"
            log.info("tcp tunnel of session #%s closed: %s", admitted.session_id, reason)
            client[1].close()
            target[1].close()
            return reason
        finally:
            self._tunnels.discard(tunnel)
        return "closed"


def _address(peer: object) -> str:
    """``host:port`` of a socket's peer name, as the audit log shows it."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


async def _refuse(writer: asyncio.StreamWriter, reason: str) -> None:
    writer.write(f"ERR {one_line(reason)}\n".encode())
    try:
        async with asyncio.timeout(5):
            await writer.drain()
    except (OSError, TimeoutError):
        pass
