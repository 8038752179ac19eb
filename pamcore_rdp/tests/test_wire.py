"""TPKT / fast-path framing, X.224 data TPDUs and the PER/BER codecs."""

from __future__ import annotations

import asyncio

import pytest
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.wire import (
    BER_OCTET_STRING,
    ByteReader,
    ber_integer,
    ber_length,
    ber_tlv,
    frame_length,
    per_length,
    read_pdu,
    tpkt,
    tpkt_payload,
    x224_data,
    x224_payload,
)


def read_frames(data: bytes, timeout: float = 1.0, eof: bool = True) -> list[bytes | str]:
    """Feed ``data`` to a StreamReader and read frames until an error, whose kind ends the list."""

    async def scenario() -> list[bytes | str]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        frames: list[bytes | str] = []
        while True:
            try:
                frames.append(await read_pdu(reader, timeout))
            except RdpProtocolError as exc:
                frames.append(f"error: {exc}")
                return frames
            except asyncio.IncompleteReadError:
                frames.append("eof")
                return frames
            except TimeoutError:
                frames.append("timeout")
                return frames

    return asyncio.run(scenario())


def test_reads_tpkt_and_fast_path_frames_back_to_back() -> None:
    slow = x224_data(b"hello")
    fast_short = bytes([0x04, 0x05, 0x01, 0x02, 0x03])
    fast_long = bytes([0x00, 0x81, 0x04]) + bytes(0x104 - 3)
    assert read_frames(slow + fast_short + fast_long) == [slow, fast_short, fast_long, "eof"]


def test_largest_tpkt_frame() -> None:
    frame = tpkt(bytes(0xFFFF - 4))
    assert read_frames(frame) == [frame, "eof"]
    with pytest.raises(ValueError, match="exceeds the 65535-byte packet"):
        tpkt(bytes(0xFFFF - 3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x03\x00\x00\x06\x02\xf0", "TPKT: length 6 is shorter than the 7-byte minimum"),
        (b"\x01\x00", "first byte 0x01 starts neither a TPKT (0x03) nor a fast-path PDU"),
        (b"\x07\x00\x00\x10", "first byte 0x07"),
        (b"\x00\x02", "fast-path PDU: length 2 does not exceed its 2-byte header"),
        (b"\x00\x80\x03", "fast-path PDU: length 3 does not exceed its 3-byte header"),
    ],
)
def test_bad_headers_are_protocol_errors(data: bytes, message: str) -> None:
    [result] = read_frames(data)
    assert isinstance(result, str)
    assert message in result


def test_frame_length_asks_for_the_header_it_needs() -> None:
    tpkt_frame = x224_data(b"abc")
    assert [frame_length(tpkt_frame[:n]) for n in range(5)] == [None, None, None, None, 10]
    assert [frame_length(b"\x00\x81\x04"[:n]) for n in range(4)] == [None, None, None, 0x104]
    assert frame_length(b"\x44\x05") == 5
    with pytest.raises(RdpProtocolError, match="first byte 0x16 starts neither"):
        frame_length(b"\x16")  # a TLS record where RDP was expected


def test_truncated_frame_is_incomplete_read() -> None:
    assert read_frames(x224_data(b"abcdef")[:-1]) == ["eof"]


def test_silent_peer_times_out() -> None:
    assert read_frames(x224_data(b"abc")[:5], timeout=0.05, eof=False) == ["timeout"]


def test_x224_data_round_trip_and_checks() -> None:
    frame = x224_data(b"\x7f\x65")
    assert frame == bytes.fromhex("03000009 02f080 7f65")
    assert x224_payload(frame) == b"\x7f\x65"
    with pytest.raises(RdpProtocolError, match=r"^MCS: X.224 Data header .* is 02 f0 00"):
        x224_payload(bytes.fromhex("03000009 02f000 7f65"), "MCS")
    with pytest.raises(RdpProtocolError, match="TPKT length 9 does not match the 8-byte frame"):
        x224_payload(frame[:-1])
    with pytest.raises(RdpProtocolError, match="TPKT version is 4, expected 3"):
        tpkt_payload(b"\x04" + frame[1:], "X")
    with pytest.raises(RdpProtocolError, match="3 bytes are shorter than the 4-byte TPKT header"):
        tpkt_payload(frame[:3], "X")


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (0x7F, "7f"), (0x80, "8080"), (0x1234, "9234"), (0x7FFF, "ffff")],
)
def test_per_length(length: int, encoded: str) -> None:
    assert per_length(length).hex() == encoded
    assert ByteReader(bytes.fromhex(encoded), "T").per_length("f") == length


def test_per_length_limits() -> None:
    with pytest.raises(ValueError):
        per_length(0x8000)
    with pytest.raises(RdpProtocolError, match=r"^GCC: userData \(PER length, second byte\)"):
        ByteReader(b"\x81", "GCC").per_length("userData")


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (0x7F, "7f"), (0x80, "8180"), (0xFF, "81ff"), (0x100, "820100")],
)
def test_ber_length(length: int, encoded: str) -> None:
    assert ber_length(length).hex() == encoded
    assert ByteReader(bytes.fromhex(encoded), "T").ber_length("f") == length


def test_ber_values() -> None:
    assert ber_integer(0).hex() == "020100"
    assert ber_integer(128).hex() == "02020080"
    assert ber_integer(65535).hex() == "020300ffff"
    for value in (0, 1, 127, 128, 1003, 65535, 0xFFFFFF):
        assert ByteReader(ber_integer(value), "T").ber_integer("n") == value
    reader = ByteReader(ber_tlv(BER_OCTET_STRING, b"\x01" * 300), "MCS Connect Initial")
    assert reader.ber_tlv(BER_OCTET_STRING, "userData") == b"\x01" * 300
    with pytest.raises(RdpProtocolError, match="indefinite lengths are not used"):
        ByteReader(b"\x04\x80", "MCS").ber_tlv(BER_OCTET_STRING, "userData")
    with pytest.raises(RdpProtocolError, match=r"^MCS: userData tag is 30, expected 04"):
        ByteReader(b"\x30\x00", "MCS").ber_tlv(BER_OCTET_STRING, "userData")
    with pytest.raises(RdpProtocolError, match="5-byte INTEGER, expected 1 to 4 bytes"):
        ByteReader(bytes.fromhex("02050000000000"), "MCS").ber_integer("maxChannelIds")


def test_reader_messages_name_pdu_field_and_offset() -> None:
    reader = ByteReader(b"\x01\x02\x03", "Client Info")
    reader.u16le("codePage")
    with pytest.raises(RdpProtocolError) as caught:
        reader.u32le("flags")
    assert str(caught.value) == ("Client Info: flags needs 4 bytes at offset 2, but only 1 remain")
