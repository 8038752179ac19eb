"""One admitted client connection linked to one target connection: every session channel
the client opens (shell, exec, sftp) is relayed as a channel on the target (RFC 4254 §6),
with window changes, signals, breaks, EOF and exit status passed through. The client is an
SSH connection or a browser terminal's WebSocket (:class:`~pamcore_ssh.process.Terminal`).

Bytes only (``encoding=None``); reads of 64 KiB and ``drain()`` keep SSH's flow control
end to end. Notices go to terminal channels only, never into exec or sftp data. When the
session is recorded, a terminal channel's output, window changes and notices go to its
recorder too (see :mod:`pamcore_ssh.session_recording`). Plugins' terminal assistants
(``pamcore_ssh_terminal_assistant``) watch a terminal channel both ways; what they answer
goes to the target only, never to the client or the recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import asyncssh

from pamcore.proxy import Admitted, relayed
from pamcore_ssh.hookspecs import TerminalAssistant
from pamcore_ssh.process import Output, Terminal
from pamcore_ssh.recording import Recorder
from pamcore_ssh.session_end import EndWatch
from pamcore_ssh.session_recording import SessionRecordings
from pamcore_ssh.target import SshTarget

log = logging.getLogger(__name__)

CHUNK = 65536
TO_TARGET = relayed("ssh", "to_target")
TO_CLIENT = relayed("ssh", "to_client")
#: How long a closing notice may take to leave for the client before the connection drops.
NOTICE_GRACE = 2.0
#: How long the channels may take to close after the target's side before the connection
#: drops.
CLOSE_GRACE = 2.0


def notice_bytes(text: str) -> bytes:
    """A notice on its own line, in reverse video, so it stands out from the target's output."""
    return f"\r\n\x1b[7m[pamcore] {text}\x1b[0m\r\n".encode()


class Client(Protocol):
    """The client's connection, closed with the link."""

    def close(self) -> None: ...


