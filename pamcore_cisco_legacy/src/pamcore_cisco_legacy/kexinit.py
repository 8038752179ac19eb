"""Read what an SSH server offers without completing a handshake.

The probe sends an identification line, reads the server's banner and its first binary
packet, SSH_MSG_KEXINIT (RFC 4253 §7.1), and returns the name-lists in it. Used to explain a
failed key exchange, where asyncssh may only say "connection lost".
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

IDENTIFICATION = b"SSH-2.0-PamcoreProbe_1.0\r\n"
SSH_MSG_KEXINIT = 20
#: RFC 4253 §4.2 lets a server send other lines before its version line; bound them.
MAX_PRE_BANNER_LINES = 32
#: RFC 4253 §6.1 asks for 35000; OpenSSH accepts up to 256 KiB, so allow that much.
MAX_PACKET = 256 * 1024
#: Names a server lists in its key exchange offer that are signals, not algorithms.
PSEUDO_PREFIXES = ("kex-strict-", "ext-info-")


class KexinitError(Exception):
    """The peer did not send a readable banner and SSH_MSG_KEXINIT."""


@dataclass(frozen=True)
class ServerOffer:
    """A server's banner and the algorithms in its SSH_MSG_KEXINIT (both directions merged)."""

    banner: str
    kex: list[str]
    host_key: list[str]
    ciphers: list[str]
    macs: list[str]


def _merge(*lists: list[str]) -> list[str]:
    merged: list[str] = []
    for names in lists:
        merged.extend(n for n in names if n not in merged)
    return merged


def parse_kexinit(payload: bytes, banner: str = "") -> ServerOffer:
    """Parse an SSH_MSG_KEXINIT payload (RFC 4253 §7.1); raises :class:`KexinitError`.

    Layout: byte 20, a 16-byte cookie, then 10 name-lists (uint32 length + comma-separated
    ASCII): kex, host key, cipher c2s/s2c, MAC c2s/s2c, compression c2s/s2c, language c2s/s2c.
    """
    if not payload or payload[0] != SSH_MSG_KEXINIT:
        kind = payload[0] if payload else "nothing"
        raise KexinitError(f"expected SSH_MSG_KEXINIT (20), got {kind}")
    offset = 17
    lists: list[list[str]] = []
    for _ in range(10):
        if offset + 4 > len(payload):
            raise KexinitError("SSH_MSG_KEXINIT is truncated")
        (length,) = struct.unpack_from(">I", payload, offset)
        raw = payload[offset + 4 : offset + 4 + length]
        if len(raw) != length:
            raise KexinitError("SSH_MSG_KEXINIT is truncated")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise KexinitError("SSH_MSG_KEXINIT has a non-ASCII name-list") from None
        lists.append([n for n in text.split(",") if n])
        offset += 4 + length
    kex = [n for n in lists[0] if not n.startswith(PSEUDO_PREFIXES)]
    return ServerOffer(
        banner, kex, lists[1], _merge(lists[2], lists[3]), _merge(lists[4], lists[5])
    )


async def _read_banner(reader: asyncio.StreamReader) -> str:
    for _ in range(MAX_PRE_BANNER_LINES):
        line = await reader.readline()
        if not line:
            raise KexinitError("the server closed the connection before its banner")
        if line.startswith(b"SSH-"):
            return line.rstrip(b"\r\n").decode("ascii", "replace")
    raise KexinitError("the server sent no SSH banner")


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    """One unencrypted binary packet's payload (RFC 4253 §6)."""
    length, padding = struct.unpack(">IB", await reader.readexactly(5))
    if not padding < length <= MAX_PACKET:
        raise KexinitError(f"implausible packet length {length} (padding {padding})")
    body = await reader.readexactly(length - 1)
    return body[: length - 1 - padding]


async def probe_kexinit(host: str, port: int, timeout: float) -> ServerOffer:
    """Connect to ``host``:``port`` and return the server's offer.

    Raises :class:`KexinitError`, ``OSError`` or ``TimeoutError``.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(IDENTIFICATION)
            banner = await _read_banner(reader)
            return parse_kexinit(await _read_packet(reader), banner)
        except (asyncio.IncompleteReadError, ValueError) as exc:  # ValueError: line too long
            raise KexinitError(f"the server's greeting is cut short or malformed ({exc})") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
