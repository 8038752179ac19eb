"""The Client Info PDU: where an RDP client sends its domain, user name and password.

MS-RDPBCGR 2.2.1.11 (Client Info PDU: Send Data Request on the I/O channel, basic security
header with SEC_INFO_PKT, then TS_INFO_PACKET 2.2.1.11.1.1). The front reads the user's
password from it; the relay rewrites it with the vaulted credential and INFO_AUTOLOGON for
targets without NLA. Cross-checked with FreeRDP libfreerdp/core/info.c (rdp_read_info_packet).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from pamcore_rdp.pdu.mcs import SendData, encode_send_data_request, parse_send_data_request
from pamcore_rdp.pdu.wire import ByteReader

#: Basic security header flags (2.2.8.1.1.2.1).
SEC_ENCRYPT = 0x0008
SEC_INFO_PKT = 0x0040
#: TS_INFO_PACKET flags (2.2.1.11.1.1).
INFO_MOUSE = 0x00000001
INFO_DISABLECTRLALTDEL = 0x00000002
INFO_AUTOLOGON = 0x00000008
INFO_UNICODE = 0x00000010
INFO_LOGONERRORS = 0x00010000
INFO_PASSWORD_IS_SC_PIN = 0x00040000
#: Largest cbDomain/cbUserName/cbPassword/... FreeRDP accepts (info.c); NULs not counted.
MAX_FIELD_BYTES = 512

_PDU = "Client Info PDU"
_FIELDS = ("Domain", "UserName", "Password", "AlternateShell", "WorkingDir")


@dataclass(frozen=True)
class ClientInfo:
    """TS_INFO_PACKET. ``extra`` is the extended info (client address, time zone, ...) as sent.

    The repr says only whether a password is present, so logging the object is safe.
    """

    code_page: int
    flags: int
    domain: str
    username: str
    password: str
    alternate_shell: str = ""
    working_dir: str = ""
    extra: bytes = b""

    def __repr__(self) -> str:
        password = "<set>" if self.password else "<empty>"
        return (
            f"ClientInfo(code_page={self.code_page}, flags=0x{self.flags:08x}, "
            f"domain={self.domain!r}, username={self.username!r}, password={password}, "
            f"alternate_shell={self.alternate_shell!r}, working_dir={self.working_dir!r}, "
            f"extra={len(self.extra)} bytes)"
        )


def parse_client_info(data: bytes) -> ClientInfo:
    """Parse TS_INFO_PACKET (``data`` starts after the 4-byte security header)."""
    reader = ByteReader(data, _PDU)
    code_page = reader.u32le("CodePage")
    flags = reader.u32le("flags")
    unicode = bool(flags & INFO_UNICODE)
    sizes = [reader.u16le(f"cb{name}") for name in _FIELDS]
    for name, size in zip(_FIELDS, sizes, strict=True):
        if size > MAX_FIELD_BYTES or (unicode and size % 2):
            raise reader.error(
                f"cb{name} is {size}; expected an even byte count of at most {MAX_FIELD_BYTES}"
                if unicode
                else f"cb{name} is {size}; expected at most {MAX_FIELD_BYTES}"
            )
    terminator = b"\0\0" if unicode else b"\0"
    texts = []
    for name, size in zip(_FIELDS, sizes, strict=True):
        raw = reader.take(size, name)
        # The cb fields leave out the mandatory terminator (docs/design/rdp.md §7, 2.2.1.11.1.1).
        if reader.take(len(terminator), f"{name} terminator") != terminator:
            raise reader.error(f"{name} is not followed by its NUL terminator")
        text = _decode(raw, unicode)
        if "\0" in text:
            raise reader.error(f"{name} has a NUL character inside its cb{name} bytes")
        texts.append(text)
    return ClientInfo(code_page, flags, *texts, extra=reader.rest())


def encode_client_info(info: ClientInfo) -> bytes:
    """TS_INFO_PACKET, strings in the encoding its INFO_UNICODE flag says, ``extra`` verbatim."""
    unicode = bool(info.flags & INFO_UNICODE)
    texts = (info.domain, info.username, info.password, info.alternate_shell, info.working_dir)
    raws = [_encode(text, unicode, name) for name, text in zip(_FIELDS, texts, strict=True)]
    terminator = b"\0\0" if unicode else b"\0"
    header = struct.pack("<II5H", info.code_page, info.flags, *(len(raw) for raw in raws))
    return header + b"".join(raw + terminator for raw in raws) + info.extra


def read_client_info_frame(frame: bytes) -> ClientInfo:
    """The Client Info of a whole frame (TPKT + X.224 + MCS Send Data Request + security header)."""
    _request, _security, info = _split(frame)
    return info


def rewrite_client_info(frame: bytes, domain: str, username: str, password: str) -> bytes:
    """The same Client Info frame with another credential and INFO_AUTOLOGON set.

    Used for targets without NLA (docs/design/rdp.md §3.1.6): the target logs the user on
    with the vaulted credential. Every other field and the extended info stay as the client
    sent them; the PER and TPKT lengths are recomputed. A smart-card PIN flag is cleared:
    this is a password.
    """
    request, security, info = _split(frame)
    flags = (info.flags | INFO_AUTOLOGON) & ~INFO_PASSWORD_IS_SC_PIN
    rewritten = dataclasses.replace(
        info, flags=flags, domain=domain, username=username, password=password
    )
    return encode_send_data_request(
        request.initiator, request.channel_id, security + encode_client_info(rewritten)
    )


def _split(frame: bytes) -> tuple[SendData, bytes, ClientInfo]:
    request = parse_send_data_request(frame)
    reader = ByteReader(request.data, _PDU)
    security = reader.take(4, "security header")
    flags = struct.unpack_from("<H", security)[0]
    if not flags & SEC_INFO_PKT:
        raise reader.error(
            f"security header flags 0x{flags:04x} lack SEC_INFO_PKT (0x0040); "
            "this is not a Client Info PDU"
        )
    if flags & SEC_ENCRYPT:
        raise reader.error(
            "the Client Info is encrypted with standard RDP security, which the proxy does not "
            "offer (TLS only)"
        )
    return request, security, parse_client_info(reader.rest())


def _decode(raw: bytes, unicode: bool) -> str:
    # surrogatepass keeps even an unpaired UTF-16 code unit, so re-encoding is lossless.
    return raw.decode("utf-16-le", "surrogatepass") if unicode else raw.decode("latin-1")


def _encode(text: str, unicode: bool, name: str) -> bytes:
    if "\0" in text:
        raise ValueError(f"the Client Info {name} must not contain NUL")
    try:
        raw = text.encode("utf-16-le", "surrogatepass") if unicode else text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the Client Info {name} cannot be written in the client's ANSI code page"
        ) from exc
    if len(raw) > MAX_FIELD_BYTES:
        raise ValueError(
            f"the Client Info {name} is {len(raw)} bytes; at most {MAX_FIELD_BYTES} fit"
        )
    return raw
