"""The client leg of a proxied connection, as far as the proxy plays the RDP server: the
connection sequence up to the licence, activation, painting a card and reading keys, the
Set Error Info and Server Redirection PDUs. The front uses it for Phase A; the relay
for the TLS confirm of Phase B and, when an admission is refused there, for the card that
says why (design: docs/design/rdp.md §3.4).

Sequence (MS-RDPBCGR 1.3.1.1): X.224 Connection Confirm selecting TLS, TLS with the
proxy certificate, MCS Connect Response, Attach User and Channel Join confirms, the Client
Info PDU, a "valid client" licence; then, for a card, Demand Active ... Font Map.
"""

from __future__ import annotations

import asyncio
import ssl
import struct

from PIL import Image

from pamcore_rdp.pdu import gcc, mcs
from pamcore_rdp.pdu.activation import (
    ClientCapabilities,
    demand_active,
    finalization,
    parse_confirm_active,
)
from pamcore_rdp.pdu.clientinfo import ClientInfo, read_client_info_frame
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.keys import Key, parse_fastpath_input, parse_input_pdu
from pamcore_rdp.pdu.license import valid_client_license
from pamcore_rdp.pdu.paint import bitmap_updates
from pamcore_rdp.pdu.prompt import background, card_origin, status_card
from pamcore_rdp.pdu.redirection import server_redirection
from pamcore_rdp.pdu.share import (
    PDUTYPE2_FONTLIST,
    PDUTYPE2_INPUT,
    PDUTYPE2_SET_ERROR_INFO_PDU,
    PDUTYPE2_SHUTDOWN_REQUEST,
    PDUTYPE2_UPDATE,
    PDUTYPE_CONFIRMACTIVEPDU,
    PDUTYPE_DATAPDU,
    parse_share,
    share_data,
)
from pamcore_rdp.pdu.wire import read_pdu
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    ConnectionRequest,
    encode_connection_confirm,
)

#: Every read before the prompt is up: a client that stalls is dropped.
STEP_TIMEOUT = 10.0
#: How long a status card stays up before the connection closes.
STATUS_SECONDS = 6.0
#: errorInfo sent before the proxy closes a connection with a card (MS-RDPBCGR 2.2.5.1.1).
ERRINFO_SERVER_DENIED_CONNECTION = 0x00000007
SHARE_ID = 0x000103EA
#: The server's MCS id: the source of its Share Control Headers and Send Data Indications.
SERVER_CHANNEL = 1002


class FrontClosed(Exception):
    """The client went away (disconnect, shutdown request); the front just closes."""


