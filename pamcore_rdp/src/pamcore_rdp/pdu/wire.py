"""RDP framing: TPKT and fast-path frames, X.224 data TPDUs, and the PER/BER codecs of MCS/GCC.

Every parser in this package reads through :class:`ByteReader`, so a truncated or
inconsistent PDU always becomes an :class:`RdpProtocolError` naming the PDU and the field,
never an ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import asyncio
import struct

from pamcore_rdp.pdu.errors import RdpProtocolError

#: RFC 1006 §6: TPKT version 3, a reserved byte, then the big-endian length of the whole
#: packet including this 4-byte header.
TPKT_VERSION = 3
TPKT_HEADER_SIZE = 4
TPKT_MAX_LENGTH = 0xFFFF
#: Shortest TPKT an RDP peer sends: the 4-byte header and a 3-byte X.224 Data TPDU header.
TPKT_MIN_LENGTH = 7
#: X.224 Data TPDU header (X.224 §13.7, MS-RDPBCGR 2.2.1.3): LI=2, code DT, EOT.
X224_DATA_HEADER = b"\x02\xf0\x80"
#: MS-RDPBCGR 2.2.8.1.2 / 2.2.9.1.2: the low two bits of a fast-path header are the action,
#: FASTPATH_INPUT_ACTION_FASTPATH / FASTPATH_OUTPUT_ACTION_FASTPATH = 0.
FASTPATH_ACTION_MASK = 0x03
FASTPATH_ACTION = 0x00
#: A fast-path length is one byte, or two when the top bit of the first is set (15 bits).
FASTPATH_MAX_LENGTH = 0x7FFF
#: PER length determinants as FreeRDP and xrdp write them: one byte below 0x80, else two
#: bytes with the top bit set (libfreerdp/crypto/per.c per_read_length/per_write_length).
PER_MAX_LENGTH = 0x7FFF


class ByteReader:
    """Bounds-checked cursor over one PDU; every failure names the PDU and the field."""

    def __init__(self, data: bytes, pdu: str) -> None:
        self.data = bytes(data)
        self.pdu = pdu
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def error(self, detail: str) -> RdpProtocolError:
        """An error for this PDU; ``detail`` says which field and what was expected."""
        return RdpProtocolError(f"{self.pdu}: {detail}")

    def take(self, size: int, field: str) -> bytes:
        if size < 0 or size > self.remaining:
            raise self.error(
                f"{field} needs {size} bytes at offset {self.offset}, "
                f"but only {self.remaining} remain"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def rest(self) -> bytes:
        """All bytes not yet read (possibly none)."""
        return self.take(self.remaining, "rest")

    def peek(self) -> int | None:
        """The next byte without consuming it, or None at the end."""
        return self.data[self.offset] if self.remaining else None

    def _unpack(self, fmt: str, field: str) -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt), field))[0]
        return value

    def u8(self, field: str) -> int:
        return self._unpack("B", field)

    def u16le(self, field: str) -> int:
        return self._unpack("<H", field)

    def u16be(self, field: str) -> int:
        return self._unpack(">H", field)

    def u32le(self, field: str) -> int:
        return self._unpack("<I", field)

    def expect(self, expected: bytes, field: str) -> None:
        """Consume ``expected`` exactly, or fail saying what was there instead."""
        got = self.take(len(expected), field)
        if got != expected:
            raise self.error(f"{field} is {got.hex(' ')}, expected {expected.hex(' ')}")

    def end(self) -> None:
        """Fail if bytes are left over that the PDU does not define."""
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected bytes after offset {self.offset}")

    # -- PER (X.691 aligned, as used by T.124 GCC and the MCS domain PDUs) ---------------

    def per_length(self, field: str) -> int:
        first = self.u8(f"{field} (PER length)")
        if first & 0x80:
            return ((first & 0x7F) << 8) | self.u8(f"{field} (PER length, second byte)")
        return first

    def per_integer16(self, minimum: int, field: str) -> int:
        """A constrained whole number written as 16 bits above its lower bound."""
        return self.u16be(field) + minimum

    def per_integer(self, field: str) -> int:
        """An unconstrained whole number: a length byte, then 1 to 4 big-endian bytes."""
        size = self.per_length(field)
        if not 1 <= size <= 4:
            raise self.error(f"{field} is a {size}-byte PER INTEGER, expected 1 to 4 bytes")
        return int.from_bytes(self.take(size, field), "big")

    # -- BER (X.690, as used by T.125 Connect-Initial / Connect-Response) ---------------

    def ber_length(self, field: str) -> int:
        first = self.u8(f"{field} (BER length)")
        if first < 0x80:
            return first
        count = first & 0x7F
        if count not in (1, 2):
            raise self.error(
                f"{field} has a BER length of {count} bytes; only 1 or 2 are allowed "
                "(indefinite lengths are not used by MCS)"
            )
        return int.from_bytes(self.take(count, f"{field} (BER length)"), "big")

    def ber_tlv(self, tag: bytes, field: str) -> bytes:
        """The contents of one BER element whose identifier octets must be ``tag``."""
        self.expect(tag, f"{field} tag")
        return self.take(self.ber_length(field), field)

    def ber_integer(self, field: str) -> int:
        content = self.ber_tlv(BER_INTEGER, field)
        if not 1 <= len(content) <= 4:
            raise self.error(f"{field} is a {len(content)}-byte INTEGER, expected 1 to 4 bytes")
        return int.from_bytes(content, "big")


# -- framing --------------------------------------------------------------------------


async def read_pdu(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read one whole frame: TPKT if the first byte is 3, else a fast-path PDU.

    The whole read is bounded by ``timeout`` (``TimeoutError``); a peer that closes
    mid-frame gives ``asyncio.IncompleteReadError``. Lengths are capped by their encodings
    (65535 for TPKT, 32767 for fast-path), so a hostile length cannot make us buffer more.
    """
    async with asyncio.timeout(timeout):
        head = await reader.readexactly(2)
        while (length := frame_length(head)) is None:
            head += await reader.readexactly(1)
        return head + await reader.readexactly(length - len(head))


