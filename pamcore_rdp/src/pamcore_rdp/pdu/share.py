"""Share Control and Share Data headers: the envelope of every slow-path PDU the front
exchanges after licensing (MS-RDPBCGR 2.2.8.1.1.1.1 and 2.2.8.1.1.1.2).

Under TLS (encryption method 0) these PDUs travel on the MCS I/O channel with no security
header in front of them (MS-RDPBCGR 5.4.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.wire import ByteReader

#: The pduType field carries the protocol version in its high bits (TS_PROTOCOL_VERSION).
PROTOCOL_VERSION = 0x0010
PDUTYPE_DEMANDACTIVEPDU = 0x1
PDUTYPE_CONFIRMACTIVEPDU = 0x3
PDUTYPE_DEACTIVATEALLPDU = 0x6
PDUTYPE_DATAPDU = 0x7
PDUTYPE_SERVER_REDIR_PKT = 0xA

# pduType2 of a Share Data Header (MS-RDPBCGR 2.2.8.1.1.1.2).
PDUTYPE2_UPDATE = 0x02
PDUTYPE2_CONTROL = 0x14
PDUTYPE2_POINTER = 0x1B
PDUTYPE2_INPUT = 0x1C
PDUTYPE2_SYNCHRONIZE = 0x1F
PDUTYPE2_FONTLIST = 0x27
PDUTYPE2_FONTMAP = 0x28
PDUTYPE2_SHUTDOWN_REQUEST = 0x24
PDUTYPE2_SET_ERROR_INFO_PDU = 0x2F

#: streamId STREAM_LOW: what xrdp and FreeRDP write for every data PDU.
STREAM_LOW = 0x01
SHARE_CONTROL_HEADER_SIZE = 6


def share_control(pdu_type: int, source: int, body: bytes) -> bytes:
    """A PDU with its Share Control Header; ``source`` is the sender's MCS channel id."""
    total = SHARE_CONTROL_HEADER_SIZE + len(body)
    return struct.pack("<HHH", total, pdu_type | PROTOCOL_VERSION, source) + body


def share_data(share_id: int, source: int, pdu_type2: int, body: bytes) -> bytes:
    """A Data PDU: Share Control + Share Data headers, uncompressed."""
    # uncompressedLength counts from pduType2 on, as IronRDP writes it (ShareDataHeader).
    header = struct.pack("<IBBHBBH", share_id, 0, STREAM_LOW, len(body) + 4, pdu_type2, 0, 0)
    return share_control(PDUTYPE_DATAPDU, source, header + body)


@dataclass(frozen=True)
class SharePdu:
    """One slow-path PDU read from the client: its type, sender and what follows the
    header (for a Data PDU: ``pdu_type2`` and the body after the Share Data Header)."""

    pdu_type: int
    source: int
    body: bytes
    pdu_type2: int | None = None


def parse_share(data: bytes) -> SharePdu:
    """Split a slow-path PDU; a Flow PDU (totalLength 0x8000) comes back as type 0."""
    reader = ByteReader(data, "Share Control Header")
    total = reader.u16le("totalLength")
    if total == 0x8000:  # MS-RDPBCGR 2.2.8.1.1.1.1: a flow PDU, which we ignore
        return SharePdu(0, 0, b"")
    pdu_type = reader.u16le("pduType") & 0x0F
    source = reader.u16le("pduSource") if reader.remaining else 0
    if pdu_type != PDUTYPE_DATAPDU:
        return SharePdu(pdu_type, source, reader.rest())
    reader.pdu = "Share Data Header"
    reader.take(4 + 1 + 1 + 2, "shareId, pad1, streamId, uncompressedLength")
    pdu_type2 = reader.u8("pduType2")
    compressed = reader.u8("compressedType")
    reader.u16le("compressedLength")
    if compressed & 0x20:  # PACKET_COMPRESSED: we never offered compression
        raise reader.error(f"pduType2 0x{pdu_type2:02x} is compressed; no compression was offered")
    return SharePdu(pdu_type, source, reader.rest(), pdu_type2)
