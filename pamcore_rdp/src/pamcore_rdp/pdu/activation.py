"""Capabilities exchange and connection finalization, server side (MS-RDPBCGR 1.3.1.1
phases 9-10): the Demand Active PDU with the few capability sets a client needs to show
bitmaps and send keystrokes, the client's Confirm Active, and the server's Synchronize,
Control (cooperate, granted) and Font Map answers.

The sets and their values follow MS-RDPBCGR 2.2.7 and what xrdp (libxrdp/xrdp_caps.c,
xrdp_rdp.c) and IronRDP (ironrdp-acceptor) send; nothing is offered that the front does
not use (no orders, no compression, no caches), so a client falls back to plain bitmaps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.share import (
    PDUTYPE2_CONTROL,
    PDUTYPE2_FONTMAP,
    PDUTYPE2_SYNCHRONIZE,
    PDUTYPE_DEMANDACTIVEPDU,
    share_control,
    share_data,
)
from pamcore_rdp.pdu.wire import ByteReader

# Capability set types (MS-RDPBCGR 2.2.1.13.1.1.1).
CAPSTYPE_GENERAL = 0x0001
CAPSTYPE_BITMAP = 0x0002
CAPSTYPE_ORDER = 0x0003
CAPSTYPE_POINTER = 0x0008
CAPSTYPE_SHARE = 0x0009
CAPSTYPE_INPUT = 0x000D
CAPSTYPE_FONT = 0x000E
CAPSTYPE_VIRTUALCHANNEL = 0x0014

# Input capability flags (2.2.7.1.6).
INPUT_FLAG_SCANCODES = 0x0001
INPUT_FLAG_MOUSEX = 0x0004
INPUT_FLAG_FASTPATH_INPUT = 0x0008
INPUT_FLAG_UNICODE = 0x0010
INPUT_FLAG_FASTPATH_INPUT2 = 0x0020

# General capability extraFlags (2.2.7.1.1).
LONG_CREDENTIALS_SUPPORTED = 0x0004
NO_BITMAP_COMPRESSION_HDR = 0x0400

# Control actions (2.2.1.15.1).
CTRLACTION_GRANTED_CONTROL = 0x0002
CTRLACTION_COOPERATE = 0x0004

#: Order capability orderFlags: NEGOTIATEORDERSUPPORT | ZEROBOUNDSDELTASSUPPORT, as every
#: server writes them, with an all-zero orderSupport array: no drawing orders.
ORDER_FLAGS = 0x0002 | 0x0008
FONTSUPPORT_FONTLIST = 0x0001
#: Font Map: one PDU, first and last (2.2.1.22.1).
FONTMAP_FIRST_LAST = 0x0003

#: The colour depth the front paints in; FreeRDP and mstsc adopt the server's preferred
#: depth from the bitmap capability set (FreeRDP capabilities.c).
PREFERRED_BPP = 32


def _capability(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, 4 + len(body)) + body


def server_capabilities(width: int, height: int, server_channel: int) -> list[bytes]:
    """The capability sets of our Demand Active (MS-RDPBCGR 2.2.7)."""
    general = struct.pack(
        "<HHHHHHHHHBB",
        1,  # osMajorType OSMAJORTYPE_WINDOWS
        3,  # osMinorType OSMINORTYPE_WINDOWS_NT
        0x0200,  # protocolVersion TS_CAPS_PROTOCOLVERSION
        0,
        0,  # generalCompressionTypes
        LONG_CREDENTIALS_SUPPORTED | NO_BITMAP_COMPRESSION_HDR,
        0,  # updateCapabilityFlag
        0,  # remoteUnshareFlag
        0,  # generalCompressionLevel
        1,  # refreshRectSupport
        1,  # suppressOutputSupport
    )
    bitmap = struct.pack(
        "<HHHHHHHHHBBHH",
        PREFERRED_BPP,
        1,
        1,
        1,  # receive 1/4/8 bpp
        width,
        height,
        0,
        0,  # desktopResizeFlag: the prompt does not follow resizes
        1,  # bitmapCompressionFlag (must be 1)
        0,  # highColorFlags
        0,  # drawingFlags
        1,  # multipleRectangleSupport
        0,
    )
    order = (
        b"\0" * 16  # terminalDescriptor
        + struct.pack("<IHHHHHH", 0, 1, 20, 0, 1, 0, ORDER_FLAGS)
        + b"\0" * 32  # orderSupport: no orders
        + struct.pack("<HHIIHHHH", 0, 0, 0, 480 * 480, 0, 0, 0, 0)
    )
    pointer = struct.pack("<HHH", 1, 25, 25)
    share = struct.pack("<HH", server_channel, 0)
    input_caps = (
        struct.pack(
            "<HHIIII",
            INPUT_FLAG_SCANCODES
            | INPUT_FLAG_MOUSEX
            | INPUT_FLAG_FASTPATH_INPUT
            | INPUT_FLAG_UNICODE
            | INPUT_FLAG_FASTPATH_INPUT2,
            0,
            0,
            0,
            0,
            0,
        )
        + b"\0" * 64  # imeFileName
    )
    font = struct.pack("<HH", FONTSUPPORT_FONTLIST, 0)
    virtual_channel = struct.pack("<II", 0, 1600)  # VCCAPS_NO_COMPR, VCChunkSize
    return [
        _capability(CAPSTYPE_GENERAL, general),
        _capability(CAPSTYPE_BITMAP, bitmap),
        _capability(CAPSTYPE_ORDER, order),
        _capability(CAPSTYPE_POINTER, pointer),
        _capability(CAPSTYPE_SHARE, share),
        _capability(CAPSTYPE_INPUT, input_caps),
        _capability(CAPSTYPE_FONT, font),
        _capability(CAPSTYPE_VIRTUALCHANNEL, virtual_channel),
    ]


def demand_active(share_id: int, width: int, height: int, server_channel: int) -> bytes:
    """The Demand Active PDU (MS-RDPBCGR 2.2.1.13.1)."""
    caps = server_capabilities(width, height, server_channel)
    source = b"RDP\0"
    combined = b"".join(caps)
    body = (
        struct.pack("<IHH", share_id, len(source), 4 + len(combined))
        + source
        + struct.pack("<HH", len(caps), 0)
        + combined
        + struct.pack("<I", 0)  # sessionId
    )
    return share_control(PDUTYPE_DEMANDACTIVEPDU, server_channel, body)


@dataclass(frozen=True)
class ClientCapabilities:
    """What the front needs from the client's Confirm Active."""

    bits_per_pixel: int
    width: int
    height: int
    input_flags: int


