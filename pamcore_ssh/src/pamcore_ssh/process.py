"""A server process that relays every session request — shell, exec *and* subsystems.

asyncssh refuses the ``sftp`` subsystem unless it serves SFTP itself (``sftp_factory``);
a relay must pass it through opaquely (RFC 4254 §6.5), so this subclass accepts it and
starts the same handler for it. It relies on asyncssh internals: keep asyncssh pinned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR
from asyncssh.stream import SSHReader, SSHWriter

#: Subsystems relayed to the target; sftp also carries scp since OpenSSH 9.
SUBSYSTEMS = frozenset({"sftp"})


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
