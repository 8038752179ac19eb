"""Known-good RDP frames for the parser tests, and a builder for Connect Initials.

Frames captured from xfreerdp 2.11.7 (Debian 12) talking to a capture listener on loopback.

The listener answered with this package's own encoders (Connection Confirm selecting TLS,
Connect Response, Attach User and Channel Join Confirms), which xfreerdp accepted: it went on
to send the next PDU each time. Command lines:
``xfreerdp /v:127.0.0.1:<port> /u:alice /p:S3cret-Pw /d:CORP /sec:tls /cert:ignore`` and
``xfreerdp /v:127.0.0.1:<port> /u:bob /sec:tls /cert:ignore`` (no password). The passwords are
throw-away test values.
"""

import struct

from pamcore_rdp.pdu.gcc import CONNECT_INITIAL_TAG, T124_IDENTIFIER
from pamcore_rdp.pdu.wire import (
    BER_BOOLEAN,
    BER_OCTET_STRING,
    BER_SEQUENCE,
    ber_integer,
    ber_tlv,
    per_length,
    x224_data,
)

#: The DomainParameters xfreerdp sends (target, minimum, maximum; T.125).
XFREERDP_DOMAIN_PARAMETERS = (
    (34, 2, 0, 1, 0, 1, 65535, 2),
    (1, 1, 1, 1, 0, 1, 1056, 2),
    (65535, 64535, 65535, 1, 0, 1, 65535, 2),
)


def connect_initial(blocks: bytes) -> bytes:
    """A Connect Initial carrying ``blocks`` (TS_UD blocks), laid out as xfreerdp writes it."""
    create_request = b"\x00\x08\x00\x10\x00\x01\xc0\x00Duca" + per_length(len(blocks)) + blocks
    gcc = T124_IDENTIFIER + per_length(len(create_request)) + create_request
    parameters = b"".join(
        ber_tlv(BER_SEQUENCE, b"".join(ber_integer(value) for value in values))
        for values in XFREERDP_DOMAIN_PARAMETERS
    )
    body = (
        ber_tlv(BER_OCTET_STRING, b"\x01")
        + ber_tlv(BER_OCTET_STRING, b"\x01")
        + ber_tlv(BER_BOOLEAN, b"\xff")
        + parameters
        + ber_tlv(BER_OCTET_STRING, gcc)
    )
    return x224_data(ber_tlv(CONNECT_INITIAL_TAG, body))


#: X.224 Connection Request from `/u:alice`, default protocols SSL|HYBRID.
XFREERDP_COOKIE = bytes.fromhex(
    "0300002b26e00000000000436f6f6b69653a206d737473686173683d616c6963650d0a0100080003000000"
)
#: Captured from xfreerdp 2.11.7 with
#: `/load-balance-info:'tsv://MS Terminal Services Plugin.1.sess-42'`.
XFREERDP_LOAD_BALANCE = bytes.fromhex(
    "030000403be000000000007473763a2f2f4d53205465726d696e616c20536572766963657320506c7567"
    "696e2e312e736573732d34320d0a0100080003000000"
)
#: Captured from xfreerdp 2.11.7 (`/u:bob /sec:tls`): requestedProtocols SSL only.
XFREERDP_TLS_ONLY = bytes.fromhex(
    "0300002924e00000000000436f6f6b69653a206d737473686173683d626f620d0a0100080001000000"
)
#: What xrdp 0.9.21 and the test probe's server answer: CC selecting TLS.
CONFIRM_TLS = bytes.fromhex("03000013 0ed00000123400 0200080001000000")

#: MCS Connect Initial: CS_CORE (serverSelectedProtocol 1), CS_CLUSTER, CS_SECURITY,
#: CS_NET (rdpdr, rdpsnd, cliprdr, drdynvc).
CONNECT_INITIAL = bytes.fromhex(
    "030001c302f0807f658201b70401010401010101ff301a020122020102020100020101020100020101020300"
    "ffff0201023019020101020101020101020101020100020101020204200201023020020300ffff020300fc17"
    "020300ffff020101020100020101020300ffff02010204820151000500147c00018148000800100001c00044"
    "756361813a01c0ea000c0008000004000301ca03aa09040000bb47000076006d000000000000000000000000"
    "000000000000000000000000000000000004000000000000000c000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000001ca01000000000018000f00e30500000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000700010000"
    "0000000000000000000000000000000000000004c00c000d0000000000000002c00c00000000000000000003"
    "c03800040000007264706472000000000080c0726470736e640000000000c0636c6970726472000000a0c064"
    "7264796e766300000080c0"
)


