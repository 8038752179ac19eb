"""MCS (T.125) domain PDUs of RDP's Channel Connection and of everything after it.

The front, acting as the RDP server, runs the domain PDUs (Erect Domain, Attach User, Channel
Join) after the GCC conference (:mod:`pamcore_rdp.pdu.gcc`), then Send Data carries everything
else; a Disconnect Provider Ultimatum ends the domain. MS-RDPBCGR 2.2.1.5-2.2.1.9; layouts
cross-checked with FreeRDP libfreerdp/core/mcs.c and xrdp libxrdp/xrdp_mcs.c. Every parser
takes a whole TPKT frame (what :func:`pamcore_rdp.pdu.wire.read_pdu` returns) and every encoder
returns one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.wire import ByteReader, per_length, x224_data, x224_payload

#: MCS user ids are DynamicChannelIDs, written as 16 bits above 1001 (T.125 UserId).
USER_ID_BASE = 1001

#: DomainMCSPDU CHOICE indexes (T.125 §11.x; the high 6 bits of the first byte).
ERECT_DOMAIN_REQUEST = 1
DISCONNECT_PROVIDER_ULTIMATUM = 8
ATTACH_USER_REQUEST = 10
ATTACH_USER_CONFIRM = 11
CHANNEL_JOIN_REQUEST = 14
CHANNEL_JOIN_CONFIRM = 15
SEND_DATA_REQUEST = 25
SEND_DATA_INDICATION = 26
_DOMAIN_PDU_NAMES = {
    ERECT_DOMAIN_REQUEST: "ErectDomainRequest",
    DISCONNECT_PROVIDER_ULTIMATUM: "DisconnectProviderUltimatum",
    ATTACH_USER_REQUEST: "AttachUserRequest",
    ATTACH_USER_CONFIRM: "AttachUserConfirm",
    CHANNEL_JOIN_REQUEST: "ChannelJoinRequest",
    CHANNEL_JOIN_CONFIRM: "ChannelJoinConfirm",
    SEND_DATA_REQUEST: "SendDataRequest",
    SEND_DATA_INDICATION: "SendDataIndication",
}
#: Disconnect Provider Ultimatum reasons (T.125 Reason).
RN_DOMAIN_DISCONNECTED = 0
RN_PROVIDER_INITIATED = 1
RN_USER_REQUESTED = 3
#: Send Data dataPriority high + segmentation begin|end, as every RDP peer writes it.
_SEND_DATA_FLAGS = 0x70


@dataclass(frozen=True)
class ChannelJoinRequest:
    initiator: int
    channel_id: int


@dataclass(frozen=True)
class SendData:
    """A Send Data Request (client to server) or Indication (server to client)."""

    initiator: int
    channel_id: int
    data: bytes


# -- domain PDUs (2.2.1.5-2.2.1.9, then Send Data for everything else) -----------------------


def domain_pdu_choice(frame: bytes) -> int:
    """The DomainMCSPDU CHOICE index of an MCS frame, to dispatch on (e.g. a Disconnect)."""
    reader = ByteReader(x224_payload(frame, "MCS domain PDU"), "MCS domain PDU")
    return reader.u8("DomainMCSPDU choice") >> 2


def parse_erect_domain_request(frame: bytes) -> tuple[int, int]:
    """Check an Erect Domain Request (2.2.1.5); returns (subHeight, subInterval)."""
    reader = _domain_reader(frame, ERECT_DOMAIN_REQUEST)
    sub_height = reader.per_integer("subHeight")
    sub_interval = reader.per_integer("subInterval")
    return sub_height, sub_interval


def parse_attach_user_request(frame: bytes) -> None:
    """Check an Attach User Request (2.2.1.6): it has no fields, only its choice."""
    _domain_reader(frame, ATTACH_USER_REQUEST).end()


def encode_attach_user_confirm(user_id: int) -> bytes:
    """Attach User Confirm (2.2.1.7): result rt-successful and the initiator (user id)."""
    return x224_data(bytes([(ATTACH_USER_CONFIRM << 2) | 0x02, 0x00]) + _user_id(user_id))


def parse_channel_join_request(frame: bytes) -> ChannelJoinRequest:
    """Channel Join Request (2.2.1.8): which user asks for which channel."""
    reader = _domain_reader(frame, CHANNEL_JOIN_REQUEST)
    initiator = reader.per_integer16(USER_ID_BASE, "initiator")
    channel_id = reader.u16be("channelId")
    reader.end()
    return ChannelJoinRequest(initiator, channel_id)


def encode_channel_join_confirm(initiator: int, channel_id: int) -> bytes:
    """Channel Join Confirm (2.2.1.9), successful, joining the channel that was requested."""
    return x224_data(
        bytes([(CHANNEL_JOIN_CONFIRM << 2) | 0x02, 0x00])
        + _user_id(initiator)
        + struct.pack(">HH", channel_id, channel_id)
    )


def parse_send_data_request(frame: bytes) -> SendData:
    """Send Data Request (client to server, T.125 SDrq; MS-RDPBCGR 2.2.1.11 and later)."""
    return _parse_send_data(frame, SEND_DATA_REQUEST)


def parse_send_data_indication(frame: bytes) -> SendData:
    """Send Data Indication (server to client, T.125 SDin)."""
    return _parse_send_data(frame, SEND_DATA_INDICATION)


def encode_send_data_request(initiator: int, channel_id: int, data: bytes) -> bytes:
    return _encode_send_data(SEND_DATA_REQUEST, initiator, channel_id, data)


def encode_send_data_indication(initiator: int, channel_id: int, data: bytes) -> bytes:
    return _encode_send_data(SEND_DATA_INDICATION, initiator, channel_id, data)


def encode_disconnect_provider_ultimatum(reason: int = RN_USER_REQUESTED) -> bytes:
    """Disconnect Provider Ultimatum (T.125): the 3-bit reason straddles the first two bytes."""
    if not 0 <= reason <= 4:
        raise ValueError(f"Disconnect Provider Ultimatum reason {reason} is outside 0..4")
    return x224_data(
        bytes([(DISCONNECT_PROVIDER_ULTIMATUM << 2) | (reason >> 1), (reason & 1) << 7])
    )


def parse_disconnect_provider_ultimatum(frame: bytes) -> int:
    """The reason of a Disconnect Provider Ultimatum (3 = the user asked to disconnect)."""
    payload = x224_payload(frame, "MCS DisconnectProviderUltimatum")
    reader = ByteReader(payload, "MCS DisconnectProviderUltimatum")
    first = reader.u8("DomainMCSPDU choice")
    if first >> 2 != DISCONNECT_PROVIDER_ULTIMATUM:
        raise reader.error(_wrong_choice(first >> 2, DISCONNECT_PROVIDER_ULTIMATUM))
    second = reader.u8("reason")
    return ((first & 0x03) << 1) | (second >> 7)


def _parse_send_data(frame: bytes, choice: int) -> SendData:
    reader = _domain_reader(frame, choice)
    initiator = reader.per_integer16(USER_ID_BASE, "initiator")
    channel_id = reader.u16be("channelId")
    reader.u8("dataPriority and segmentation")
    length = reader.per_length("userData")
    if length != reader.remaining:
        raise reader.error(
            f"userData length {length} does not match the {reader.remaining} bytes that follow"
        )
    return SendData(initiator, channel_id, reader.rest())


def _encode_send_data(choice: int, initiator: int, channel_id: int, data: bytes) -> bytes:
    header = (
        bytes([choice << 2])
        + _user_id(initiator)
        + struct.pack(">HB", channel_id, _SEND_DATA_FLAGS)
    )
    return x224_data(header + per_length(len(data)) + data)


def _domain_reader(frame: bytes, choice: int) -> ByteReader:
    pdu = f"MCS {_DOMAIN_PDU_NAMES[choice]}"
    reader = ByteReader(x224_payload(frame, pdu), pdu)
    got = reader.u8("DomainMCSPDU choice") >> 2
    if got != choice:
        raise reader.error(_wrong_choice(got, choice))
    return reader


def _wrong_choice(got: int, expected: int) -> str:
    name = _DOMAIN_PDU_NAMES.get(got, "a PDU the proxy does not handle")
    return f"DomainMCSPDU choice is {got} ({name}), expected {expected}"


def _user_id(user_id: int) -> bytes:
    if not USER_ID_BASE <= user_id <= 0xFFFF:
        raise ValueError(f"MCS user id {user_id} is outside {USER_ID_BASE}..65535")
    return struct.pack(">H", user_id - USER_ID_BASE)
