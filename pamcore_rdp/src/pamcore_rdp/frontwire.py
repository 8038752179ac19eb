"""The Client Info PDU as far as the front reads it (MS-RDPBCGR 2.2.1.11.1.1).
STOPGAP until ``clientinfo.py`` (wire owner) lands: then this module goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pamcore_rdp.wire import (
    ByteReader,
)

SEC_INFO_PKT = 0x0040
INFO_UNICODE = 0x0010


@dataclass(frozen=True)
class ClientInfo:
    """User name, domain and password from the Client Info PDU (repr hides the password)."""

    domain: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"ClientInfo(domain={self.domain!r}, username={self.username!r}, password=***)"


def parse_client_info(data: bytes) -> ClientInfo:
    """The Client Info PDU's payload on the I/O channel: security header, TS_INFO_PACKET."""
    reader = ByteReader(data, "Client Info PDU")
    flags = reader.u16le("security header flags")
    reader.u16le("flagsHi")
    if not flags & SEC_INFO_PKT:
        raise reader.error(f"security header flags 0x{flags:04x} lack SEC_INFO_PKT")
    reader.u32le("codePage")
    info_flags = reader.u32le("flags")
    sizes = [reader.u16le(name) for name in ("cbDomain", "cbUserName", "cbPassword")]
    reader.u16le("cbAlternateShell")
    reader.u16le("cbWorkingDir")
    unicode = bool(info_flags & INFO_UNICODE)
    values = []
    for size, name in zip(sizes, ("Domain", "UserName", "Password"), strict=True):
        raw = reader.take(size, name)
        reader.take(2 if unicode else 1, f"{name} terminator")
        values.append(raw.decode("utf-16-le" if unicode else "latin-1", errors="replace"))
    return ClientInfo(*values)