#: Our Connect Response for requestedProtocols 1 and 4 channels, which xfreerdp accepted.
CONNECT_RESPONSE = bytes.fromhex(
    "0300007002f0807f66660a0100020100301a020122020103020100020101020100020101020300fff8020102"
    "0442000500147c00013a14760a01010001c0004d63446e2c010c1000040008000100000000000000030c1000"
    "eb030400ec03ed03ee03ef03020c0c000000000000000000"
)


#: Erect Domain Request (subHeight 0, subInterval 0).
ERECT_DOMAIN_REQUEST = bytes.fromhex("0300000c02f0800401000100")


#: Attach User Request.
ATTACH_USER_REQUEST = bytes.fromhex("0300000802f08028")


#: Channel Join Request of user 1008 for its own user channel.
CHANNEL_JOIN_USER = bytes.fromhex("0300000c02f08038000703f0")


#: Channel Join Request of user 1008 for the I/O channel 1003.
CHANNEL_JOIN_IO = bytes.fromhex("0300000c02f08038000703eb")


#: Client Info PDU (Send Data Request on 1003, SEC_INFO_PKT) for CORP\\alice, S3cret-Pw.
CLIENT_INFO = bytes.fromhex(
    "0300016302f08064000703eb7081544000000000000000fb470b0008000a0012000000000043004f00520050"
    "00000061006c0069006300650000005300330063007200650074002d00500077000000000000000200140031"
    "00320037002e0030002e0030002e0031000000400043003a005c00570069006e0064006f00770073005c0053"
    "0079007300740065006d00330032005c006d007300740073006300610078002e0064006c006c000000000000"
    "0043006f006f007200640069006e006100740065006400200055006e006900760065007200730061006c0020"
    "00540069006d006500000000000000000000000000000000000000000000000000000000000000000043006f"
    "006f007200640069006e006100740065006400200055006e006900760065007200730061006c002000540069"
    "006d006500000000000000000000000000000000000000000000000000000000000000000000000000800100"
    "000000"
)


#: Client Info PDU for bob with no domain and no password.
CLIENT_INFO_NO_PASSWORD = bytes.fromhex(
    "0300014502f08064000703eb7081364000000000000000f3470b0000000600000000000000000062006f0062"
    "000000000000000000020014003100320037002e0030002e0030002e0031000000400043003a005c00570069"
    "006e0064006f00770073005c00530079007300740065006d00330032005c006d007300740073006300610078"
    "002e0064006c006c0000000000000043006f006f007200640069006e006100740065006400200055006e0069"
    "00760065007200730061006c002000540069006d006500000000000000000000000000000000000000000000"
    "000000000000000000000043006f006f007200640069006e006100740065006400200055006e006900760065"
    "007200730061006c002000540069006d00650000000000000000000000000000000000000000000000000000"
    "0000000000000000000000800100000000"
)


def fastpath(events: list[bytes]) -> bytes:
    """A fast-path input PDU (MS-RDPBCGR 2.2.8.1.2) with ``events`` (numEvents in the header
    when it fits, as FreeRDP writes it)."""
    body = b"".join(events)
    header = (len(events) << 2) if len(events) < 16 else 0
    extra = b"" if len(events) < 16 else bytes([len(events)])
    length = 1 + 2 + len(extra) + len(body)
    return bytes([header]) + struct.pack(">H", 0x8000 | length) + extra + body


def scancode(code: int, release: bool = False, extended: bool = False) -> bytes:
    """A fast-path keyboard event (2.2.8.1.2.2.1)."""
    flags = (0x01 if release else 0) | (0x02 if extended else 0)
    return bytes([(0x0 << 5) | flags, code])
