"""X.224 Connection Request / Confirm (MS-RDPBCGR 2.2.1.1, 2.2.1.2) against real xfreerdp bytes."""

from __future__ import annotations

import pytest
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.x224 import (
    CORRELATION_INFO_PRESENT,
    EXTENDED_CLIENT_DATA_SUPPORTED,
    HYBRID_REQUIRED_BY_SERVER,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    ConnectionConfirm,
    ConnectionRequest,
    encode_connection_confirm,
    encode_connection_request,
    parse_connection_confirm,
    parse_connection_request,
)
from rdp_frames import CONFIRM_TLS, XFREERDP_COOKIE, XFREERDP_LOAD_BALANCE, XFREERDP_TLS_ONLY


def test_xfreerdp_cookie() -> None:
    assert parse_connection_request(XFREERDP_COOKIE) == ConnectionRequest(
        cookie="alice", requested_protocols=PROTOCOL_SSL | PROTOCOL_HYBRID
    )


def test_xfreerdp_load_balance_info_is_a_bare_routing_token_line() -> None:
    request = parse_connection_request(XFREERDP_LOAD_BALANCE)
    assert request.routing_token == "tsv://MS Terminal Services Plugin.1.sess-42"
    assert request.cookie is None
    assert request.requested_protocols == PROTOCOL_SSL | PROTOCOL_HYBRID


def test_xfreerdp_tls_only() -> None:
    request = parse_connection_request(XFREERDP_TLS_ONLY)
    assert (request.cookie, request.requested_protocols) == ("bob", PROTOCOL_SSL)


def test_msts_cookie_after_a_redirection_is_a_routing_token() -> None:
    variable = b"Cookie: msts=T0k-en_42\r\n" + bytes.fromhex("0100080001000000")
    frame = bytes([3, 0, 0, 11 + len(variable), 6 + len(variable), 0xE0, 0, 0, 0, 0, 0])
    request = parse_connection_request(frame + variable)
    assert request == ConnectionRequest(routing_token="T0k-en_42", requested_protocols=1)


def test_encoder_reproduces_xfreerdp_bytes() -> None:
    assert encode_connection_request(cookie="alice") == XFREERDP_COOKIE
    assert (
        encode_connection_request(routing_token="tsv://MS Terminal Services Plugin.1.sess-42")
        == XFREERDP_LOAD_BALANCE
    )
    assert encode_connection_request(cookie="bob", requested_protocols=1) == XFREERDP_TLS_ONLY


@pytest.mark.parametrize(
    "request_",
    [
        ConnectionRequest(requested_protocols=PROTOCOL_HYBRID_EX | PROTOCOL_SSL, neg_flags=1),
        ConnectionRequest(cookie="", requested_protocols=PROTOCOL_RDP),
        ConnectionRequest(routing_token="Z" * 200, requested_protocols=PROTOCOL_HYBRID),
        ConnectionRequest(cookie="dömäin\\üser"),
    ],
)
def test_request_round_trip(request_: ConnectionRequest) -> None:
    frame = encode_connection_request(
        request_.cookie, request_.routing_token, request_.requested_protocols, request_.neg_flags
    )
    assert parse_connection_request(frame) == request_


def test_request_without_negotiation_is_legacy_rdp() -> None:
    frame = bytes.fromhex("0300000b06e00000000000")
    assert parse_connection_request(frame) == ConnectionRequest(negotiation=False)


def test_request_with_correlation_info() -> None:
    neg = bytes([1, CORRELATION_INFO_PRESENT, 8, 0, 3, 0, 0, 0])
    correlation = bytes([6, 0, 36, 0]) + bytes(range(1, 17)) + bytes(16)
    body = bytes([0xE0, 0, 0, 0, 0, 0]) + neg + correlation
    frame = bytes([3, 0, 0, 5 + len(body), len(body)]) + body
    request = parse_connection_request(frame)
    assert (request.requested_protocols, request.neg_flags) == (3, CORRELATION_INFO_PRESENT)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            bytes.fromhex("03000007 02f080"),
            "X.224 Connection Request: TPKT length 7 is shorter than the 11-byte header",
        ),
        (bytes.fromhex("0300000b06d00000000000"), "TPDU code is 0xd0, expected 0xe0"),
        (bytes.fromhex("0300000c06e0000000000000"), "1 bytes follow the 6-byte TPDU"),
        (bytes.fromhex("0300000b09e00000000000"), "length indicator 9 is outside 6..6"),
        (bytes.fromhex("0300000c06e00000000000"), "TPKT length 12 does not match the 11-byte"),
        (XFREERDP_COOKIE[:-1], "TPKT length 43 does not match the 42-byte frame"),
        (
            bytes.fromhex("0300000e09e00000000000") + b"abc",
            "not terminated by CR LF",
        ),
        (
            bytes.fromhex("03000013 0ee00000000000 0100090003000000"),
            "RDP_NEG_REQ length is 9, expected 8",
        ),
        (
            bytes.fromhex("03000012 0de00000000000 01000800030000"),
            "RDP_NEG_REQ requestedProtocols needs 4 bytes at offset 11, but only 3 remain",
        ),
        (
            bytes.fromhex("03000014 0fe00000000000 0100080003000000 ff"),
            "1 unexpected bytes after offset 15",
        ),
    ],
)
def test_malformed_request_names_the_field(frame: bytes, message: str) -> None:
    with pytest.raises(RdpProtocolError) as caught:
        parse_connection_request(frame)
    assert message in str(caught.value)
    assert str(caught.value).startswith("X.224 Connection Request: ")


def test_confirm_tls() -> None:
    assert parse_connection_confirm(CONFIRM_TLS) == ConnectionConfirm(PROTOCOL_SSL)
    assert encode_connection_confirm(PROTOCOL_SSL) == CONFIRM_TLS


@pytest.mark.parametrize(
    "confirm",
    [
        ConnectionConfirm(PROTOCOL_HYBRID, EXTENDED_CLIENT_DATA_SUPPORTED),
        ConnectionConfirm(PROTOCOL_RDP, failure_code=HYBRID_REQUIRED_BY_SERVER),
        ConnectionConfirm(PROTOCOL_HYBRID_EX, 0x1F),
    ],
)
def test_confirm_round_trip(confirm: ConnectionConfirm) -> None:
    frame = encode_connection_confirm(
        confirm.selected_protocol, confirm.flags, confirm.failure_code
    )
    assert parse_connection_confirm(frame) == confirm


def test_confirm_without_negotiation_is_standard_rdp_security() -> None:
    frame = bytes.fromhex("0300000b06d00000123400")
    assert parse_connection_confirm(frame) == ConnectionConfirm(PROTOCOL_RDP)


def test_malformed_confirm() -> None:
    bad_type = bytes.fromhex("03000013 0ed00000123400 0400080001000000")
    with pytest.raises(RdpProtocolError, match=r"negotiation type is 0x04, expected 0x02"):
        parse_connection_confirm(bad_type)
    with pytest.raises(RdpProtocolError, match=r"^X.224 Connection Confirm: TPDU code is 0xe0"):
        parse_connection_confirm(XFREERDP_COOKIE)


def test_encoder_rejects_what_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="not both"):
        encode_connection_request(cookie="a", routing_token="b")
    with pytest.raises(ValueError, match="CR or LF"):
        encode_connection_request(routing_token="a\r\nCookie: mstshash=x")