def frame_length(head: bytes) -> int | None:
    """The total length of the frame that starts with ``head``, or None while more of its
    header is needed (TPKT: 4 bytes; fast-path: 2 or 3). For stream splitters such as
    :func:`read_pdu` and the recorder; a first byte that starts neither is an error."""
    if not head:
        return None
    if head[0] == TPKT_VERSION:
        return tpkt_length(head) if len(head) >= TPKT_HEADER_SIZE else None
    if head[0] & FASTPATH_ACTION_MASK != FASTPATH_ACTION:
        raise RdpProtocolError(
            f"RDP frame: first byte 0x{head[0]:02x} starts neither a TPKT (0x03) nor a "
            "fast-path PDU (low two bits 0); the peer is not speaking RDP"
        )
    if len(head) < 2 or (head[1] & 0x80 and len(head) < 3):
        return None
    return fastpath_length(head[:3])


def tpkt_length(header: bytes) -> int:
    """The packet length of a 4-byte TPKT header, checked against the RDP minimum."""
    if len(header) < TPKT_HEADER_SIZE or header[0] != TPKT_VERSION:
        raise RdpProtocolError(
            f"TPKT: header {header[:TPKT_HEADER_SIZE].hex(' ')} is not version 3 with 4 bytes"
        )
    length: int = struct.unpack_from(">H", header, 2)[0]
    if length < TPKT_MIN_LENGTH:
        raise RdpProtocolError(
            f"TPKT: length {length} is shorter than the {TPKT_MIN_LENGTH}-byte minimum "
            "(4-byte TPKT header and 3-byte X.224 header)"
        )
    return length


def fastpath_length(header: bytes) -> int:
    """The total length in a fast-path header (action byte and one or two length bytes)."""
    reader = ByteReader(header, "fast-path PDU")
    reader.u8("fpHeader")
    first = reader.u8("length1")
    length = ((first & 0x7F) << 8) | reader.u8("length2") if first & 0x80 else first
    if length <= reader.offset:
        raise RdpProtocolError(
            f"fast-path PDU: length {length} does not exceed its {reader.offset}-byte header"
        )
    return length


def tpkt(payload: bytes) -> bytes:
    """Wrap ``payload`` in a TPKT header (RFC 1006 §6)."""
    length = TPKT_HEADER_SIZE + len(payload)
    if length > TPKT_MAX_LENGTH:
        raise ValueError(f"TPKT payload of {len(payload)} bytes exceeds the 65535-byte packet")
    return struct.pack(">BBH", TPKT_VERSION, 0, length) + payload


def tpkt_payload(frame: bytes, pdu: str) -> bytes:
    """The payload of one complete TPKT frame; ``pdu`` names what the caller expects."""
    if len(frame) < TPKT_HEADER_SIZE:
        raise RdpProtocolError(f"{pdu}: {len(frame)} bytes are shorter than the 4-byte TPKT header")
    if frame[0] != TPKT_VERSION:
        raise RdpProtocolError(f"{pdu}: TPKT version is {frame[0]}, expected 3")
    length: int = struct.unpack_from(">H", frame, 2)[0]
    if length != len(frame):
        raise RdpProtocolError(
            f"{pdu}: TPKT length {length} does not match the {len(frame)}-byte frame"
        )
    return bytes(frame[TPKT_HEADER_SIZE:])


def x224_data(payload: bytes) -> bytes:
    """A TPKT-framed X.224 Data TPDU carrying ``payload`` (MS-RDPBCGR 2.2.1.3)."""
    return tpkt(X224_DATA_HEADER + payload)


def x224_payload(frame: bytes, pdu: str = "X.224 Data") -> bytes:
    """The user data of a TPKT-framed X.224 Data TPDU (inverse of :func:`x224_data`)."""
    reader = ByteReader(tpkt_payload(frame, pdu), pdu)
    reader.expect(X224_DATA_HEADER, "X.224 Data header (LI 2, DT, EOT)")
    return reader.rest()


# -- PER / BER encoders ------------------------------------------------------------------


def per_length(length: int) -> bytes:
    """A PER length determinant as FreeRDP and xrdp write it (one or two bytes)."""
    if not 0 <= length <= PER_MAX_LENGTH:
        raise ValueError(f"PER length {length} is outside 0..{PER_MAX_LENGTH}")
    if length < 0x80:
        return bytes([length])
    return struct.pack(">H", 0x8000 | length)


#: BER identifier octets used by T.125 (X.690 §8.1.2).
BER_BOOLEAN = b"\x01"
BER_INTEGER = b"\x02"
BER_OCTET_STRING = b"\x04"
BER_ENUMERATED = b"\x0a"
BER_SEQUENCE = b"\x30"


def ber_length(length: int) -> bytes:
    """A definite BER length: short form below 0x80, else 0x81 nn or 0x82 nnnn."""
    if length < 0:
        raise ValueError(f"BER length {length} is negative")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return b"\x82" + struct.pack(">H", length)
    raise ValueError(f"BER length {length} needs more than two bytes")


def ber_tlv(tag: bytes, content: bytes) -> bytes:
    return tag + ber_length(len(content)) + content


def ber_integer(value: int) -> bytes:
    """A non-negative BER INTEGER in its shortest two's-complement form."""
    if value < 0:
        raise ValueError(f"BER INTEGER {value} is negative")
    return ber_tlv(BER_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))
