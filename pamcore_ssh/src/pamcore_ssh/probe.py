"""Reachability probe for SSH servers: connect and read the identification string.

RFC 4253 §4.2: after the TCP connection is set up the server sends
``SSH-protoversion-softwareversion SP comments CR LF`` (at most 255 characters), and may
send other lines before it. No credentials and no key exchange are involved, so the probe
is safe to run against any resource.
"""

from __future__ import annotations

import asyncio

from pamcore.proxy import probe
from pamcore.registry import ConnectionTest

#: RFC 4253 §4.2: the identification line is at most 255 characters including CR LF.
MAX_LINE = 255
#: Lines a server may send before its identification; more than this is not SSH.
MAX_PREAMBLE_LINES = 20


def _printable(data: bytes, limit: int = 40) -> str:
    """A short, safe rendering of what a non-SSH server sent, for the message."""
    text = data[:limit].decode("ascii", "replace")
    return "".join(c if c.isprintable() else "." for c in text)


async def probe_ssh(address: str, port: int, timeout: float) -> ConnectionTest:
    """Open a TCP connection to ``address:port`` and check it speaks SSH-2.

    The whole probe (resolve, connect, read) is bounded by ``timeout`` seconds.
    """
    return await probe(
        address,
        port,
        timeout,
        _read_identification,
        service="SSH",
        refused_hint="is SSH running there?",
        limit=MAX_LINE + 1,
    )


async def _read_identification(
    reader: asyncio.StreamReader, _writer: asyncio.StreamWriter, where: str
) -> ConnectionTest:
    seen = b""  # the first thing the server said, to show when it is not SSH
    for _ in range(MAX_PREAMBLE_LINES):
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            seen = seen or exc.partial
            break
        except asyncio.LimitOverrunError:
            return ConnectionTest(
                False,
                f"{where} answered, but not as an SSH server "
                f"(a line longer than {MAX_LINE} characters)",
            )
        seen = seen or raw.rstrip(b"\r\n")
        line = raw.rstrip(b"\r\n").decode("ascii", "replace")
        if line.startswith("SSH-"):
            return _judge(where, line)
    if not seen:
        return ConnectionTest(False, f"{where} closed the connection without an SSH identification")
    return ConnectionTest(
        False, f"{where} answered, but not as an SSH server (it sent {_printable(seen)!r})"
    )


def _judge(where: str, line: str) -> ConnectionTest:
    parts = line.split("-", 2)
    version = parts[1] if len(parts) > 1 else ""
    software = parts[2].split(" ", 1)[0] if len(parts) > 2 else ""
    details = {"identification": line, "protocol": version, "software": software}
    # RFC 4253 §5.1: "1.99" announces a server that also speaks SSH-2.
    if version not in ("2.0", "1.99"):
        return ConnectionTest(
            False, f"{where} speaks SSH-{version} only; pamcore needs SSH-2", details
        )
    return ConnectionTest(True, f"SSH server at {where}: {line}", details)