class Link:
    """The admitted state of one client connection, shared by its channels."""

    def __init__(
        self,
        admitted: Admitted[SshTarget],
        target: asyncssh.SSHClientConnection,
        client: Client,
        watch: Callable[[Link], EndWatch],
        recordings: SessionRecordings | None = None,
    ) -> None:
        self.admitted = admitted
        self.target = target
        self.client = client
        self.recordings = recordings
        #: Open terminal channels and their recorders (``None``: not recorded).
        self.terminals: dict[Terminal, Recorder | None] = {}
        self.closing: str | None = None
        self.watch = watch(self)
        #: Set once the closing notice left for every terminal (or its grace ran out).
        self._notice_sent = asyncio.Event()
        #: Channels being relayed now; the client connection closes after the last one.
        self._relaying = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        #: The closing task, held so that it is not collected before it ran.
        self._closer: asyncio.Task[None] | None = None

    # -- notices and the end ---------------------------------------------------------------

    def notify(self, text: str) -> None:
        data = notice_bytes(text)
        for process, recorder in list(self.terminals.items()):
            if recorder is not None:
                recorder.output(data)
            with contextlib.suppress(OSError, asyncssh.Error):
                process.stdout.write(data)

    def close(self, reason: str) -> None:
        """Show ``reason`` in every terminal and its recording, then close both legs once
        it left (idempotent)."""
        if self.closing is not None:
            return
        self.closing = reason
        log.info("ssh connection #%s closing: %s", self.admitted.connection_id, reason)
        self.notify(f"{reason}; closing the connection")
        self._closer = asyncio.get_running_loop().create_task(self._close_after_notice())

    async def _close_after_notice(self) -> None:
        """The notice drained, then the target closed (which ends every channel, each
        after the notice), then the client connection once its channels are closed."""
        drains = [process.stdout.drain() for process in self.terminals]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), NOTICE_GRACE)
        self._notice_sent.set()
        self.target.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), CLOSE_GRACE)
        self.client.close()

    async def _say_why_it_ends(self) -> None:
        """A terminal's target side ended: if the session is over (a post-session action
        removing the account can end the shell before this proxy hears of the end), the
        connection closes with its notice; the channel waits for that notice to leave."""
        if self.closing is None:
            try:
                await self.watch.recheck()
            except Exception:  # the watch's next round still closes it
                log.exception(
                    "ssh connection #%s: the session check failed", self.admitted.connection_id
                )
        if self.closing is not None:
            await self._notice_sent.wait()

    # -- one channel -----------------------------------------------------------------------

    async def relay(self, process: Terminal) -> None:
        """Open the same kind of channel on the target and relay it until either side ends."""
        pty = process.term_type is not None
        try:
            remote = await self.target.create_process(
                process.command,
                subsystem=process.subsystem,
                env=process.env,
                term_type=process.term_type,
                term_size=process.term_size if pty else None,
                term_modes=process.term_modes if pty else None,
                encoding=None,
            )
        except (asyncssh.Error, OSError) as exc:
            process.stderr.write(f"pamcore: the target refused the channel: {exc}\r\n".encode())
            process.exit(1)
            return
        self._relaying += 1
        self._quiet.clear()
        try:
            await self._relay_channel(process, remote, pty)
        finally:
            self._relaying -= 1
            if not self._relaying:
                self._quiet.set()

    async def _relay_channel(
        self, process: Terminal, remote: asyncssh.SSHClientProcess[bytes], pty: bool
    ) -> None:
        recorder = self.recordings.start(process) if pty and self.recordings else None
        assistants = [make() for make in self.admitted.extra.assistants] if pty else []
        if pty:
            self.terminals[process] = recorder
        up = asyncio.create_task(self._up(process, remote, pty, recorder, assistants))
        try:
            try:
                await asyncio.gather(
                    _down(remote.stdout, process.stdout, recorder, _answering(assistants, remote)),
                    _down(remote.stderr, process.stderr, recorder),
                )
                await remote.wait_closed()
            except (asyncssh.Error, OSError):
                pass
            finally:
                up.cancel()
            if pty:
                await self._say_why_it_ends()
        finally:
            self.terminals.pop(process, None)
            if recorder is not None and self.recordings is not None:
                self.recordings.finish(recorder)
        if remote.exit_signal is not None:
            process.exit_with_signal(*remote.exit_signal)
        else:
            process.exit(255 if remote.exit_status is None else remote.exit_status)
        if self.closing is not None:
            # OpenSSH answers a channel close once it wrote out what came before (its
            # chan_obuf_empty), so the notice is on the user's screen when this returns;
            # a disconnect sent sooner can end the client before it writes it.
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(process.wait_closed(), CLOSE_GRACE)

    async def _up(
        self,
        process: Terminal,
        remote: asyncssh.SSHClientProcess[bytes],
        pty: bool,
        recorder: Recorder | None,
        assistants: list[TerminalAssistant],
    ) -> None:
        """Client to target: data, window changes, breaks, signals, then EOF. Only window
        changes are recorded: keystrokes may be passwords."""
        while True:
            try:
                data = await process.stdin.read(CHUNK)
            except asyncssh.TerminalSizeChanged as size:
                remote.change_terminal_size(size.width, size.height, size.pixwidth, size.pixheight)
                if recorder is not None:
                    recorder.resize(size.width, size.height)
                continue
            except asyncssh.BreakReceived as brk:
                remote.send_break(brk.msec)
                continue
            except asyncssh.SignalReceived as sig:
                remote.send_signal(sig.signal)
                continue
            except (asyncssh.Error, OSError):
                return
            if not data:
                remote.stdin.write_eof()
                return
            if pty:
                data = await self.watch.filter_input(data)
            for assistant in assistants:
                assistant.typed(data)
            if data:
                TO_TARGET.inc(len(data))
                remote.stdin.write(data)
                await remote.stdin.drain()


def _answering(
    assistants: list[TerminalAssistant], remote: asyncssh.SSHClientProcess[bytes]
) -> Callable[[bytes], None] | None:
    """Show the target's output to the assistants; their answers go to the target."""
    if not assistants:
        return None

    def shown(data: bytes) -> None:
        for assistant in assistants:
            if answer := assistant.shown(data):
                remote.stdin.write(answer)

    return shown


async def _down(
    source: asyncssh.SSHReader[bytes],
    sink: Output,
    recorder: Recorder | None,
    shown: Callable[[bytes], None] | None = None,
) -> None:
    while data := await source.read(CHUNK):
        TO_CLIENT.inc(len(data))
        if recorder is not None:
            recorder.output(data)
        sink.write(data)
        if shown is not None:
            shown(data)
        await sink.drain()
