"""GCC conference PDUs (MS-RDPBCGR 2.2.1.3-2.2.1.4) against frames xfreerdp 2.11.7 sent
and accepted."""

from __future__ import annotations

import struct

import pytest
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.gcc import (
    CS_CLUSTER,
    CS_CORE,
    CS_NET,
    CS_SECURITY,
    EARLY_CAPABILITY_FLAGS_OFFSET,
    IO_CHANNEL_ID,
    RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL,
    RNS_UD_CS_SUPPORT_ERRINFO_PDU,
    SERVER_SELECTED_PROTOCOL_OFFSET,
    ChannelDef,
    ConnectResponse,
    clear_early_capability_flags,
    encode_connect_response,
    parse_connect_initial,
    parse_connect_response,
    patch_server_selected_protocol,
    static_channel_ids,
    user_channel_id,
)
from pamcore_rdp.pdu.wire import x224_payload
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_SSL,
)
from rdp_frames import (
    CONNECT_INITIAL,
    CONNECT_RESPONSE,
    connect_initial,
)


def block(block_type: int, data: bytes) -> bytes:
    return struct.pack("<HH", block_type, 4 + len(data)) + data


def core_block(size: int = 234, selected: int = PROTOCOL_SSL) -> bytes:
    """A TS_UD_CS_CORE of ``size`` bytes (header included) with recognisable values."""
    data = bytearray(size - 4)
    struct.pack_into("<IHHH", data, 0, 0x00080004, 800, 600, 0xCA01)
    data[20:30] = "hôte".encode("utf-16-le") + b"\0\0"
    if size >= 216:
        struct.pack_into("<I", data, SERVER_SELECTED_PROTOCOL_OFFSET - 4, selected)
    return block(CS_CORE, bytes(data))


def test_xfreerdp_connect_initial() -> None:
    initial = parse_connect_initial(CONNECT_INITIAL)
    core = initial.core
    assert (core.desktop_width, core.desktop_height) == (1024, 768)
    assert (core.version, core.keyboard_layout, core.high_color_depth) == (0x0008000C, 1033, 24)
    assert core.early_capability_flags is not None
    assert core.early_capability_flags & RNS_UD_CS_SUPPORT_ERRINFO_PDU
    assert core.server_selected_protocol == PROTOCOL_SSL
    assert initial.encryption_methods == 0
    assert [block.type for block in initial.blocks] == [CS_CORE, CS_CLUSTER, CS_SECURITY, CS_NET]
    assert [channel.name for channel in initial.channels] == [
        "rdpdr",
        "rdpsnd",
        "cliprdr",
        "drdynvc",
    ]
    cs_core = initial.block(CS_CORE)
    assert cs_core is not None
    assert (
        CONNECT_INITIAL[cs_core.offset : cs_core.offset + 4]
        == block(CS_CORE, b"")[:2] + b"\xea\x00"
    )


def test_builder_reproduces_the_capture() -> None:
    """The test builder lays out a Connect Initial byte for byte as xfreerdp does."""
    blocks = b"".join(
        block(item.type, item.data) for item in parse_connect_initial(CONNECT_INITIAL).blocks
    )
    assert connect_initial(blocks) == CONNECT_INITIAL


def test_patch_server_selected_protocol_changes_only_that_field() -> None:
    patched = patch_server_selected_protocol(CONNECT_INITIAL, PROTOCOL_HYBRID)
    assert len(patched) == len(CONNECT_INITIAL)
    changed = [i for i, (a, b) in enumerate(zip(CONNECT_INITIAL, patched, strict=True)) if a != b]
    cs_core = parse_connect_initial(CONNECT_INITIAL).block(CS_CORE)
    assert cs_core is not None
    assert changed == [cs_core.offset + SERVER_SELECTED_PROTOCOL_OFFSET]
    assert parse_connect_initial(patched).core.server_selected_protocol == PROTOCOL_HYBRID
    # The GCC header holds the bytes 01 c0 too (docs/design/rdp.md §7): it is untouched.
    assert patched[: cs_core.offset] == CONNECT_INITIAL[: cs_core.offset]


def test_clearing_the_gfx_flag_changes_only_earlycapabilityflags() -> None:
    """The session banner needs plain bitmap updates: the GFX pipeline is switched off."""
    core = parse_connect_initial(CONNECT_INITIAL).core
    assert core.early_capability_flags is not None
    flags = core.early_capability_flags | RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL
    frame = bytearray(CONNECT_INITIAL)
    cs_core = parse_connect_initial(CONNECT_INITIAL).block(CS_CORE)
    assert cs_core is not None
    struct.pack_into("<H", frame, cs_core.offset + EARLY_CAPABILITY_FLAGS_OFFSET, flags)
    assert parse_connect_initial(bytes(frame)).core.early_capability_flags == flags
    patched = clear_early_capability_flags(bytes(frame), RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL)
    assert len(patched) == len(frame)
    assert parse_connect_initial(patched).core.early_capability_flags == (
        flags & ~RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL
    )
    changed = [i for i, (a, b) in enumerate(zip(frame, patched, strict=True)) if a != b]
    assert changed == [cs_core.offset + EARLY_CAPABILITY_FLAGS_OFFSET + 1]
    short = connect_initial(core_block(140))
    assert clear_early_capability_flags(short, RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL) == short