class ClientLeg:
    """One client connection while the proxy plays the server (Phase A, and a refusal in
    Phase B): its streams, the MCS ids it joined and, once active, its screen."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.user_channel = gcc.user_channel_id(0)
        self.io_channel = gcc.IO_CHANNEL_ID
        self.caps: ClientCapabilities | None = None
        self.desktop = (1024, 768)

    # -- framing -------------------------------------------------------------------------

    async def read(self, timeout: float | None = STEP_TIMEOUT) -> bytes:
        try:
            return await read_pdu(self.reader, timeout)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise FrontClosed("the client closed the connection") from exc

    async def read_io(self, timeout: float | None = STEP_TIMEOUT) -> bytes:
        """The next Send Data Request on the I/O channel (other channels are ignored)."""
        while True:
            frame = await self.read(timeout)
            if frame[0] != 0x03:
                raise RdpProtocolError("fast-path input before the connection was active")
            data = self._send_data(frame)
            if data is not None:
                return data

    def _send_data(self, frame: bytes) -> bytes | None:
        """The I/O-channel data of an MCS frame; ``None`` for another channel or PDU."""
        choice = mcs.domain_pdu_choice(frame)
        if choice == mcs.DISCONNECT_PROVIDER_ULTIMATUM:
            raise FrontClosed("the client disconnected")
        if choice != mcs.SEND_DATA_REQUEST:
            return None
        pdu = mcs.parse_send_data_request(frame)
        return pdu.data if pdu.channel_id == self.io_channel else None

    async def send(self, frames: bytes) -> None:
        self.writer.write(frames)
        await asyncio.wait_for(self.writer.drain(), STEP_TIMEOUT)

    def io_frame(self, payload: bytes) -> bytes:
        """``payload`` as a Send Data Indication on the I/O channel."""
        return mcs.encode_send_data_indication(SERVER_CHANNEL, self.io_channel, payload)

    async def send_io(self, *payloads: bytes) -> None:
        await self.send(b"".join(self.io_frame(p) for p in payloads))

    # -- connection sequence -------------------------------------------------------------

    async def accept(self, request: ConnectionRequest, tls: ssl.SSLContext) -> ClientInfo:
        """From the Connection Confirm to the licence: the Client Info PDU."""
        if not request.requested_protocols & PROTOCOL_SSL:
            await self.send(encode_connection_confirm(0, failure_code=SSL_REQUIRED_BY_SERVER))
            raise FrontClosed("the client does not offer TLS")
        await confirm_tls(self.writer, encode_connection_confirm(PROTOCOL_SSL), tls, STEP_TIMEOUT)
        initial = gcc.parse_connect_initial(await self.read())
        self.desktop = (initial.core.desktop_width, initial.core.desktop_height)
        channels = len(initial.channels)
        self.user_channel = gcc.user_channel_id(channels)
        await self.send(gcc.encode_connect_response(request.requested_protocols, channels))
        await self._join(1 + 1 + channels)
        info = read_client_info_frame(await self.read())  # next after the joins (1.3.1.1)
        await self.send_io(valid_client_license())
        return info

    async def _join(self, joins: int) -> None:
        """Erect Domain, Attach User, then one Channel Join per channel (MS-RDPBCGR
        2.2.1.5-2.2.1.9), confirming each join whatever channel it names."""
        attached = False
        while joins:
            frame = await self.read()
            choice = mcs.domain_pdu_choice(frame)
            if choice == mcs.ERECT_DOMAIN_REQUEST and not attached:
                mcs.parse_erect_domain_request(frame)
            elif choice == mcs.ATTACH_USER_REQUEST and not attached:
                mcs.parse_attach_user_request(frame)
                attached = True
                await self.send(mcs.encode_attach_user_confirm(self.user_channel))
            elif choice == mcs.CHANNEL_JOIN_REQUEST and attached:
                joins -= 1
                join = mcs.parse_channel_join_request(frame)
                await self.send(mcs.encode_channel_join_confirm(self.user_channel, join.channel_id))
            elif choice == mcs.DISCONNECT_PROVIDER_ULTIMATUM:
                raise FrontClosed("the client disconnected")
            else:
                raise RdpProtocolError(f"MCS: unexpected domain PDU {choice} while joining")

    async def activate(self) -> None:
        """Capabilities exchange and finalization (MS-RDPBCGR 1.3.1.1 phases 9-10), at the
        desktop size the client asked for in its Connect Initial."""
        width, height = self.desktop
        await self.send_io(demand_active(SHARE_ID, width, height, SERVER_CHANNEL))
        while self.caps is None:
            pdu = parse_share(await self.read_io())
            if pdu.pdu_type == PDUTYPE_CONFIRMACTIVEPDU:
                self.caps = parse_confirm_active(pdu.body)
        while True:  # Synchronize, Control (cooperate, request), then Font List
            pdu = parse_share(await self.read_io())
            if pdu.pdu_type == PDUTYPE_DATAPDU and pdu.pdu_type2 == PDUTYPE2_FONTLIST:
                break
        await self.send_io(*finalization(SHARE_ID, SERVER_CHANNEL, self.user_channel))

    async def paint(self, left: int, top: int, image: Image.Image) -> None:
        assert self.caps is not None
        updates = bitmap_updates(image, left, top, self.caps.bits_per_pixel)
        await self.send_io(
            *(share_data(SHARE_ID, SERVER_CHANNEL, PDUTYPE2_UPDATE, update) for update in updates)
        )

    async def keys(self, timeout: float | None) -> list[Key]:
        """The keyboard events of the next input PDU (fast-path or slow-path); an empty list
        for anything else the client sends meanwhile."""
        frame = await self.read(timeout)
        if frame[0] != 0x03:
            return parse_fastpath_input(frame)
        data = self._send_data(frame)
        if data is None:
            return []
        share = parse_share(data)
        if share.pdu_type2 == PDUTYPE2_INPUT:
            return parse_input_pdu(share.body)
        if share.pdu_type2 == PDUTYPE2_SHUTDOWN_REQUEST:
            raise FrontClosed("the client asked to shut down")
        return []

    async def deny(self) -> None:
        """Tell the client the server ends the connection (Set Error Info PDU), so it does
        not take the close for a network failure and reconnect."""
        payload = struct.pack("<I", ERRINFO_SERVER_DENIED_CONNECTION)
        await self.send_io(
            share_data(SHARE_ID, SERVER_CHANNEL, PDUTYPE2_SET_ERROR_INFO_PDU, payload)
        )

    async def redirect(self, token: str) -> None:
        """Send the Server Redirection PDU, then give the client time to leave first."""
        await self.send_io(server_redirection(token, SERVER_CHANNEL))
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while await self.reader.read(4096):
                    pass
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass


async def confirm_tls(
    writer: asyncio.StreamWriter, confirm: bytes, tls: ssl.SSLContext, timeout: float
) -> None:
    """Send the X.224 Connection Confirm choosing TLS, then take the client leg to TLS
    (MS-RDPBCGR 5.4.5.1: the TLS handshake follows the confirm), for the front and the
    relay alike. The client sends its ClientHello as soon as it reads the confirm: reading
    stops first, or the StreamReader may buffer it where TLS never sees it (Python 3.11's
    start_tls drains, and any yield lets the loop read; a handshake that hangs now and
    then). start_tls resumes reading under TLS."""
    writer.transport.pause_reading()
    writer.write(confirm)
    async with asyncio.timeout(timeout):
        await writer.drain()
    async with asyncio.timeout(timeout):
        await writer.start_tls(tls)


async def refuse(
    conn: ClientLeg, request: ConnectionRequest, tls: ssl.SSLContext, message: str
) -> None:
    """Run Phase A only to show why the connection cannot go on (a redirect token whose session
    was refused meanwhile), then return so the connection closes."""
    await conn.accept(request, tls)
    await show_card(conn, message)


async def show_card(conn: ClientLeg, message: str) -> None:
    """A status card with ``message``, for a few seconds, then the word to the client that
    the server ends the connection; then it may close."""
    await paint_card(conn, status_card(message))
    await asyncio.sleep(STATUS_SECONDS)
    await conn.deny()


async def paint_card(conn: ClientLeg, card: Image.Image) -> None:
    """Paint ``card`` centred; the first paint activates the connection and fills the
    background."""
    if conn.caps is None:
        await conn.activate()
        assert conn.caps is not None
        await conn.paint(0, 0, background(conn.caps.width, conn.caps.height))
    left, top = card_origin(conn.caps.width, conn.caps.height)
    await conn.paint(left, top, card)


def sentence(text: str) -> str:
    """A core message (``wrong username or password``) as a line on the card."""
    text = text.strip() or "refused"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
