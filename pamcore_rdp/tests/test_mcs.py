"""MCS domain PDUs (MS-RDPBCGR 2.2.1.5-2.2.1.9) against frames xfreerdp 2.11.7 sent and accepted."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from pamcore_rdp.certs import proxy_tls_context
from pamcore_rdp.pdu.clientinfo import ClientInfo, read_client_info_frame
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.gcc import (
    IO_CHANNEL_ID,
    encode_connect_response,
    parse_connect_initial,
    static_channel_ids,
    user_channel_id,
)
from pamcore_rdp.pdu.mcs import (
    CHANNEL_JOIN_REQUEST,
    DISCONNECT_PROVIDER_ULTIMATUM,
    RN_USER_REQUESTED,
    ChannelJoinRequest,
    SendData,
    domain_pdu_choice,
    encode_attach_user_confirm,
    encode_channel_join_confirm,
    encode_disconnect_provider_ultimatum,
    encode_send_data_indication,
    encode_send_data_request,
    parse_attach_user_request,
    parse_channel_join_request,
    parse_disconnect_provider_ultimatum,
    parse_erect_domain_request,
    parse_send_data_indication,
    parse_send_data_request,
)
from pamcore_rdp.pdu.wire import read_pdu, x224_payload
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_SSL,
    encode_connection_confirm,
    parse_connection_request,
)
from rdp_display import start_xfreerdp
from rdp_frames import (
    ATTACH_USER_REQUEST,
    CHANNEL_JOIN_IO,
    CHANNEL_JOIN_USER,
    CLIENT_INFO,
    ERECT_DOMAIN_REQUEST,
)

from pamcore.core import Pamcore


def test_domain_pdus_from_xfreerdp() -> None:
    assert parse_erect_domain_request(ERECT_DOMAIN_REQUEST) == (0, 0)
    assert parse_attach_user_request(ATTACH_USER_REQUEST) is None
    assert parse_channel_join_request(CHANNEL_JOIN_USER) == ChannelJoinRequest(1008, 1008)
    assert parse_channel_join_request(CHANNEL_JOIN_IO) == ChannelJoinRequest(1008, 1003)
    assert domain_pdu_choice(CHANNEL_JOIN_IO) == CHANNEL_JOIN_REQUEST


def test_confirms_as_freerdp_and_xrdp_write_them() -> None:
    assert x224_payload(encode_attach_user_confirm(1008)).hex() == "2e000007"
    assert x224_payload(encode_channel_join_confirm(1008, 1003)).hex() == "3e00000703eb03eb"
    with pytest.raises(ValueError, match="user id 1000"):
        encode_attach_user_confirm(1000)


def test_send_data_request_round_trip_of_client_info() -> None:
    request = parse_send_data_request(CLIENT_INFO)
    assert (request.initiator, request.channel_id, len(request.data)) == (1008, 1003, 0x154)
    assert encode_send_data_request(1008, 1003, request.data) == CLIENT_INFO


@pytest.mark.parametrize("size", [0, 1, 0x7F, 0x80, 0x3FFF])
def test_send_data_indication_round_trip(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = encode_send_data_indication(1002, 1003, data)
    assert parse_send_data_indication(frame) == SendData(1002, 1003, data)
    with pytest.raises(RdpProtocolError, match="choice is 26 .*expected 25"):
        parse_send_data_request(frame)


def test_send_data_length_must_match() -> None:
    frame = encode_send_data_request(1008, 1003, b"abcd")
    with pytest.raises(RdpProtocolError, match="userData length 4 does not match the 3 bytes"):
        parse_send_data_request(frame[:3] + bytes([frame[3] - 1]) + frame[4:-1])


def test_disconnect_provider_ultimatum() -> None:
    frame = encode_disconnect_provider_ultimatum()
    assert x224_payload(frame).hex() == "2180"  # what FreeRDP sends (rn-user-requested)
    assert domain_pdu_choice(frame) == DISCONNECT_PROVIDER_ULTIMATUM
    for reason in range(5):
        assert parse_disconnect_provider_ultimatum(
            encode_disconnect_provider_ultimatum(reason)
        ) == (reason)
    assert parse_disconnect_provider_ultimatum(frame) == RN_USER_REQUESTED


def test_wrong_domain_pdu_is_named() -> None:
    with pytest.raises(RdpProtocolError) as caught:
        parse_attach_user_request(ERECT_DOMAIN_REQUEST)
    assert str(caught.value) == (
        "MCS AttachUserRequest: DomainMCSPDU choice is 1 (ErectDomainRequest), expected 10"
    )
    with pytest.raises(RdpProtocolError, match=r"1 unexpected bytes after offset 1"):
        parse_attach_user_request(
            ATTACH_USER_REQUEST[:3] + b"\x09" + ATTACH_USER_REQUEST[4:] + b"\0"
        )


async def serve_until_client_info(
    tls: ssl.SSLContext, display: str
) -> tuple[list[int], ClientInfo]:
    """Act as the RDP server with this module's encoders alone, up to the Client Info of an
    xfreerdp on ``display``."""
    done: asyncio.Future[tuple[list[int], ClientInfo]] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = parse_connection_request(await read_pdu(reader, 5))
            writer.write(encode_connection_confirm(PROTOCOL_SSL))
            await writer.start_tls(tls)
            initial = parse_connect_initial(await read_pdu(reader, 5))
            count = len(initial.channels)
            writer.write(encode_connect_response(request.requested_protocols, count))
            parse_erect_domain_request(await read_pdu(reader, 5))
            parse_attach_user_request(await read_pdu(reader, 5))
            writer.write(encode_attach_user_confirm(user_channel_id(count)))
            joined = []
            for _ in range(2 + count):  # user channel, I/O channel, each static channel
                join = parse_channel_join_request(await read_pdu(reader, 5))
                joined.append(join.channel_id)
                writer.write(encode_channel_join_confirm(join.initiator, join.channel_id))
            info = read_client_info_frame(await read_pdu(reader, 5))
            if not done.done():
                done.set_result((joined, info))
        except Exception as exc:  # handed to the test, which shows it
            if not done.done():
                done.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = start_xfreerdp(
        [f"/v:127.0.0.1:{port}", "/u:alice", "/p:S3cret-Pw", "/d:CORP", "/sec:tls"], display
    )
    try:
        async with server:
            return await asyncio.wait_for(done, 15)
    finally:
        client.finish(0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the core only lends its certificate
def test_xfreerdp_completes_the_mcs_sequence_with_our_encoders(
    core: Pamcore, xvfb_display: str
) -> None:
    """Real xfreerdp accepts our Connect Response, Attach User and Channel Join Confirms:
    it joins every channel we assigned and goes on to send its Client Info."""
    joined, info = asyncio.run(serve_until_client_info(proxy_tls_context(core), xvfb_display))
    assert joined[:2] == [user_channel_id(len(joined) - 2), IO_CHANNEL_ID]
    assert joined[2:] == list(static_channel_ids(len(joined) - 2))
    assert (info.domain, info.username, info.password) == ("CORP", "alice", "S3cret-Pw")
