"""The client side of a relayed channel: :class:`Terminal`, what the relay needs of it, and
:class:`RelayProcess`, the SSH server process that relays every session request — shell,
exec *and* subsystems.

asyncssh refuses the ``sftp`` subsystem unless it serves SFTP itself (``sftp_factory``);
a relay must pass it through opaquely (RFC 4254 §6.5), so this subclass accepts it and
starts the same handler for it. It relies on asyncssh internals: keep asyncssh pinned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR
from asyncssh.stream import SSHReader, SSHWriter

#: Subsystems relayed to the target; sftp also carries scp since OpenSSH 9.
SUBSYSTEMS = frozenset({"sftp"})


class Output(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class Input(Protocol):
    async def read(self, n: int = -1) -> bytes:
        """Bytes, ``b""`` at EOF; raises asyncssh's ``TerminalSizeChanged``,
        ``BreakReceived`` or ``SignalReceived`` for those events."""
        ...


class Terminal(Protocol):
    """What :class:`pamcore_ssh.relay.Link` relays: an SSH session channel
    (:class:`RelayProcess`) or a browser terminal (:mod:`pamcore_ssh.browser`)."""

    @property
    def term_type(self) -> str | None: ...

    @property
    def term_size(self) -> tuple[int, int, int, int]: ...

    @property
    def term_modes(self) -> Mapping[int, int]: ...

    @property
    def command(self) -> str | None: ...

    @property
    def subsystem(self) -> str | None: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def stdin(self) -> Input: ...

    @property
    def stdout(self) -> Output: ...

    @property
    def stderr(self) -> Output: ...

    def exit(self, status: int) -> None: ...

    def exit_with_signal(
        self, signal: str, core_dumped: bool = False, msg: str = "", lang: str = ""
    ) -> None: ...

    async def wait_closed(self) -> None:
        """Until the client closed its side too (after an exit)."""
        ...


class RelayProcess(asyncssh.SSHServerProcess[bytes]):
    def __init__(self, handler: Callable[[RelayProcess], Awaitable[None]]) -> None:
        super().__init__(handler, None, 0, False)  # type: ignore[arg-type]

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem in SUBSYSTEMS

    def session_started(self) -> None:
        chan: Any = self._chan
        stdin = SSHReader[bytes](self, chan)
        stdout = SSHWriter[bytes](self, chan)
        stderr = SSHWriter[bytes](self, chan, EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        assert self._conn is not None and handler is not None
        self._conn.create_task(handler, stdin.logger)  # type: ignore[arg-type]
