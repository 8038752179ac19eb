"""Client Info PDU (MS-RDPBCGR 2.2.1.11) parse, re-encode and credential rewrite."""

from __future__ import annotations

import dataclasses

import pytest
from pamcore_rdp.pdu.clientinfo import (
    INFO_AUTOLOGON,
    INFO_PASSWORD_IS_SC_PIN,
    INFO_UNICODE,
    SEC_ENCRYPT,
    SEC_INFO_PKT,
    ClientInfo,
    encode_client_info,
    parse_client_info,
    read_client_info_frame,
    rewrite_client_info,
)
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.mcs import encode_send_data_request, parse_send_data_request
from pamcore_rdp.pdu.wire import tpkt_payload
from rdp_frames import CLIENT_INFO, CLIENT_INFO_NO_PASSWORD

SECURITY_HEADER = SEC_INFO_PKT.to_bytes(2, "little") + b"\0\0"


def info_frame(info: ClientInfo, security: bytes = SECURITY_HEADER) -> bytes:
    return encode_send_data_request(1007, 1003, security + encode_client_info(info))


def test_xfreerdp_client_info() -> None:
    info = read_client_info_frame(CLIENT_INFO)
    assert (info.domain, info.username, info.password) == ("CORP", "alice", "S3cret-Pw")
    assert info.flags & INFO_UNICODE
    assert (info.alternate_shell, info.working_dir) == ("", "")
    # TS_EXTENDED_INFO_PACKET: clientAddressFamily AF_INET, cbClientAddress 20, "127.0.0.1\0".
    assert info.extra.startswith(b"\x02\x00\x14\x00" + "127.0.0.1\0".encode("utf-16-le"))


def test_xfreerdp_client_info_without_password() -> None:
    info = read_client_info_frame(CLIENT_INFO_NO_PASSWORD)
    assert (info.domain, info.username, info.password) == ("", "bob", "")
    assert "password=<empty>" in repr(info)


def test_repr_hides_the_password() -> None:
    info = read_client_info_frame(CLIENT_INFO)
    for text in (repr(info), str(info), f"{info}", repr([info])):
        assert "S3cret" not in text
        assert "password=<set>" in text


def test_real_bytes_re_encode_identically() -> None:
    for frame in (CLIENT_INFO, CLIENT_INFO_NO_PASSWORD):
        data = parse_send_data_request(frame).data[4:]
        assert encode_client_info(parse_client_info(data)) == data


@pytest.mark.parametrize(
    "info",
    [
        ClientInfo(0, INFO_UNICODE, "DÖMÄNE", "jürgen", "пароль-🔑", "cmd.exe", "C:\\"),
        ClientInfo(1252, 0, "CORP", "ansi", "pässwörd", extra=b"\x02\x00"),
        ClientInfo(0, INFO_UNICODE, "", "", "", extra=b"x" * 300),
        ClientInfo(0, INFO_UNICODE, "d", "u" * 256, "p" * 256),
    ],
)
def test_round_trip(info: ClientInfo) -> None:
    assert parse_client_info(encode_client_info(info)) == info
    assert read_client_info_frame(info_frame(info)) == info


def test_rewrite_injects_the_credential_and_autologon() -> None:
    rewritten = rewrite_client_info(CLIENT_INFO, "", "rdptest", "Secr3t-Pw1")
    original = read_client_info_frame(CLIENT_INFO)
    info = read_client_info_frame(rewritten)
    assert (info.domain, info.username, info.password) == ("", "rdptest", "Secr3t-Pw1")
    assert info.flags == original.flags | INFO_AUTOLOGON
    assert info.extra == original.extra
    request, before = parse_send_data_request(rewritten), parse_send_data_request(CLIENT_INFO)
    assert (request.initiator, request.channel_id) == (before.initiator, before.channel_id)
    assert request.data[:4] == before.data[:4]  # security header kept
    # CORP (4 chars) and alice/S3cret-Pw (5+9) -> '' and rdptest/Secr3t-Pw1 (7+10): +6 bytes.
    assert len(rewritten) == len(CLIENT_INFO) + 2 * (0 + 7 + 10 - 4 - 5 - 9)
    assert len(tpkt_payload(rewritten, "test")) == len(rewritten) - 4


