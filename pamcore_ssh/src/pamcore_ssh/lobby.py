"""The terminal dialogue before a user is let through: the menu of sessions for a login
without a resource, and the waiting room while a session awaits approval or its start.

Ctrl+C (or the client's INT signal) or closing the connection leaves either; the user sees
one line. The end of the input is not leaving: ``ssh host cmd < /dev/null`` waits too, and
its command runs once the session is available."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncssh

from pamcore.errors import PolicyDenied
from pamcore.proxy import Choice
from pamcore_ssh.process import RelayProcess, Terminal

CTRL_C = b"\x03"
#: Seconds between two looks at a waiting session.
POLL_SECONDS = 2.0
MAX_MENU_LINE = 16


class Left(PolicyDenied):
    """The user left the menu or the waiting room."""


def say(process: Terminal, text: str) -> None:
    """One line in the user's terminal (stderr, so exec output stays clean)."""
    process.stderr.write(f"pamcore: {text}\r\n".encode())


async def _keys(process: RelayProcess) -> bytes:
    """The next keystrokes; ``CTRL_C`` for an interrupt signal, ``b""`` at the input's end."""
    while True:
        try:
            return await process.stdin.read(1024)
        except asyncssh.SignalReceived:
            return CTRL_C
        except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived):
            continue


async def wait_until_available(
    process: RelayProcess, first_reason: str, poll: Callable[[], Awaitable[str | None]]
) -> None:
    """Show why the session waits, updated every few seconds, until it is connectable;
    raises :class:`Left` on Ctrl+C or when the connection closes, and whatever ``poll``
    raises (denied, canceled). After the input's end it goes on waiting."""
    pty = process.term_type is not None
    reason: str | None = first_reason
    shown = ""
    keys: asyncio.Future[bytes] | None = asyncio.ensure_future(_keys(process))
    gone = asyncio.ensure_future(process.wait_closed())
    try:
        while reason is not None:
            if reason != shown:
                line = f"{reason}; waiting, Ctrl+C to leave"
                process.stderr.write(
                    (f"\r\x1b[K[pamcore] {line}" if pty else f"pamcore: {line}\n").encode()
                )
                shown = reason
            await asyncio.wait({gone} if keys is None else {gone, keys}, timeout=POLL_SECONDS)
            if gone.done():
                raise Left("the connection closed in the waiting room")
            if keys is not None and keys.done():
                typed = keys.result()
                if CTRL_C in typed:
                    raise Left("you left the waiting room")
                keys = asyncio.ensure_future(_keys(process)) if typed else None
            reason = await poll()
        if pty:
            process.stderr.write(b"\r\x1b[K[pamcore] the session is available\r\n")
    finally:
        gone.cancel()
        if keys is not None:
            keys.cancel()


async def pick(process: RelayProcess, options: Sequence[Choice]) -> Choice:
    """Let the user pick one of several sessions by number (terminals only)."""
    if process.term_type is None:
        names = ", ".join(c.resource for c in options)
        raise PolicyDenied(f"several sessions are available ({names}); log in as user+resource")
    lines = ["pamcore: your Available sessions:"]
    lines += [f"  {n}) {c.label()}" for n, c in enumerate(options, start=1)]
    process.stdout.write(("\r\n".join(lines) + "\r\nChoose a number: ").encode())
    typed = b""
    while True:
        data = await _keys(process)
        if CTRL_C in data or not data:
            raise Left("you left the menu")
        for byte in data:
            if byte in b"\r\n":
                process.stdout.write(b"\r\n")
                if typed.isdigit() and 1 <= int(typed) <= len(options):
                    return options[int(typed) - 1]
                raise PolicyDenied(f"'{typed.decode(errors='replace')}' is not on the menu")
            if byte in (8, 127) and typed:
                typed = typed[:-1]
                process.stdout.write(b"\b \b")
            elif chr(byte).isprintable() and len(typed) < MAX_MENU_LINE:
                typed += bytes([byte])
                process.stdout.write(bytes([byte]))