def test_patch_leaves_a_short_core_block_alone() -> None:
    frame = connect_initial(core_block(212))
    assert parse_connect_initial(frame).core.server_selected_protocol is None
    assert patch_server_selected_protocol(frame, PROTOCOL_HYBRID) == frame


def test_minimal_core_block_and_optional_fields() -> None:
    initial = parse_connect_initial(connect_initial(core_block(132)))
    assert initial.core.client_name == "hôte"
    assert initial.core.high_color_depth is None
    assert initial.channels == ()
    flags = RNS_UD_CS_SUPPORT_DYNVC_GFX_PROTOCOL
    data = bytearray(core_block(146))
    struct.pack_into("<H", data, 144, flags)  # block offset of earlyCapabilityFlags
    assert parse_connect_initial(connect_initial(bytes(data))).core.early_capability_flags == flags


def test_channels_and_raw_blocks() -> None:
    channels = struct.pack("<I", 2) + b"rdpdr\0\0\0" + struct.pack("<I", 0x80800000)
    channels += b"CLIPRDR!" + struct.pack("<I", 0)
    unknown = block(0xC0FF, b"\x01\x02")
    initial = parse_connect_initial(
        connect_initial(core_block() + block(CS_NET, channels) + unknown)
    )
    assert initial.channels == (ChannelDef("rdpdr", 0x80800000), ChannelDef("CLIPRDR!", 0))
    raw = initial.block(0xC0FF)
    assert raw is not None
    assert raw.data == b"\x01\x02"


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (core_block(128), "GCC Client Core Data (CS_CORE): imeFileName needs 64 bytes"),
        (block(CS_SECURITY, bytes(8)), "no Client Core Data block (CS_CORE, 0xC001)"),
        (core_block() + struct.pack("<HH", CS_NET, 3), "data block 0xC003 length 3 is below"),
        (core_block() + struct.pack("<HH", CS_NET, 40), "data block 0xC003 needs 36 bytes"),
        (
            core_block() + block(CS_NET, struct.pack("<I", 32)),
            "CS_NET): channelCount 32 is above the maximum of 31",
        ),
        (
            core_block() + block(CS_NET, struct.pack("<I", 2) + bytes(12)),
            "channel 1 name needs 8 bytes",
        ),
    ],
)
def test_malformed_client_data(blocks: bytes, message: str) -> None:
    with pytest.raises(RdpProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_connect_initial(connect_initial(blocks))


def test_malformed_connect_initial_envelope() -> None:
    duca = CONNECT_INITIAL.index(b"Duca")
    with pytest.raises(RdpProtocolError, match="h221NonStandard key is 44 75 63 62, expected"):
        parse_connect_initial(CONNECT_INITIAL[:duca] + b"Ducb" + CONNECT_INITIAL[duca + 4 :])
    with pytest.raises(
        RdpProtocolError, match=r"^MCS Connect Initial: Connect-Initial tag is 7f 66"
    ):
        parse_connect_initial(CONNECT_RESPONSE)
    with pytest.raises(RdpProtocolError, match="Connect-Initial length 439 does not match the 438"):
        parse_connect_initial(CONNECT_INITIAL[:3] + b"\xc2" + CONNECT_INITIAL[4:-1])
    with pytest.raises(RdpProtocolError, match="TPKT length 451 does not match the 450-byte"):
        patch_server_selected_protocol(CONNECT_INITIAL[:-1], PROTOCOL_HYBRID)


def test_connect_response_is_what_xfreerdp_accepted() -> None:
    assert encode_connect_response(PROTOCOL_SSL, 4) == CONNECT_RESPONSE
    assert parse_connect_response(CONNECT_RESPONSE) == ConnectResponse(
        result=0,
        version=0x00080004,
        client_requested_protocols=PROTOCOL_SSL,
        io_channel_id=IO_CHANNEL_ID,
        channel_ids=(1004, 1005, 1006, 1007),
        encryption_method=0,
        encryption_level=0,
    )
    assert user_channel_id(4) == 1008


@pytest.mark.parametrize("count", [0, 1, 2, 3, 30, 31])
def test_connect_response_channels_and_padding(count: int) -> None:
    frame = encode_connect_response(PROTOCOL_HYBRID | PROTOCOL_SSL, count, early_capability_flags=1)
    response = parse_connect_response(frame)
    assert response.channel_ids == static_channel_ids(count)
    assert response.client_requested_protocols == PROTOCOL_HYBRID | PROTOCOL_SSL
    # 2.2.1.4.4: SC_NET is 8 bytes plus 2 per channel, padded to a multiple of 4.
    net = frame.index(b"\x03\x0c")
    assert struct.unpack_from("<H", frame, net + 2)[0] == 8 + 2 * count + 2 * (count % 2)


def test_connect_response_refusal_and_bad_input() -> None:
    refused = bytearray(CONNECT_RESPONSE)
    refused[x224_payload_offset() + 5] = 1
    with pytest.raises(RdpProtocolError, match="result is 1, not rt-successful"):
        parse_connect_response(bytes(refused))
    with pytest.raises(ValueError, match="channel count 32"):
        encode_connect_response(PROTOCOL_SSL, 32)


def x224_payload_offset() -> int:
    return len(CONNECT_RESPONSE) - len(x224_payload(CONNECT_RESPONSE))
