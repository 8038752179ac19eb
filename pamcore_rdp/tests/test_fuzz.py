"""Fuzz tests: malformed input to every RDP parser gives RdpProtocolError, never a crash.

Inputs are random bytes, random payloads in valid TPKT / X.224 framing (to get past the first
check), and mutations of real xfreerdp frames (flipped, inserted, deleted bytes, truncation)
with and without the TPKT length repaired. Any exception other than RdpProtocolError fails,
as does an error message that names no layer or quotes the test password.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamcore_rdp.pdu import clientinfo, gcc, mcs, wire, x224
from pamcore_rdp.pdu.errors import RdpProtocolError
from rdp_frames import (
    ATTACH_USER_REQUEST,
    CHANNEL_JOIN_IO,
    CLIENT_INFO,
    CLIENT_INFO_NO_PASSWORD,
    CONFIRM_TLS,
    CONNECT_INITIAL,
    CONNECT_RESPONSE,
    ERECT_DOMAIN_REQUEST,
    XFREERDP_COOKIE,
    XFREERDP_LOAD_BALANCE,
    connect_initial,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: Every layer name an error message may start with.
LAYERS = (
    "TPKT",
    "RDP frame",
    "fast-path PDU",
    "X.224",
    "MCS",
    "GCC",
    "Client Info PDU",
)
PASSWORD = "S3cret-Pw"

PARSERS: dict[str, Callable[[bytes], object]] = {
    "tpkt_payload": lambda data: wire.tpkt_payload(data, "TPKT"),
    "x224_payload": wire.x224_payload,
    "tpkt_length": wire.tpkt_length,
    "fastpath_length": wire.fastpath_length,
    "frame_length": wire.frame_length,
    "connection_request": x224.parse_connection_request,
    "connection_confirm": x224.parse_connection_confirm,
    "connect_initial": gcc.parse_connect_initial,
    "patch_server_selected_protocol": lambda data: gcc.patch_server_selected_protocol(data, 2),
    "connect_response": gcc.parse_connect_response,
    "domain_pdu_choice": mcs.domain_pdu_choice,
    "erect_domain_request": mcs.parse_erect_domain_request,
    "attach_user_request": mcs.parse_attach_user_request,
    "channel_join_request": mcs.parse_channel_join_request,
    "send_data_request": mcs.parse_send_data_request,
    "send_data_indication": mcs.parse_send_data_indication,
    "disconnect_provider_ultimatum": mcs.parse_disconnect_provider_ultimatum,
    "client_info": clientinfo.parse_client_info,
    "client_info_frame": clientinfo.read_client_info_frame,
    "rewrite_client_info": lambda data: clientinfo.rewrite_client_info(data, "D", "u", "p"),
}
SEEDS = (
    XFREERDP_COOKIE,
    XFREERDP_LOAD_BALANCE,
    CONFIRM_TLS,
    CONNECT_INITIAL,
    CONNECT_RESPONSE,
    ERECT_DOMAIN_REQUEST,
    ATTACH_USER_REQUEST,
    CHANNEL_JOIN_IO,
    CLIENT_INFO,
    CLIENT_INFO_NO_PASSWORD,
    mcs.encode_disconnect_provider_ultimatum(),
)


def check(parser: Callable[[bytes], object], data: bytes) -> None:
    """The parser returns, or raises RdpProtocolError with a layered message and no secret."""
    try:
        parser(data)
    except RdpProtocolError as exc:
        message = str(exc)
        assert message.startswith(LAYERS), message
        assert PASSWORD not in message
        assert PASSWORD.encode("utf-16-le").hex() not in message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not frame:
            break
        where = draw(st.integers(0, len(frame) - 1))
        action = draw(st.sampled_from(("set", "insert", "delete", "truncate")))
        if action == "set":
            frame[where] = draw(st.integers(0, 255))
        elif action == "insert":
            frame[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del frame[where : where + draw(st.integers(1, 8))]
        else:
            del frame[where:]
    if draw(st.booleans()) and 4 <= len(frame) <= 0xFFFF:
        struct.pack_into(">H", frame, 2, len(frame))  # repair the TPKT length: go deeper
    return bytes(frame)


def framed() -> st.SearchStrategy[bytes]:
    payload = st.binary(max_size=600)
    return st.one_of(
        st.binary(max_size=600),
        payload.map(wire.tpkt),
        payload.map(wire.x224_data),
        payload.map(lambda data: wire.x224_data(b"\x7f\x65" + data)),
        payload.map(lambda data: wire.x224_data(b"\x64\x00\x06\x03\xeb\x70" + data)),
    )


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=framed())
def test_random_input(name: str, data: bytes) -> None:
    check(PARSERS[name], data)


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(data=mutated())
def test_mutated_real_frames(name: str, data: bytes) -> None:
    check(PARSERS[name], data)


@FUZZ
@given(body=st.binary(max_size=300), flags=st.integers(0, 0xFFFF))
def test_client_info_body_after_a_valid_header(body: bytes, flags: int) -> None:
    """Send Data framing and security header valid, TS_INFO_PACKET random."""
    security = struct.pack("<HH", flags | clientinfo.SEC_INFO_PKT, 0)
    check(
        clientinfo.read_client_info_frame, mcs.encode_send_data_request(1007, 1003, security + body)
    )


@FUZZ
@given(blocks=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=260)), max_size=5))
def test_connect_initial_with_random_blocks(blocks: list[tuple[int, bytes]]) -> None:
    """A well-formed BER/PER envelope around random (often CS_CORE/CS_NET typed) data blocks."""
    kinds = (gcc.CS_CORE, gcc.CS_SECURITY, gcc.CS_NET)
    data = b"".join(
        struct.pack("<HH", kinds[kind % 3] if kind % 2 else kind, 4 + len(raw)) + raw
        for kind, raw in blocks
    )
    check(gcc.parse_connect_initial, connect_initial(data))
    check(lambda frame: gcc.patch_server_selected_protocol(frame, 8), connect_initial(data))


# -- round trips ------------------------------------------------------------------------------

text = st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=60)
line = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\r\n"))


@FUZZ
@given(
    cookie=st.none() | line,
    token=line.filter(lambda s: not s.startswith("Cookie: ")),
    protocols=st.integers(0, 0xFFFFFFFF),
    flags=st.sampled_from((0, 1, 2, 3)),
    use_token=st.booleans(),
)
def test_connection_request_round_trip(
    cookie: str | None, token: str, protocols: int, flags: int, use_token: bool
) -> None:
    routing = token if use_token else None
    cookie = None if use_token else cookie
    frame = x224.encode_connection_request(cookie, routing, protocols, flags)
    request = x224.parse_connection_request(frame)
    assert (request.cookie, request.routing_token) == (cookie, routing)
    assert (request.requested_protocols, request.neg_flags) == (protocols, flags)


@FUZZ
@given(domain=text, user=text, password=text, shell=text, extra=st.binary(max_size=200))
def test_client_info_round_trip(
    domain: str, user: str, password: str, shell: str, extra: bytes
) -> None:
    info = clientinfo.ClientInfo(
        0, clientinfo.INFO_UNICODE, domain, user, password, shell, "", extra
    )
    frame = mcs.encode_send_data_request(
        1007, 1003, b"\x40\0\0\0" + clientinfo.encode_client_info(info)
    )
    assert clientinfo.read_client_info_frame(frame) == info
    rewritten = clientinfo.rewrite_client_info(frame, user, domain, shell)
    again = clientinfo.read_client_info_frame(rewritten)
    assert (again.domain, again.username, again.password, again.extra) == (
        user,
        domain,
        shell,
        extra,
    )


@FUZZ
@given(
    data=st.binary(max_size=0x7FFF),
    initiator=st.integers(1001, 0xFFFF),
    channel=st.integers(0, 0xFFFF),
)
def test_send_data_round_trip(data: bytes, initiator: int, channel: int) -> None:
    for encode, parse in (
        (mcs.encode_send_data_request, mcs.parse_send_data_request),
        (mcs.encode_send_data_indication, mcs.parse_send_data_indication),
    ):
        assert parse(encode(initiator, channel, data)) == mcs.SendData(initiator, channel, data)


# -- the listener's read loop ------------------------------------------------------------------


async def read_loop(stream: bytes) -> tuple[list[bytes], str]:
    """What a listener does: read frames until the peer errs or leaves; returns how it ended."""
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    frames: list[bytes] = []
    while True:
        try:
            frames.append(await wire.read_pdu(reader, timeout=1.0))
        except RdpProtocolError as exc:
            assert str(exc).startswith(LAYERS)
            return frames, "protocol error"
        except asyncio.IncompleteReadError:
            return frames, "closed"


@FUZZ
@given(
    parts=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SEEDS), mutated()), max_size=6)
)
def test_read_loop_survives_garbage(parts: list[bytes]) -> None:
    stream = b"".join(parts)
    frames, _ending = asyncio.run(read_loop(stream))
    # Every frame returned is a prefix-exact slice of the stream: nothing invented or lost.
    consumed = b"".join(frames)
    assert stream.startswith(consumed)
    for frame in frames:
        assert wire.frame_length(frame) == len(frame)


def test_read_loop_reads_every_seed_then_stops_at_garbage() -> None:
    frames, ending = asyncio.run(read_loop(b"".join(SEEDS) + b"\x05garbage"))
    assert frames == list(SEEDS)
    assert ending == "protocol error"
