"""Reachability probe for RDP servers: one X.224 Connection Request, no credentials.

MS-RDPBCGR 2.2.1.1: the client opens with a TPKT-framed X.224 Connection Request carrying
an RDP Negotiation Request; 2.2.1.2: an RDP server answers with a Connection Confirm
(X.224 code 0xD0) carrying the selected security protocol or a negotiation failure.
"""

from __future__ import annotations

import asyncio
import struct

from pamcore.proxy import probe
from pamcore.registry import ConnectionTest

#: requestedProtocols = PROTOCOL_SSL | PROTOCOL_HYBRID (MS-RDPBCGR 2.2.1.1.1).
_REQUESTED = 0x00000001 | 0x00000002
#: TPKT (RFC 1006) + X.224 CR (LI=14, code 0xE0, refs 0, class 0) + RDP_NEG_REQ.
CONNECTION_REQUEST = (
    struct.pack(">BBH", 3, 0, 19)
    + bytes([14, 0xE0, 0, 0, 0, 0, 0])
    + struct.pack("<BBHI", 0x01, 0, 8, _REQUESTED)
)
PROTOCOLS = {0: "standard RDP security", 1: "TLS", 2: "CredSSP (NLA)", 8: "CredSSP with early auth"}


async def probe_rdp(address: str, port: int, timeout: float) -> ConnectionTest:
    """Connect to ``address:port``, send a Connection Request and read the confirm.

    The whole probe (resolve, connect, exchange) is bounded by ``timeout`` seconds.
    """
    return await probe(
        address, port, timeout, _negotiate, service="RDP", refused_hint="is RDP enabled there?"
    )


async def _negotiate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
) -> ConnectionTest:
    writer.write(CONNECTION_REQUEST)
    await writer.drain()
    try:
        header = await reader.readexactly(4)
        version, _reserved, length = struct.unpack(">BBH", header)
        if version != 3 or not 11 <= length <= 512:
            return _not_rdp(where)
        body = await reader.readexactly(length - 4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            return _not_rdp(where)
        return ConnectionTest(False, f"{where} closed the connection without an RDP answer")
    return _judge(where, body)


def _not_rdp(where: str) -> ConnectionTest:
    return ConnectionTest(False, f"{where} answered, but not as an RDP server")


def _judge(where: str, body: bytes) -> ConnectionTest:
    if len(body) < 7 or body[1] & 0xF0 != 0xD0:
        return _not_rdp(where)
    neg = body[7:]
    if len(neg) >= 8 and neg[0] == 0x02:
        selected = struct.unpack("<I", neg[4:8])[0]
        name = PROTOCOLS.get(selected, f"protocol {selected:#x}")
        return ConnectionTest(True, f"RDP server at {where} (offers {name})", {"protocol": name})
    if len(neg) >= 8 and neg[0] == 0x03:
        code = struct.unpack("<I", neg[4:8])[0]
        return ConnectionTest(
            True,
            f"RDP server at {where}, but it refused TLS and NLA (failure code {code})",
            {"failure_code": code},
        )
    return ConnectionTest(True, f"RDP server at {where} (standard RDP security only)")
