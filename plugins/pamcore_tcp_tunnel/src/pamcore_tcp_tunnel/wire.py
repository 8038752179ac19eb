"""The tunnel's one-line handshake and the byte relay, shared by the listener and the client.

Handshake (client -> proxy, then proxy -> client), each one line of UTF-8 ending in ``\\n``::

    PAMCORE <user>+[<activity>+]<resource> <password>
    OK                      or      ERR <reason in words>

after ``OK`` the connection is a transparent byte pipe to the resource.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from pamcore.errors import ValidationError
from pamcore.proxy import parse_login

MAGIC = "PAMCORE"
#: Longest handshake line accepted; a longer one is refused, never buffered without end.
MAX_LINE = 4096
CHUNK = 64 * 1024


class HandshakeError(ValueError):
    """The first line is not a PAMCORE hello; the message says what was expected."""


@dataclass(frozen=True)
class Hello:
    username: str
    activity: str | None
    resource: str
    password: str

    def __repr__(self) -> str:  # never show the password, even in a debugger or a log
        return f"Hello({self.username}+{self.activity or ''}+{self.resource}, password='***')"


EXPECTED = "expected 'PAMCORE user+resource password' (or user+activity+resource)"


def parse_hello(line: bytes) -> Hello:
    """Read ``PAMCORE user+[activity+]resource password``; spaces inside the password stay."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise HandshakeError(f"the first line is not UTF-8; {EXPECTED}") from None
    parts = text.split(" ", 2)
    if len(parts) != 3 or parts[0] != MAGIC or not parts[2]:
        raise HandshakeError(EXPECTED)
    try:
        name = parse_login(parts[1])
    except ValidationError:
        raise HandshakeError(EXPECTED) from None
    if name.resource is None:  # a tunnel needs a destination: no menu on a byte pipe
        raise HandshakeError(EXPECTED)
    return Hello(name.username, name.activity, name.resource, parts[2])


def hello_line(login: str, password: str) -> bytes:
    if "\n" in password or "\r" in password:
        raise ValueError("the password cannot contain a line break")
    return f"{MAGIC} {login} {password}\n".encode()


def one_line(reason: str) -> str:
    """A reason fit for the ``ERR`` line: one line, no control characters."""
    return " ".join(reason.split())


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until ``reader`` reaches end of file."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def relay(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until either side closes; then close both (a DB client and server
    both treat a half-open connection as gone, so nothing is gained by lingering)."""
    tasks = [asyncio.create_task(pipe(a[0], b[1])), asyncio.create_task(pipe(b[0], a[1]))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
        for _, writer in (a, b):
            await close_writer(writer)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2)
