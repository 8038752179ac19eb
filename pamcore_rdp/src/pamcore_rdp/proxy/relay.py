"""Phase B (docs/design/rdp.md §3.1, §3.4): one client connection, admitted by the listener
after its redirect token redeemed (:class:`pamcore.proxy.Admitted` with an
:class:`~pamcore_rdp.proxy.target.RdpTarget`), relayed to its target with the vaulted
credential.

The relay never terminates MCS. It answers the client's X.224 Connection Request itself
(TLS on the client leg, with the proxy certificate), sends its own to the target and takes
the target's choice if it is one we requested, and its certificate if it is pinned or
issued by the operator's CA (:mod:`pamcore_rdp.proxy.trust`): TLS, or CredSSP (NLA) with the
vaulted credential (:mod:`pamcore_rdp.proxy.target`). Then it patches GCC
``serverSelectedProtocol`` in the client's MCS Connect Initial to that choice, rewrites the
Client Info PDU with the vaulted account, password and ``INFO_AUTOLOGON`` (as mstsc sends
its credentials on both NLA and TLS connections), and from there pumps bytes both ways
with backpressure (``drain``).

Every step of the setup has a timeout, and so has the whole setup; an idle connection
closes. The listener (:mod:`pamcore_rdp.proxy.listener`) admits the connection, calls
:meth:`Relay.close` at the session's end, on its ending or an administrator's termination
request, and audits the close with the reason :meth:`Relay.run` returns. Recording:
:mod:`pamcore_rdp.proxy.recording`; the session-end banner and Ctrl+X:
:mod:`pamcore_rdp.proxy.session_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.errors import ProtocolError
from pamcore.proxy import Admitted, relayed
from pamcore_rdp.pdu.activation import parse_confirm_active
from pamcore_rdp.pdu.clientinfo import SEC_INFO_PKT, rewrite_client_info
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.gcc import (
    IO_CHANNEL_ID,
    RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL,
    clear_early_capability_flags,
    patch_server_selected_protocol,
)
from pamcore_rdp.pdu.mcs import SEND_DATA_REQUEST, domain_pdu_choice, parse_send_data_request
from pamcore_rdp.pdu.share import PDUTYPE_CONFIRMACTIVEPDU, parse_share
from pamcore_rdp.pdu.wire import TPKT_VERSION, read_pdu
from pamcore_rdp.pdu.x224 import (
    DYNVC_GFX_PROTOCOL_SUPPORTED,
    EXTENDED_CLIENT_DATA_SUPPORTED,
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    ConnectionRequest,
    encode_connection_confirm,
)
from pamcore_rdp.proxy.client_leg import ClientLeg, FrontClosed, confirm_tls, refuse
from pamcore_rdp.proxy.recording import ConnectionRecording, Frames, PduRecorder
from pamcore_rdp.proxy.session_end import SessionEnd
from pamcore_rdp.proxy.target import (
    CHUNK,
    RdpTarget,
    TargetError,
    TargetLeg,
    negotiate_target,
    open_target,
    secure_target,
)

log = logging.getLogger(__name__)

#: RDP_NEG_RSP flags passed from the target's confirm to the client's (2.2.1.2.1); the
#: restricted-admin and redirected-authentication ones describe CredSSP on *our* leg.
_PASSED_FLAGS = EXTENDED_CLIENT_DATA_SUPPORTED | DYNVC_GFX_PROTOCOL_SUPPORTED
#: Client frames allowed between the Connect Initial and the Client Info PDU (Erect
#: Domain, Attach User, one Channel Join per channel): 31 static channels and some room.
_MAX_SEQUENCE_FRAMES = 40
#: How long the status card of a refusal may take (the front shows it for 6 s).
REFUSAL_SECONDS = 15.0
TO_TARGET = relayed("rdp", "to_target")
TO_CLIENT = relayed("rdp", "to_client")


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each step; ``idle``: no byte either way for that long closes."""

    connect: float = 10.0
    step: float = 15.0
    setup: float = 30.0
    idle: float = 3600.0


