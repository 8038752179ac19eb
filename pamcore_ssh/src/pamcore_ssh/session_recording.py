"""Recording of a connection's terminal channels (a PTY shell, or exec with a PTY): what the
target prints, the proxy's own notices and window changes — never keystrokes, so a password
typed at a target's prompt is not in the file. One asciicast v2 file per channel,
``recordings/session-<id>/<connection>-<channel>.cast`` (connection ids are never reused),
registered with its SHA-256 (audited) when the channel ends.

Not recorded: sftp (which also carries scp) and exec channels without a terminal (pipes,
``scp -O``, rsync). They carry binary data, which the asciicast text format inflates sixfold
(docs/design/ssh.md §5) and no player can show.

All recordings of one session share one byte budget, ``recording_cap_mib`` in
``[plugins.ssh]``, on every proxy node (the admission's :class:`pamcore.proxy.SessionBudget`).
A failure to record never stops the relay: it is audited, and the channel goes on unrecorded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pamcore.config import Config
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.proxy import Admitted, SessionBudget, recording_failed, register_recording
from pamcore.proxy import recording_cap as plugin_recording_cap
from pamcore_ssh.process import Terminal
from pamcore_ssh.recording import Recorder, RecordingFailed
from pamcore_ssh.target import SshTarget

log = logging.getLogger(__name__)

PLUGIN = "ssh"
#: Default per-session cap: hours of interactive work, bounded for a runaway ``cat``.
DEFAULT_CAP_MIB = 50

Spawn = Callable[[Coroutine[Any, Any, None]], None]


def recording_cap(config: Config) -> int:
    """The per-session cap in bytes, from ``[plugins.ssh] recording_cap_mib``."""
    return plugin_recording_cap(config, PLUGIN, DEFAULT_CAP_MIB)


@dataclass(frozen=True)
class _Channel:
    number: int
    started_at: dt.datetime
    width: int
    height: int


class SessionRecordings:
    """The recordings of one client connection, sharing their session's budget."""

    def __init__(
        self, core: Pamcore, admitted: Admitted[SshTarget], budget: SessionBudget, spawn: Spawn
    ) -> None:
        """``spawn`` runs the registration after the channel, tracked by the listener so a
        stopping proxy waits for it."""
        self.core = core
        self.admitted = admitted
        self.budget = budget
        self._spawn = spawn
        self._folder = core.config.recordings_path / f"session-{admitted.session_id}"
        self._channels = 0
        self._open: dict[Recorder, _Channel] = {}

    @property
    def recording(self) -> bool:
        """Some channel's recorder is still open."""
        return bool(self._open)

    def start(self, process: Terminal) -> Recorder | None:
        """A recorder for a terminal channel; ``None`` (audited) when the file cannot be made."""
        self._channels += 1
        width, height = process.term_size[:2]
        width, height = width or 80, height or 24
        stem = f"{self.admitted.connection_id}-{self._channels}"
        term = process.term_type or "xterm"
        root = self.core.config.recordings_path
        try:
            recorder = Recorder.open(
                self._folder / f"{stem}.cast", width, height, self.budget, term=term, root=root
            )
        except (OSError, ConfigurationError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = f"cannot record {stem}.cast: {why}"
            log.warning("ssh connection #%s: %s", self.admitted.connection_id, reason)
            self._spawn(recording_failed(self.core, self.admitted, reason))
            return None
        self._open[recorder] = _Channel(self._channels, self.core.now(), width, height)
        return recorder

    def finish(self, recorder: Recorder) -> None:
        """Close the file and register it, partial (``incomplete``) after a write failure;
        the last one open gives the unwritten budget back to the session."""
        channel = self._open.pop(recorder)
        meta: dict[str, Any] = {
            "connection": self.admitted.connection_id,
            "channel": channel.number,
            "width": channel.width,
            "height": channel.height,
        }
        try:
            sha256, size = recorder.close()
        except RecordingFailed as exc:
            sha256, size = exc.sha256, exc.size
            meta["incomplete"] = exc.reason
        if not self._open:
            self.budget.release()
        self._spawn(
            register_recording(
                self.core,
                self.admitted,
                recorder.path,
                sha256,
                size,
                channel.started_at,
                self.core.now(),
                meta,
            )
        )
