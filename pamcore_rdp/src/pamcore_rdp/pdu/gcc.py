"""The GCC conference of RDP's Basic Settings Exchange: MCS Connect Initial and Connect Response.

The client's Connect Initial (T.125 Connect-Initial carrying a T.124 GCC Conference Create
Request with the client data blocks, MS-RDPBCGR 2.2.1.3) is what the relay patches
(``serverSelectedProtocol``, ``earlyCapabilityFlags``) and the front parses; the front, acting
as the RDP server, answers with a Connect Response (T.124 Conference Create Response with the
server data blocks, 2.2.1.4). Layouts cross-checked with FreeRDP libfreerdp/core/gcc.c and
mcs.c and xrdp libxrdp/xrdp_sec.c. Every parser takes a whole TPKT frame (what
:func:`pamcore_rdp.pdu.wire.read_pdu` returns) and every encoder returns one; the domain PDUs
that follow are in :mod:`pamcore_rdp.pdu.mcs`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.mcs import USER_ID_BASE
from pamcore_rdp.pdu.wire import (
    BER_BOOLEAN,
    BER_ENUMERATED,
    BER_OCTET_STRING,
    BER_SEQUENCE,
    ByteReader,
    ber_integer,
    ber_tlv,
    per_length,
    x224_data,
    x224_payload,
)

#: BER application tags of Connect-Initial (101) and Connect-Response (102) (T.125 §11.1).
CONNECT_INITIAL_TAG = b"\x7f\x65"
CONNECT_RESPONSE_TAG = b"\x7f\x66"
#: T.124 ConnectData key: choice 0 (object) and OID 0.0.20.124.0.1 (FreeRDP t124_02_98_oid).
T124_IDENTIFIER = b"\x00\x05\x00\x14\x7c\x00\x01"
#: H.221 non-standard keys: client-to-server "Duca", server-to-client "McDn" (2.2.1.3, 2.2.1.4).
H221_CLIENT_KEY = b"Duca"
H221_SERVER_KEY = b"McDn"

#: Client data block types (2.2.1.3.1 TS_UD_HEADER).
CS_CORE = 0xC001
CS_SECURITY = 0xC002
CS_NET = 0xC003
CS_CLUSTER = 0xC004
CS_MONITOR = 0xC005
CS_MCS_MSGCHANNEL = 0xC006
CS_MONITOR_EX = 0xC008
CS_MULTITRANSPORT = 0xC00A
#: Server data block types (2.2.1.4).
SC_CORE = 0x0C01
SC_SECURITY = 0x0C02
SC_NET = 0x0C03

#: TS_UD_SC_CORE version: RDP 5.0 and later (2.2.1.4.2); clients take the lower of both.
RDP_VERSION_5_PLUS = 0x00080004
#: TS_UD_CS_CORE earlyCapabilityFlags (2.2.1.3.2).
RNS_UD_CS_SUPPORT_ERRINFO_PDU = 0x0001
RNS_UD_CS_WANT_32BPP_SESSION = 0x0002
RNS_UD_CS_SUPPORT_STATUSINFO_PDU = 0x0004
RNS_UD_CS_STRONG_ASYMMETRIC_KEYS = 0x0008
RNS_UD_CS_VALID_CONNECTION_TYPE = 0x0020
RNS_UD_CS_SUPPORT_MONITOR_LAYOUT_PDU = 0x0040
RNS_UD_CS_SUPPORT_NETCHAR_AUTODETECT = 0x0080
RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL = 0x0100
RNS_UD_CS_SUPPORT_DYNAMIC_TIME_ZONE = 0x0200
RNS_UD_CS_SUPPORT_HEARTBEAT_PDU = 0x0400
#: Offset of serverSelectedProtocol in TS_UD_CS_CORE, counted from the block header
#: (2.2.1.3.2); a block must be at least 216 bytes long to carry it.
SERVER_SELECTED_PROTOCOL_OFFSET = 212
#: Offset of earlyCapabilityFlags in TS_UD_CS_CORE, counted the same way.
EARLY_CAPABILITY_FLAGS_OFFSET = 144
#: A static channel count above this is malformed (2.2.1.3.4: at most 31 channels).
MAX_STATIC_CHANNELS = 31
#: MCS channel ids the proxy assigns as a server, in FreeRDP's server order: the I/O channel
#: 1003 (2.2.1.4.4), then one id per requested static channel, then the user channel.
IO_CHANNEL_ID = 1003

#: Domain parameters of our Connect Response: what Windows and FreeRDP servers answer
#: (maxChannelIds 34, maxUserIds 3, maxTokenIds 0, numPriorities 1, minThroughput 0,
#: maxHeight 1, maxMCSPDUsize 65528, protocolVersion 2; T.125 DomainParameters).
_DOMAIN_PARAMETERS = (34, 3, 0, 1, 0, 1, 65528, 2)

_CI = "MCS Connect Initial"
_CR = "MCS Connect Response"
_GCC_REQUEST = "GCC Conference Create Request"
_GCC_RESPONSE = "GCC Conference Create Response"


@dataclass(frozen=True)
class DataBlock:
    """One GCC user data block; ``offset`` is where its 4-byte header starts in the frame."""

    type: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class ChannelDef:
    """A static virtual channel the client asks for (2.2.1.3.4.1 CHANNEL_DEF)."""

    name: str
    options: int


@dataclass(frozen=True)
class ClientCore:
    """The fields of TS_UD_CS_CORE (2.2.1.3.2) the proxy uses; optional ones may be None."""

    version: int
    desktop_width: int
    desktop_height: int
    color_depth: int
    keyboard_layout: int
    client_build: int
    client_name: str
    keyboard_type: int
    keyboard_sub_type: int
    keyboard_function_key: int
    post_beta2_color_depth: int | None = None
    high_color_depth: int | None = None
    supported_color_depths: int | None = None
    early_capability_flags: int | None = None
    connection_type: int | None = None
    server_selected_protocol: int | None = None


@dataclass(frozen=True)
class ConnectInitial:
    """The client's MCS Connect Initial: core settings, channels and every block raw."""

    core: ClientCore
    encryption_methods: int
    channels: tuple[ChannelDef, ...]
    blocks: tuple[DataBlock, ...]

    def block(self, block_type: int) -> DataBlock | None:
        return next((block for block in self.blocks if block.type == block_type), None)