class Relay:
    r"""One admitted client connection and its target; the listener :meth:`run`\ s it once
    and :meth:`close`\ s it at the session's end."""

    def __init__(
        self,
        core: Pamcore,
        admitted: Admitted[RdpTarget],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: ConnectionRequest,
        client_tls: ssl.SSLContext,
        *,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        """``request``: the client's X.224 Connection Request, already read;
        ``client_tls``: the server-side context with the proxy certificate."""
        self.core = core
        self.admitted = admitted
        self.timeouts = timeouts
        self.recorder: PduRecorder | None = None
        self._client_reader = reader
        self._client_writer = writer
        self._request = request
        self._client_tls = client_tls
        self._target: TargetLeg | None = None
        self._target_writer: asyncio.StreamWriter | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._closing: str | None = None
        #: The client has its Connection Confirm; before that, a failure can still be
        #: shown in its window (the front's status card).
        self._confirmed = False
        self._stop = asyncio.Event()
        self._last_activity = time.monotonic()
        self.started = time.monotonic()
        #: Set once the Client Info is through and bytes are pumped (tests, the bench).
        self.established = asyncio.Event()
        #: Seconds from :meth:`run` to :attr:`established`.
        self.setup_seconds: float | None = None
        self.selected_protocol: int | None = None
        self.bytes = {"client": 0, "server": 0}
        self._client_frames = Frames()
        #: The session-end banner and Ctrl+X (:mod:`pamcore_rdp.proxy.session_end`).
        self.end = SessionEnd(core, admitted, writer)

    def close(self, reason: str) -> None:
        """Close both legs now; ``reason`` is logged and audited (the first one wins)."""
        if self._closing is None:
            self._closing = reason
        self._stop.set()

    async def run(self) -> str:
        """Set up and relay until either side closes or :meth:`close`; returns why it
        ended (a network or protocol failure is not raised: it is the reason)."""
        self.started = time.monotonic()
        recording = await self._start_recording() if self.admitted.budget is not None else None
        self.recorder = recording.recorder if recording is not None else None
        try:
            try:
                async with asyncio.timeout(self.timeouts.setup):
                    await self._setup()
            except TimeoutError:
                if self._closing is None:
                    raise TargetError(
                        f"the connection to {self.admitted.resource_name} was not set up within "
                        f"{self.timeouts.setup:g} s"
                    ) from None
            if self._closing is None:
                await self._pump()
        except (ProtocolError, RdpProtocolError) as exc:
            self.close(str(exc))
        except (OSError, EOFError, ssl.SSLError) as exc:
            self.close(_network_reason(exc, self.established.is_set()))
        finally:
            if not self._confirmed and self._closing is not None:
                await self._show_refusal(self._closing)
            await self._shut()
            reason = self._closing or "closed"
            if recording is not None:
                await recording.finish(reason)
        log.info(
            "rdp connection #%s (%s to %s) closed: %s; %d bytes from the client, %d from "
            "the target",
            self.admitted.connection_id,
            self.admitted.username,
            self.admitted.resource_name,
            reason,
            self.bytes["client"],
            self.bytes["server"],
        )
        return reason

    async def _start_recording(self) -> ConnectionRecording | None:
        return await ConnectionRecording.start(self.core, self.admitted)

    async def _setup(self) -> None:
        if not self._request.requested_protocols & PROTOCOL_SSL:
            self._confirmed = True
            self._client_writer.write(
                encode_connection_confirm(PROTOCOL_SSL, failure_code=SSL_REQUIRED_BY_SERVER)
            )
            raise ProtocolError(
                "the client did not offer TLS, which pamcore's RDP proxy requires "
                "(FreeRDP: /sec:tls; mstsc: any current version offers it)"
            )
        # The target first: while the client still waits for its Connection Confirm, a
        # refusal (unreachable, wrong vaulted password) can be painted in its window.
        reader, writer = await open_target(self.admitted, self.timeouts.connect)
        self._target_writer = writer
        confirm = await negotiate_target(
            self.core, self.admitted, reader, writer, self.timeouts.step
        )
        selected = confirm.selected_protocol
        self._target = await secure_target(
            self.core, self.admitted, reader, writer, selected, self.timeouts.step
        )
        self.selected_protocol = selected
        self._confirmed = True
        await confirm_tls(
            self._client_writer,
            encode_connection_confirm(PROTOCOL_SSL, confirm.flags & _PASSED_FLAGS),
            self._client_tls,
            self.timeouts.step,
        )
        await self._connect_initial()
        self._server_task = asyncio.create_task(self._server_to_client())
        await self._until_client_info()
        self.setup_seconds = time.monotonic() - self.started
        self.established.set()
        log.info(
            "rdp connection #%s: %s relayed to %s as %s (%s) after %.3f s",
            self.admitted.connection_id,
            self.admitted.username,
            self.admitted.resource_name,
            self.admitted.extra.account,
            "NLA" if selected != PROTOCOL_SSL else "TLS",
            self.setup_seconds,
        )

    async def _show_refusal(self, message: str) -> None:
        """Phase A's status card with ``message`` (:func:`~.client_leg.refuse`),
        bounded in time; a client that does not follow is simply closed."""
        peer = self._client_writer.get_extra_info("peername")
        conn = ClientLeg(
            self._client_reader, self._client_writer, str(peer[0]) if peer else "unknown"
        )
        try:
            async with asyncio.timeout(REFUSAL_SECONDS):
                await refuse(conn, self._request, self._client_tls, message)
        except (
            TimeoutError,
            FrontClosed,
            OSError,
            ssl.SSLError,
            ProtocolError,
            RdpProtocolError,
        ) as exc:
            log.info("rdp connection #%s: refusal not shown: %s", self.admitted.connection_id, exc)

    async def _connect_initial(self) -> None:
        """The client's MCS Connect Initial, with ``serverSelectedProtocol`` set to what the
        target chose (2.2.1.3.2; FreeRDP refuses the connection otherwise,
        docs/design/rdp.md §3.1.5)."""
        assert self._target is not None and self.selected_protocol is not None
        frame = await read_pdu(self._client_reader, self.timeouts.step)
        frame = patch_server_selected_protocol(frame, self.selected_protocol)
        if self.end.on:
            # The banner is a plain bitmap update: no GFX pipeline (docs/design/rdp.md §3.4).
            frame = clear_early_capability_flags(frame, RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL)
        self._to_target(frame, record=frame)

    async def _until_client_info(self) -> None:
        """Pass the client's MCS frames (Erect Domain, Attach User, Channel Joins) until
        the Client Info PDU, which goes out rewritten (2.2.1.11)."""
        for _ in range(_MAX_SEQUENCE_FRAMES):
            frame = await read_pdu(self._client_reader, self.timeouts.step)
            if not _is_client_info(frame):
                self._to_target(frame, record=frame)
                continue
            sent, recorded = self._rewrite_client_info(frame)
            self._to_target(sent, record=recorded)
            assert self._target is not None
            await self._target.drain()
            return
        raise ProtocolError(
            f"the client sent {_MAX_SEQUENCE_FRAMES} frames without a Client Info PDU"
        )

    def _rewrite_client_info(self, frame: bytes) -> tuple[bytes, bytes]:
        """(the frame for the target, the frame for the recording: no password at all)."""
        admitted, target = self.admitted, self.admitted.extra
        password = str(admitted.password) if admitted.password is not None else ""
        return (
            rewrite_client_info(frame, target.domain, target.account, password),
            rewrite_client_info(frame, target.domain, target.account, ""),
        )

    def _to_target(self, frame: bytes, record: bytes) -> None:
        assert self._target is not None
        if self.recorder is not None:
            self.recorder.client_frame(record)
        self.bytes["client"] += len(frame)
        TO_TARGET.inc(len(frame))
        self._target.write(frame)

    # -- the pump ------------------------------------------------------------------------

    async def _server_to_client(self) -> None:
        assert self._target is not None
        await _pump_one_way(
            self._target.read,
            self._to_client,
            self._client_writer.drain,
            lambda: self.close(f"{self.admitted.resource_name} closed the connection"),
            lambda: self.close("the client closed the connection"),
        )

    def _to_client(self, data: bytes) -> None:
        self._last_activity = time.monotonic()
        self.bytes["server"] += len(data)
        TO_CLIENT.inc(len(data))
        if self.recorder is not None:
            self.recorder.server(data)
        if not self.end.on:
            self._client_writer.write(data)
            return
        self._client_writer.writelines(self.end.overlay.feed(data))

    async def _client_to_server(self) -> None:
        assert self._target is not None
        await _pump_one_way(
            self._client_reader.read,
            self._to_server,
            self._target.drain,
            lambda: self.close("the client closed the connection"),
            lambda: self.close(f"{self.admitted.resource_name} closed the connection"),
        )

    def _to_server(self, data: bytes) -> None:
        assert self._target is not None
        self._last_activity = time.monotonic()
        if self.end.on:
            data = b"".join(map(self._client_frame, self._client_frames.feed(data)))
        self.bytes["client"] += len(data)
        TO_TARGET.inc(len(data))
        if self.recorder is not None:
            self.recorder.client_bytes(len(data))
        self._target.write(data)

    def _client_frame(self, frame: bytes) -> bytes:
        """One client frame as it goes on: the Confirm Active is read for the colour
        depth and desktop size; fast-path input loses the X of Ctrl+X when armed."""
        if self._client_frames.broken:
            return frame
        try:
            if frame[0] == TPKT_VERSION:
                self._read_confirm_active(frame)
                return frame
            return self.end.ctrl_x.filter(frame) or b""
        except RdpProtocolError:
            return frame  # not ours to judge: the target answers malformed input

    def _read_confirm_active(self, frame: bytes) -> None:
        if domain_pdu_choice(frame) != SEND_DATA_REQUEST:
            return
        request = parse_send_data_request(frame)
        if request.channel_id != IO_CHANNEL_ID:
            return
        share = parse_share(request.data)
        if share.pdu_type == PDUTYPE_CONFIRMACTIVEPDU:
            self.end.activated(parse_confirm_active(share.body))

    # -- the session-end banner ----------------------------------------------------------

    def session_end(self, ends_at: dt.datetime, now: dt.datetime) -> None:
        """The watch's end time each second, for the banner (:class:`SessionEnd`)."""
        self.end.update(ends_at, now)

    @property
    def banner_bytes(self) -> int:
        """Bytes of banner updates sent to the client (tests, the log)."""
        return self.end.overlay.sent

    async def _idle_watch(self) -> None:
        idle = self.timeouts.idle
        while True:
            left = self._last_activity + idle - time.monotonic()
            if left <= 0:
                self.close(f"idle for {idle:g} s")
                return
            await asyncio.sleep(min(left, 30.0))

    async def _pump(self) -> None:
        assert self._server_task is not None
        tasks = {
            self._server_task,
            asyncio.create_task(self._client_to_server()),
            asyncio.create_task(self._idle_watch()),
            asyncio.create_task(self._stop.wait()),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _shut(self) -> None:
        """Close both legs (TLS close_notify where it is up), without waiting long."""
        for task in (self._server_task, self.end.extending):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        writers = [self._client_writer]
        if self._target is not None:
            self._target.close()
        if self._target_writer is not None:
            writers.append(self._target_writer)
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _pump_one_way(
    read: Callable[[int], Awaitable[bytes]],
    write: Callable[[bytes], None],
    drain: Callable[[], Awaitable[None]],
    source_gone: Callable[[], None],
    sink_gone: Callable[[], None],
) -> None:
    """Copy until the source ends; a reset counts as the end of whichever side it hit."""
    while True:
        try:
            data = await read(CHUNK)
        except (OSError, ssl.SSLError, ProtocolError, RdpProtocolError):
            data = b""
        if not data:
            source_gone()
            return
        try:
            write(data)
            await drain()
        except (OSError, ssl.SSLError):
            sink_gone()
            return


def _is_client_info(frame: bytes) -> bool:
    """An MCS Send Data Request whose security header has SEC_INFO_PKT (2.2.1.11.1)."""
    if frame[0] != TPKT_VERSION or domain_pdu_choice(frame) != SEND_DATA_REQUEST:
        return False
    data = parse_send_data_request(frame).data
    return len(data) >= 4 and bool(struct.unpack_from("<H", data)[0] & SEC_INFO_PKT)


def _network_reason(exc: BaseException, established: bool) -> str:
    when = "during the session" if established else "while setting up the connection"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return f"the connection closed {when}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed {when}: {exc.reason or exc}"
    return f"network error {when}: {getattr(exc, 'strerror', None) or exc}"