def test_rewrite_crosses_the_one_byte_per_length() -> None:
    small = info_frame(ClientInfo(0, INFO_UNICODE | INFO_PASSWORD_IS_SC_PIN, "", "u", ""))
    assert small[7 + 6] < 0x80  # one-byte PER length before
    rewritten = rewrite_client_info(small, "CORP", "administrator", "x" * 60)
    assert rewritten[7 + 6] & 0x80  # two-byte PER length after
    info = read_client_info_frame(rewritten)
    assert info.password == "x" * 60
    assert info.flags == INFO_UNICODE | INFO_AUTOLOGON  # the smart-card PIN flag is cleared


def test_rewrite_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="Password is 1026 bytes; at most 512 fit") as caught:
        rewrite_client_info(CLIENT_INFO, "", "u", "p" * 513)
    assert "ppp" not in str(caught.value)
    ansi = info_frame(ClientInfo(1252, 0, "", "u", ""))
    with pytest.raises(ValueError, match="Password cannot be written in the client's ANSI"):
        rewrite_client_info(ansi, "", "u", "密码")
    with pytest.raises(ValueError, match="UserName must not contain NUL"):
        rewrite_client_info(CLIENT_INFO, "", "a\0b", "")


def info_bytes() -> bytes:
    return parse_send_data_request(CLIENT_INFO).data[4:]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (info_bytes()[:17], "cbWorkingDir needs 2 bytes at offset 16, but only 1 remain"),
        (
            info_bytes()[:8] + b"\x03\x00" + info_bytes()[10:],
            "cbDomain is 3; expected an even byte count of at most 512",
        ),
        (
            info_bytes()[:12] + b"\x02\x04" + info_bytes()[14:],
            "cbPassword is 1026; expected an even byte count of at most 512",
        ),
        (
            info_bytes()[:26] + b"\x41\x00" + info_bytes()[28:],
            "Domain is not followed by its NUL terminator",
        ),
        (info_bytes()[:50], "Password needs 18 bytes at offset 40, but only 10 remain"),
    ],
    ids=["truncated-header", "odd-size", "oversize", "no-terminator", "truncated-password"],
)
def test_malformed_info_packet(data: bytes, message: str) -> None:
    with pytest.raises(RdpProtocolError) as caught:
        parse_client_info(data)
    assert str(caught.value) == f"Client Info PDU: {message}"
    assert "S3cret" not in str(caught.value)


def test_security_header_is_checked() -> None:
    info = ClientInfo(0, INFO_UNICODE, "", "u", "p")
    with pytest.raises(RdpProtocolError, match="flags 0x0000 lack SEC_INFO_PKT"):
        read_client_info_frame(info_frame(info, b"\0\0\0\0"))
    encrypted = (SEC_INFO_PKT | SEC_ENCRYPT).to_bytes(2, "little") + b"\0\0"
    with pytest.raises(RdpProtocolError, match="encrypted with standard RDP security"):
        read_client_info_frame(info_frame(info, encrypted))
    with pytest.raises(RdpProtocolError, match="security header needs 4 bytes"):
        read_client_info_frame(encode_send_data_request(1007, 1003, b"\x40\x00"))


def test_ansi_info_packet() -> None:
    info = ClientInfo(1252, INFO_AUTOLOGON, "CORP", "bob", "pw")
    data = encode_client_info(info)
    assert data[18:23] == b"CORP\0"
    assert dataclasses.replace(parse_client_info(data), password="") == dataclasses.replace(
        info, password=""
    )


def test_nul_inside_a_string_is_malformed() -> None:
    data = bytearray(encode_client_info(ClientInfo(0, INFO_UNICODE, "", "ab", "")))
    data[20:22] = b"\0\0"  # the second character of UserName
    with pytest.raises(
        RdpProtocolError, match="UserName has a NUL character inside its cbUserName"
    ):
        parse_client_info(bytes(data))