def parse_confirm_active(body: bytes) -> ClientCapabilities:
    """The Confirm Active body after its Share Control Header (MS-RDPBCGR 2.2.1.13.2.1)."""
    reader = ByteReader(body, "Confirm Active PDU")
    reader.u32le("shareId")
    reader.u16le("originatorId")
    source_length = reader.u16le("lengthSourceDescriptor")
    reader.u16le("lengthCombinedCapabilities")
    reader.take(source_length, "sourceDescriptor")
    count = reader.u16le("numberCapabilities")
    reader.u16le("pad2Octets")
    bpp, width, height, input_flags = PREFERRED_BPP, 0, 0, 0
    for index in range(count):
        kind = reader.u16le(f"capability {index} type")
        length = reader.u16le(f"capability {index} length")
        if length < 4:
            raise reader.error(f"capability {index} length {length} is below its 4-byte header")
        caps = ByteReader(reader.take(length - 4, f"capability {index}"), "Confirm Active PDU")
        if kind == CAPSTYPE_BITMAP:
            bpp = caps.u16le("preferredBitsPerPixel")
            caps.take(6, "receive1/4/8BitsPerPixel")
            width = caps.u16le("desktopWidth")
            height = caps.u16le("desktopHeight")
        elif kind == CAPSTYPE_INPUT:
            input_flags = caps.u16le("inputFlags")
    if not width or not height:
        raise reader.error("no bitmap capability set with the desktop size")
    return ClientCapabilities(bpp, width, height, input_flags)


def finalization(share_id: int, server_channel: int, client_user: int) -> list[bytes]:
    """The server's half of connection finalization (MS-RDPBCGR 2.2.1.19-2.2.1.22):
    Synchronize, Control Cooperate, Control Granted Control, Font Map."""
    return [
        share_data(
            share_id, server_channel, PDUTYPE2_SYNCHRONIZE, struct.pack("<HH", 1, client_user)
        ),
        share_data(
            share_id,
            server_channel,
            PDUTYPE2_CONTROL,
            struct.pack("<HHI", CTRLACTION_COOPERATE, 0, 0),
        ),
        share_data(
            share_id,
            server_channel,
            PDUTYPE2_CONTROL,
            struct.pack("<HHI", CTRLACTION_GRANTED_CONTROL, client_user, server_channel),
        ),
        share_data(
            share_id,
            server_channel,
            PDUTYPE2_FONTMAP,
            struct.pack("<HHHH", 0, 0, FONTMAP_FIRST_LAST, 4),
        ),
    ]
