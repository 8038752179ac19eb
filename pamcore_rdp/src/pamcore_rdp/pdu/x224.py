"""X.224 Connection Request / Confirm: the only cleartext routing data of an RDP connection.

MS-RDPBCGR 2.2.1.1 (Client X.224 Connection Request PDU) and 2.2.1.2 (Server X.224
Connection Confirm PDU). Layouts cross-checked with FreeRDP libfreerdp/core/nego.c
(nego_read_request, nego_process_negotiation_response) and xrdp libxrdp/xrdp_iso.c.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.wire import ByteReader, tpkt, tpkt_payload

#: requestedProtocols / selectedProtocol values (MS-RDPBCGR 2.2.1.1.1).
PROTOCOL_RDP = 0x00000000
PROTOCOL_SSL = 0x00000001
PROTOCOL_HYBRID = 0x00000002
PROTOCOL_RDSTLS = 0x00000004
PROTOCOL_HYBRID_EX = 0x00000008

#: RDP_NEG_REQ flags (2.2.1.1.1).
RESTRICTED_ADMIN_MODE_REQUIRED = 0x01
REDIRECTED_AUTHENTICATION_MODE_REQUIRED = 0x02
CORRELATION_INFO_PRESENT = 0x08
#: RDP_NEG_RSP flags (2.2.1.2.1).
EXTENDED_CLIENT_DATA_SUPPORTED = 0x01
DYNVC_GFX_PROTOCOL_SUPPORTED = 0x02
RESTRICTED_ADMIN_MODE_SUPPORTED = 0x08
REDIRECTED_AUTHENTICATION_MODE_SUPPORTED = 0x10
#: RDP_NEG_FAILURE failureCode values (2.2.1.2.2).
SSL_REQUIRED_BY_SERVER = 0x01
SSL_NOT_ALLOWED_BY_SERVER = 0x02
SSL_CERT_NOT_ON_SERVER = 0x03
INCONSISTENT_FLAGS = 0x04
HYBRID_REQUIRED_BY_SERVER = 0x05
SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER = 0x06

#: X.224 TPDU codes (X.224 §13.3, §13.4).
X224_CONNECTION_REQUEST = 0xE0
X224_CONNECTION_CONFIRM = 0xD0
#: RDP negotiation structure types and their fixed length (2.2.1.1.1, 2.2.1.2.1, 2.2.1.2.2).
TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03
TYPE_RDP_CORRELATION_INFO = 0x06
NEG_LENGTH = 8
CORRELATION_INFO_LENGTH = 36
#: Fixed part of a CR/CC TPDU after the length indicator: code, DST-REF, SRC-REF, class.
_FIXED_AFTER_LI = 6
#: SRC-REF in our Connection Confirm; any value is allowed, this is what xrdp and FreeRDP send.
_CONFIRM_SOURCE_REFERENCE = 0x1234

COOKIE_PREFIX = b"Cookie: mstshash="
ROUTING_COOKIE_PREFIX = b"Cookie: msts="
CRLF = b"\r\n"

_CR = "X.224 Connection Request"
_CC = "X.224 Connection Confirm"


@dataclass(frozen=True)
class ConnectionRequest:
    """What a client asked for before TLS: who (cookie), where (routing token), how (protocols).

    ``cookie`` is the ``mstshash`` value (often a truncated user name); ``routing_token`` is
    the value of ``Cookie: msts=...`` or a bare line such as the ``.rdp`` file's
    ``loadbalanceinfo`` (``tsv://MS Terminal Services Plugin.1.<id>``), without CR LF. Both are
    decoded as Latin-1, which never fails and keeps every byte.
    """

    cookie: str | None = None
    routing_token: str | None = None
    requested_protocols: int = PROTOCOL_RDP
    neg_flags: int = 0
    #: False when the client sent no RDP_NEG_REQ (legacy standard RDP security only).
    negotiation: bool = True


@dataclass(frozen=True)
class ConnectionConfirm:
    """The server's choice: ``selected_protocol``, or ``failure_code`` when it refused."""

    selected_protocol: int = PROTOCOL_RDP
    flags: int = 0
    failure_code: int | None = None


def parse_connection_request(frame: bytes) -> ConnectionRequest:
    """Parse a TPKT-framed X.224 Connection Request (MS-RDPBCGR 2.2.1.1)."""
    reader = _tpdu_reader(frame, _CR, X224_CONNECTION_REQUEST)
    cookie = routing_token = None
    first = reader.peek()
    if first is not None and first != TYPE_RDP_NEG_REQ:
        # 2.2.1.1: routingToken or cookie, both terminated by CR LF, mutually exclusive.
        line = _read_line(reader)
        if line.startswith(COOKIE_PREFIX):
            cookie = line[len(COOKIE_PREFIX) :].decode("latin-1")
        elif line.startswith(ROUTING_COOKIE_PREFIX):
            routing_token = line[len(ROUTING_COOKIE_PREFIX) :].decode("latin-1")
        else:
            routing_token = line.decode("latin-1")
    if not reader.remaining:
        return ConnectionRequest(cookie, routing_token, PROTOCOL_RDP, 0, negotiation=False)
    _expect_type(reader, TYPE_RDP_NEG_REQ, "RDP_NEG_REQ")
    flags = reader.u8("RDP_NEG_REQ flags")
    _expect_neg_length(reader, "RDP_NEG_REQ")
    protocols = reader.u32le("RDP_NEG_REQ requestedProtocols")
    if flags & CORRELATION_INFO_PRESENT:
        _expect_type(reader, TYPE_RDP_CORRELATION_INFO, "RDP_NEG_CORRELATION_INFO")
        reader.u8("RDP_NEG_CORRELATION_INFO flags")
        length = reader.u16le("RDP_NEG_CORRELATION_INFO length")
        if length != CORRELATION_INFO_LENGTH:
            raise reader.error(
                f"RDP_NEG_CORRELATION_INFO length is {length}, expected {CORRELATION_INFO_LENGTH}"
            )
        reader.take(CORRELATION_INFO_LENGTH - 4, "RDP_NEG_CORRELATION_INFO correlationId")
    reader.end()
    return ConnectionRequest(cookie, routing_token, protocols, flags)


def encode_connection_request(
    cookie: str | None = None,
    routing_token: str | None = None,
    requested_protocols: int = PROTOCOL_SSL | PROTOCOL_HYBRID,
    neg_flags: int = 0,
) -> bytes:
    """A Connection Request as mstsc/FreeRDP send it; a routing token goes out as a bare line."""
    if cookie is not None and routing_token is not None:
        raise ValueError("a Connection Request carries a cookie or a routing token, not both")
    if neg_flags & CORRELATION_INFO_PRESENT:
        raise ValueError("RDP_NEG_CORRELATION_INFO is not supported when encoding")
    variable = b""
    if cookie is not None:
        variable = COOKIE_PREFIX + _line_bytes(cookie, "cookie") + CRLF
    elif routing_token is not None:
        variable = _line_bytes(routing_token, "routing token") + CRLF
    variable += struct.pack("<BBHI", TYPE_RDP_NEG_REQ, neg_flags, NEG_LENGTH, requested_protocols)
    return _tpdu(X224_CONNECTION_REQUEST, 0, variable)


def parse_connection_confirm(frame: bytes) -> ConnectionConfirm:
    """Parse a TPKT-framed X.224 Connection Confirm (MS-RDPBCGR 2.2.1.2)."""
    reader = _tpdu_reader(frame, _CC, X224_CONNECTION_CONFIRM)
    if not reader.remaining:
        # No RDP_NEG_RSP: a legacy server chose standard RDP security (2.2.1.2).
        return ConnectionConfirm(PROTOCOL_RDP)
    kind = reader.u8("negotiation type")
    flags = reader.u8("negotiation flags")
    if kind not in (TYPE_RDP_NEG_RSP, TYPE_RDP_NEG_FAILURE):
        raise reader.error(
            f"negotiation type is 0x{kind:02x}, expected 0x02 (RDP_NEG_RSP) "
            "or 0x03 (RDP_NEG_FAILURE)"
        )
    _expect_neg_length(reader, "RDP_NEG_RSP" if kind == TYPE_RDP_NEG_RSP else "RDP_NEG_FAILURE")
    value = reader.u32le("selectedProtocol" if kind == TYPE_RDP_NEG_RSP else "failureCode")
    reader.end()
    if kind == TYPE_RDP_NEG_FAILURE:
        return ConnectionConfirm(PROTOCOL_RDP, flags, failure_code=value)
    return ConnectionConfirm(value, flags)


def encode_connection_confirm(
    selected_protocol: int, flags: int = 0, failure_code: int | None = None
) -> bytes:
    """A Connection Confirm with RDP_NEG_RSP, or RDP_NEG_FAILURE when ``failure_code`` is set."""
    if failure_code is None:
        neg = struct.pack("<BBHI", TYPE_RDP_NEG_RSP, flags, NEG_LENGTH, selected_protocol)
    else:
        neg = struct.pack("<BBHI", TYPE_RDP_NEG_FAILURE, 0, NEG_LENGTH, failure_code)
    return _tpdu(X224_CONNECTION_CONFIRM, _CONFIRM_SOURCE_REFERENCE, neg)


def _tpdu(code: int, source_reference: int, variable: bytes) -> bytes:
    # LI counts the bytes after itself: code, DST-REF, SRC-REF, class and the variable part.
    length_indicator = _FIXED_AFTER_LI + len(variable)
    if length_indicator > 0xFE:
        raise ValueError(f"X.224 TPDU variable part of {len(variable)} bytes is too long")
    header = struct.pack(">BBHHB", length_indicator, code, 0, source_reference, 0)
    return tpkt(header + variable)


def _tpdu_reader(frame: bytes, pdu: str, code: int) -> ByteReader:
    """A reader positioned after the fixed CR/CC header, limited to what LI announces."""
    payload = tpkt_payload(frame, pdu)
    if len(payload) < 1 + _FIXED_AFTER_LI:
        raise RdpProtocolError(
            f"{pdu}: TPKT length {len(frame)} is shorter than the 11-byte header "
            "(4-byte TPKT header and 7-byte X.224 header)"
        )
    reader = ByteReader(payload, pdu)
    length_indicator = reader.u8("length indicator")
    if not _FIXED_AFTER_LI <= length_indicator <= reader.remaining:
        raise reader.error(
            f"length indicator {length_indicator} is outside {_FIXED_AFTER_LI}.."
            f"{reader.remaining} (the bytes that follow it)"
        )
    if length_indicator != reader.remaining:
        raise reader.error(
            f"{reader.remaining - length_indicator} bytes follow the {length_indicator}-byte "
            "TPDU announced by the length indicator"
        )
    got = reader.u8("TPDU code")
    if got & 0xF0 != code:
        raise reader.error(f"TPDU code is 0x{got:02x}, expected 0x{code:02x}")
    reader.take(4, "DST-REF and SRC-REF")
    reader.u8("class option")
    return reader


def _read_line(reader: ByteReader) -> bytes:
    end = reader.data.find(CRLF, reader.offset)
    if end < 0:
        raise reader.error(
            "cookie or routing token is not terminated by CR LF "
            "(expected 'Cookie: mstshash=...', 'Cookie: msts=...' or a routing token line)"
        )
    line = reader.take(end - reader.offset, "cookie or routing token")
    reader.take(2, "CR LF")
    return line


def _line_bytes(text: str, what: str) -> bytes:
    if "\r" in text or "\n" in text:
        raise ValueError(f"the {what} must not contain CR or LF")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the {what} must be Latin-1 text") from exc


def _expect_type(reader: ByteReader, expected: int, name: str) -> None:
    kind = reader.u8(f"{name} type")
    if kind != expected:
        raise reader.error(f"{name} type is 0x{kind:02x}, expected 0x{expected:02x}")


def _expect_neg_length(reader: ByteReader, name: str) -> None:
    length = reader.u16le(f"{name} length")
    if length != NEG_LENGTH:
        raise reader.error(f"{name} length is {length}, expected {NEG_LENGTH}")
