"""pamcore-rdp: registration, the ``.rdp`` file, and the X.224 probe against real sockets.

The "RDP server" here is a tiny asyncio server on 127.0.0.1 that answers the Connection
Request with a real-format X.224 Connection Confirm (MS-RDPBCGR 2.2.1.2) — a fake RDP
server, not xrdp; the tests say so in their names.
"""

from __future__ import annotations

import asyncio
import socket
import struct

from pamcore_rdp.plugin import DEFAULT_PORT, client_launch
from pamcore_rdp.probe import CONNECTION_REQUEST, probe_rdp
from pamcore_rdp.proxy.listener import RdpListener

from pamcore.model import Activity, ActivitySession, Resource, User
from pamcore.plugins import build_plugin_host

#: TPKT + X.224 CC (code 0xD0) + RDP_NEG_RSP selecting PROTOCOL_SSL.
CONFIRM_TLS = (
    struct.pack(">BBH", 3, 0, 19)
    + bytes([14, 0xD0, 0, 0, 0x12, 0x34, 0])
    + struct.pack("<BBHI", 0x02, 0, 8, 1)
)


def probe_against(reply: bytes, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(len(CONNECTION_REQUEST)))
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def scenario():  # type: ignore[no-untyped-def]
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await probe_rdp("127.0.0.1", port, timeout)
        finally:
            server.close()

    result = asyncio.run(scenario())
    return result, received


def test_registered_once_through_the_entry_point() -> None:
    handler = build_plugin_host(strict=True).hooks.protocols()["rdp"]
    assert handler.default_port == DEFAULT_PORT == 4489
    assert handler.listener_factory is RdpListener


def test_rdp_file_content() -> None:
    session = ActivitySession(activity=Activity(name="Windows Admin"))
    info = client_launch(
        session, Resource(name="win 01"), User(username="bob"), "pam.example", 4489
    )
    assert info.file is not None
    name, media_type, content = info.file
    assert (name, media_type) == ("win-01.rdp", "application/x-rdp")
    lines = content.decode("utf-8").split("\r\n")
    assert lines[:3] == [
        "full address:s:pam.example:4489",
        "username:s:bob+Windows-Admin+win-01",
        "enablecredsspsupport:i:0",
    ]
    assert lines[-1] == ""  # CRLF-terminated, as mstsc writes them
    assert "bob+Windows-Admin+win-01" in info.command
    assert "pam.example:4489" in info.command


def test_probe_against_fake_rdp_server_reports_selected_protocol() -> None:
    result, received = probe_against(CONFIRM_TLS)
    assert received == [CONNECTION_REQUEST]
    assert result.ok, result.message
    assert result.message.endswith("(offers TLS)")


def test_probe_says_when_the_server_is_not_rdp() -> None:
    result, _ = probe_against(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert not result.ok
    assert result.message.endswith("answered, but not as an RDP server")


def test_probe_refused_port_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = asyncio.run(probe_rdp("127.0.0.1", port, 2.0))
    assert not result.ok
    assert result.message == f"127.0.0.1:{port} refused the connection (is RDP enabled there?)"