@dataclass(frozen=True)
class ConnectResponse:
    """A server's MCS Connect Response, as far as a proxy needs it (2.2.1.4)."""

    result: int
    version: int
    client_requested_protocols: int | None
    io_channel_id: int
    channel_ids: tuple[int, ...]
    encryption_method: int
    encryption_level: int


# -- Connect Initial (client to server, 2.2.1.3) ---------------------------------------------


def parse_connect_initial(frame: bytes) -> ConnectInitial:
    """Parse a TPKT-framed MCS Connect Initial with its GCC Conference Create Request."""
    payload = x224_payload(frame, _CI)
    base = len(frame) - len(payload)
    reader = ByteReader(payload, _CI)
    _ber_outer(reader, CONNECT_INITIAL_TAG, "Connect-Initial")
    reader.ber_tlv(BER_OCTET_STRING, "callingDomainSelector")
    reader.ber_tlv(BER_OCTET_STRING, "calledDomainSelector")
    reader.ber_tlv(BER_BOOLEAN, "upwardFlag")
    for name in ("targetParameters", "minimumParameters", "maximumParameters"):
        reader.ber_tlv(BER_SEQUENCE, name)
    _ber_outer(reader, BER_OCTET_STRING, "userData")
    # T.124 ConnectData / ConferenceCreateRequest, PER (FreeRDP gcc_read_conference_create_request).
    reader.pdu = _GCC_REQUEST
    reader.expect(T124_IDENTIFIER, "t124Identifier")
    reader.per_length("connectPDU")  # FreeRDP writes it 1 too long for short data; not checked
    _expect_byte(reader, 0x00, "ConnectGCCPDU choice (conferenceCreateRequest)")
    _expect_byte(reader, 0x08, "optional fields (userData only)")
    name_length = reader.per_length("conferenceName") + 1
    reader.take((name_length + 1) // 2, "conferenceName digits")
    reader.u8("padding")
    _expect_byte(reader, 0x01, "number of UserData sets")
    _expect_byte(reader, 0xC0, "UserData choice (value present, h221NonStandard)")
    _h221_key(reader, H221_CLIENT_KEY)
    blocks = _data_blocks(reader, base)
    core_block = next((block for block in blocks if block.type == CS_CORE), None)
    if core_block is None:
        raise RdpProtocolError(f"{_GCC_REQUEST}: no Client Core Data block (CS_CORE, 0xC001)")
    security = next((block for block in blocks if block.type == CS_SECURITY), None)
    network = next((block for block in blocks if block.type == CS_NET), None)
    return ConnectInitial(
        core=_client_core(core_block.data),
        encryption_methods=_client_security(security.data) if security else 0,
        channels=_client_network(network.data) if network else (),
        blocks=blocks,
    )


def patch_server_selected_protocol(frame: bytes, protocol: int) -> bytes:
    """The Connect Initial with CS_CORE ``serverSelectedProtocol`` set to ``protocol``.

    The field has a fixed size, so no BER/PER length changes (docs/design/rdp.md §3.1.5); a
    target such as FreeRDP refuses a value other than the protocol it selected. A client
    whose CS_CORE stops before the field (pre-RDP 6 clients) has nothing to patch: the frame
    is returned.
    """
    core = next(block for block in parse_connect_initial(frame).blocks if block.type == CS_CORE)
    if len(core.data) + 4 < SERVER_SELECTED_PROTOCOL_OFFSET + 4:
        return bytes(frame)
    patched = bytearray(frame)
    struct.pack_into("<I", patched, core.offset + SERVER_SELECTED_PROTOCOL_OFFSET, protocol)
    return bytes(patched)


def clear_early_capability_flags(frame: bytes, flags: int) -> bytes:
    """The Connect Initial with ``flags`` cleared in CS_CORE ``earlyCapabilityFlags``
    (2.2.1.3.2), a same-size patch like :func:`patch_server_selected_protocol`; a CS_CORE
    that stops before the field is returned unchanged (such a client offers none)."""
    core = next(block for block in parse_connect_initial(frame).blocks if block.type == CS_CORE)
    if len(core.data) + 4 < EARLY_CAPABILITY_FLAGS_OFFSET + 2:
        return bytes(frame)
    patched = bytearray(frame)
    offset = core.offset + EARLY_CAPABILITY_FLAGS_OFFSET
    value = struct.unpack_from("<H", patched, offset)[0]
    struct.pack_into("<H", patched, offset, value & ~flags & 0xFFFF)
    return bytes(patched)


def _data_blocks(reader: ByteReader, base: int) -> tuple[DataBlock, ...]:
    """The TS_UD blocks that fill the rest of ``reader`` after a PER length (2.2.1.3.1)."""
    length = reader.per_length("userData")
    if length != reader.remaining:
        raise reader.error(
            f"userData length {length} does not match the {reader.remaining} bytes that follow"
        )
    blocks = []
    while reader.remaining:
        offset = base + reader.offset
        block_type = reader.u16le("data block type")
        block_length = reader.u16le(f"data block 0x{block_type:04X} length")
        if block_length < 4:
            raise reader.error(
                f"data block 0x{block_type:04X} length {block_length} is below its 4-byte header"
            )
        data = reader.take(block_length - 4, f"data block 0x{block_type:04X}")
        blocks.append(DataBlock(block_type, offset, data))
    return tuple(blocks)


def _client_core(data: bytes) -> ClientCore:
    reader = ByteReader(data, "GCC Client Core Data (CS_CORE)")
    # 2.2.1.3.2: every field up to imeFileName is mandatory (128 bytes after the header).
    version = reader.u32le("version")
    width = reader.u16le("desktopWidth")
    height = reader.u16le("desktopHeight")
    color_depth = reader.u16le("colorDepth")
    reader.u16le("SASSequence")
    keyboard_layout = reader.u32le("keyboardLayout")
    client_build = reader.u32le("clientBuild")
    client_name = _utf16z(reader.take(32, "clientName"))
    keyboard = [
        reader.u32le(name) for name in ("keyboardType", "keyboardSubType", "keyboardFunctionKey")
    ]
    reader.take(64, "imeFileName")
    # The rest is optional, in order: a field is present only if all before it are.
    optional: dict[str, int] = {}
    for name, size in _CORE_OPTIONAL:
        if reader.remaining < size:
            break
        optional[name] = int.from_bytes(reader.take(size, name), "little")
    return ClientCore(
        version,
        width,
        height,
        color_depth,
        keyboard_layout,
        client_build,
        client_name,
        *keyboard,
        post_beta2_color_depth=optional.get("postBeta2ColorDepth"),
        high_color_depth=optional.get("highColorDepth"),
        supported_color_depths=optional.get("supportedColorDepths"),
        early_capability_flags=optional.get("earlyCapabilityFlags"),
        connection_type=optional.get("connectionType"),
        server_selected_protocol=optional.get("serverSelectedProtocol"),
    )


#: Optional TS_UD_CS_CORE fields after imeFileName, with their sizes (2.2.1.3.2).
_CORE_OPTIONAL = (
    ("postBeta2ColorDepth", 2),
    ("clientProductId", 2),
    ("serialNumber", 4),
    ("highColorDepth", 2),
    ("supportedColorDepths", 2),
    ("earlyCapabilityFlags", 2),
    ("clientDigProductId", 64),
    ("connectionType", 1),
    ("pad1octet", 1),
    ("serverSelectedProtocol", 4),
)


def _client_security(data: bytes) -> int:
    reader = ByteReader(data, "GCC Client Security Data (CS_SECURITY)")
    methods = reader.u32le("encryptionMethods")
    reader.u32le("extEncryptionMethods")
    return methods


def _client_network(data: bytes) -> tuple[ChannelDef, ...]:
    reader = ByteReader(data, "GCC Client Network Data (CS_NET)")
    count = reader.u32le("channelCount")
    if count > MAX_STATIC_CHANNELS:
        raise reader.error(f"channelCount {count} is above the maximum of {MAX_STATIC_CHANNELS}")
    channels = []
    for index in range(count):
        name = reader.take(8, f"channel {index} name").split(b"\0", 1)[0].decode("latin-1")
        channels.append(ChannelDef(name, reader.u32le(f"channel {index} options")))
    return tuple(channels)


# -- Connect Response (server to client, 2.2.1.4) --------------------------------------------


def static_channel_ids(count: int) -> tuple[int, ...]:
    """The MCS ids the proxy gives the client's static channels: 1004, 1005, ..."""
    return tuple(range(IO_CHANNEL_ID + 1, IO_CHANNEL_ID + 1 + count))


def user_channel_id(channel_count: int) -> int:
    """The user id (and user channel) the proxy assigns: the first id after the channels."""
    return IO_CHANNEL_ID + 1 + channel_count


def encode_connect_response(
    requested_protocols: int,
    channel_count: int,
    early_capability_flags: int = 0,
    version: int = RDP_VERSION_5_PLUS,
) -> bytes:
    """A Connect Response for a TLS/NLA session (no RDP standard security).

    SC_CORE echoes the client's requestedProtocols from its X.224 request (2.2.1.4.2);
    SC_SECURITY says encryption method and level 0, as required under TLS (2.2.1.4.3);
    SC_NET gives the I/O channel 1003 and :func:`static_channel_ids` (2.2.1.4.4).
    Blocks in FreeRDP's server order (gcc_write_server_data_blocks): core, network, security.
    """
    if not 0 <= channel_count <= MAX_STATIC_CHANNELS:
        raise ValueError(f"channel count {channel_count} is outside 0..{MAX_STATIC_CHANNELS}")
    ids = static_channel_ids(channel_count)
    network = struct.pack(f"<HH{len(ids)}H", IO_CHANNEL_ID, len(ids), *ids)
    if len(ids) % 2:
        network += b"\0\0"  # 2.2.1.4.4 Pad: present when channelCount is odd
    blocks = (
        _block(SC_CORE, struct.pack("<III", version, requested_protocols, early_capability_flags))
        + _block(SC_NET, network)
        + _block(SC_SECURITY, struct.pack("<II", 0, 0))
    )
    # ConferenceCreateResponse (FreeRDP gcc_write_conference_create_response): choice 0x14,
    # nodeID 0x79F3 (written less 1001), tag INTEGER 1, result success, one UserData set,
    # value present + h221NonStandard, key "McDn", then the blocks.
    create_response = (
        b"\x14"
        + struct.pack(">H", 0x79F3 - USER_ID_BASE)
        + b"\x01\x01"
        + b"\x00"
        + b"\x01"
        + b"\xc0"
        + b"\x00"
        + H221_SERVER_KEY
        + per_length(len(blocks))
        + blocks
    )
    gcc = T124_IDENTIFIER + per_length(len(create_response)) + create_response
    parameters = b"".join(ber_integer(value) for value in _DOMAIN_PARAMETERS)
    response = (
        ber_tlv(BER_ENUMERATED, b"\x00")  # result rt-successful
        + ber_integer(0)  # calledConnectId
        + ber_tlv(BER_SEQUENCE, parameters)
        + ber_tlv(BER_OCTET_STRING, gcc)
    )
    return x224_data(ber_tlv(CONNECT_RESPONSE_TAG, response))


def parse_connect_response(frame: bytes) -> ConnectResponse:
    """Parse a server's Connect Response (what a target sends the relay, or ours in tests)."""
    payload = x224_payload(frame, _CR)
    reader = ByteReader(payload, _CR)
    _ber_outer(reader, CONNECT_RESPONSE_TAG, "Connect-Response")
    result = reader.ber_tlv(BER_ENUMERATED, "result")
    if len(result) != 1:
        raise reader.error(f"result is {len(result)} bytes, expected 1")
    if result[0] != 0:
        raise reader.error(f"result is {result[0]}, not rt-successful (0): the server refused")
    reader.ber_integer("calledConnectId")
    reader.ber_tlv(BER_SEQUENCE, "domainParameters")
    _ber_outer(reader, BER_OCTET_STRING, "userData")
    reader.pdu = _GCC_RESPONSE
    reader.expect(T124_IDENTIFIER, "t124Identifier")
    reader.per_length("connectPDU")  # MS-RDPBCGR 2.2.1.4: clients ignore this length
    _expect_byte(reader, 0x14, "ConnectGCCPDU choice (conferenceCreateResponse)")
    reader.per_integer16(USER_ID_BASE, "nodeID")
    reader.per_integer("tag")
    _expect_byte(reader, 0x00, "result (success)")
    _expect_byte(reader, 0x01, "number of UserData sets")
    _expect_byte(reader, 0xC0, "UserData choice (value present, h221NonStandard)")
    _h221_key(reader, H221_SERVER_KEY)
    blocks = {block.type: block.data for block in _data_blocks(reader, 0)}
    for block_type, name in (
        (SC_CORE, "SC_CORE"),
        (SC_NET, "SC_NET"),
        (SC_SECURITY, "SC_SECURITY"),
    ):
        if block_type not in blocks:
            raise reader.error(f"no {name} block (0x{block_type:04X})")
    core = ByteReader(blocks[SC_CORE], "GCC Server Core Data (SC_CORE)")
    version = core.u32le("version")
    requested = core.u32le("clientRequestedProtocols") if core.remaining >= 4 else None
    network = ByteReader(blocks[SC_NET], "GCC Server Network Data (SC_NET)")
    io_channel = network.u16le("MCSChannelId")
    count = network.u16le("channelCount")
    ids = tuple(network.u16le(f"channelIdArray[{index}]") for index in range(count))
    security = ByteReader(blocks[SC_SECURITY], "GCC Server Security Data (SC_SECURITY)")
    method = security.u32le("encryptionMethod")
    level = security.u32le("encryptionLevel")
    return ConnectResponse(result[0], version, requested, io_channel, ids, method, level)


def _block(block_type: int, data: bytes) -> bytes:
    return struct.pack("<HH", block_type, 4 + len(data)) + data


# -- small PER / BER pieces of both directions ------------------------------------------------


def _ber_outer(reader: ByteReader, tag: bytes, field: str) -> None:
    """An element that must span exactly the rest of the PDU (Connect PDU, userData)."""
    reader.expect(tag, f"{field} tag")
    length = reader.ber_length(field)
    if length != reader.remaining:
        raise reader.error(
            f"{field} length {length} does not match the {reader.remaining} bytes that follow"
        )


def _expect_byte(reader: ByteReader, expected: int, field: str) -> None:
    got = reader.u8(field)
    if got != expected:
        raise reader.error(f"{field} is 0x{got:02x}, expected 0x{expected:02x}")


def _h221_key(reader: ByteReader, key: bytes) -> None:
    size = reader.per_length("h221NonStandard key") + 4  # OCTET STRING (SIZE (4..255))
    if size != len(key):
        raise reader.error(f"h221NonStandard key is {size} bytes, expected {len(key)}")
    reader.expect(key, "h221NonStandard key")


def _utf16z(raw: bytes) -> str:
    """A fixed-size UTF-16LE field up to its first NUL; invalid code units are replaced."""
    text = raw.decode("utf-16-le", "replace")
    return text.split("\0", 1)[0]
