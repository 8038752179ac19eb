"""Recording of a relayed RDP connection: a timestamped, direction-tagged log of the
decrypted PDUs (TPKT or fast-path frames, after TLS), one JSON line each, registered with
its SHA-256 (audited) when the connection ends. A visual player comes later.

Format ``pamcore-rdp-pdus-v1``: a header line (session, user, resource, target, start),
then ``[seconds, "s", base64]`` per server frame and ``[seconds, "c", base64]`` per client
frame of the connection sequence, then ``{"ended": ..., "bytes": ...}``. What the client
sends after its Client Info PDU — keystrokes, mouse, clipboard — is logged as its size
only, ``[seconds, "c", null, size]``: a password typed inside the session must not reach
the file (the SSH plugin never records input either). The Client Info PDU itself is
written with its password field emptied by the relay, so neither the user's password nor
the injected vaulted one is recorded.

All recordings of one session share one byte budget, ``recording_cap_mib`` in
``[plugins.rdp]`` (checked when the listener starts), on every proxy node: the admitted
connection's ``budget`` (:class:`pamcore.proxy.SessionBudget`). A failure to record never
stops the relay: it is logged and audited, and the file is registered as ``incomplete``
with what reached the disk.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any, BinaryIO

from pamcore.config import Config
from pamcore.core import Pamcore
from pamcore.errors import ProtocolError
from pamcore.proxy import (
    Admitted,
    ByteBudget,
    DigestWriter,
    FixedBudget,
    SessionBudget,
    on_private,
    recording_failed,
    register_recording,
)
from pamcore.proxy import recording_cap as plugin_recording_cap
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.wire import TPKT_VERSION, fastpath_length, tpkt_length
from pamcore_rdp.proxy.target import PROTOCOL, RdpTarget

log = logging.getLogger(__name__)

FORMAT = "pamcore-rdp-pdus-v1"
#: Default per-session cap: a desktop session's bitmaps are bulky; bounded all the same.
DEFAULT_CAP_MIB = 200
#: Room kept below the cap for the marker and closing lines.
_TAIL_ROOM = 512
#: Buffered lines are written at this size, or after FLUSH_INTERVAL seconds.
FLUSH_BYTES = 64 * 1024
FLUSH_INTERVAL = 0.5


def recording_cap(config: Config) -> int:
    """The per-session cap in bytes, from ``[plugins.rdp] recording_cap_mib``."""
    return plugin_recording_cap(config, PROTOCOL, DEFAULT_CAP_MIB)


class Frames:
    """Splits one direction's byte stream into whole TPKT / fast-path frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        #: The stream stopped looking like RDP: later bytes are passed on as they come.
        self.broken = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken:
            return [data]
        self._buffer += data
        frames = []
        while (size := self._size()) is not None and len(self._buffer) >= size:
            frames.append(bytes(self._buffer[:size]))
            del self._buffer[:size]
        if self.broken:
            frames.append(bytes(self._buffer))
            self._buffer.clear()
        return frames

    def _size(self) -> int | None:
        head = bytes(self._buffer[:4])
        try:
            if len(head) >= 4 and head[0] == TPKT_VERSION:
                return tpkt_length(head)
            if len(head) >= 2 and head[0] != TPKT_VERSION:
                if head[1] & 0x80 and len(head) < 3:
                    return None
                return fastpath_length(head[:3])
        except RdpProtocolError:
            self.broken = True
        return None


class PduRecorder:
    """Writes one ``pamcore-rdp-pdus-v1`` file; create it with :meth:`open`."""

    def __init__(
        self, out: BinaryIO, path: Path, header: dict[str, Any], budget: int | ByteBudget
    ) -> None:
        """``budget``: this file's size cap, or its session's budget."""
        self.path = path
        self._file = DigestWriter(out, path.name)
        self._budget = FixedBudget(budget) if isinstance(budget, int) else budget
        self._start = time.monotonic()
        self._lines = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._server = Frames()
        self.capped = False
        self.counts = {"client": 0, "server": 0}
        self._queue({"format": FORMAT, **header})
        self._write_out()

    @classmethod
    def open(
        cls, path: Path, header: dict[str, Any], budget: int | ByteBudget, root: Path | None = None
    ) -> PduRecorder:
        """Create ``path`` privately (:func:`~pamcore.recording_files.create_private`)."""
        return on_private(path, lambda out: cls(out, path, header, budget), root)

    @property
    def error(self) -> str | None:
        """Why recording stopped early (a write error), ``None`` while all is well."""
        return self._file.error

    @property
    def size(self) -> int:
        return self._file.size

    # -- events -----------------------------------------------------------------------

    def server(self, data: bytes) -> None:
        """Bytes the target sent, decrypted: one line per whole frame."""
        self.counts["server"] += len(data)
        for frame in self._server.feed(data):
            self._event("s", frame)

    def client_frame(self, frame: bytes) -> None:
        """A client frame of the connection sequence, recorded in full (the caller has
        emptied the Client Info password)."""
        self.counts["client"] += len(frame)
        self._event("c", frame)

    def client_bytes(self, size: int) -> None:
        """Client bytes after the Client Info: their size only (see the module doc)."""
        self.counts["client"] += size
        self._event("c", None, size)

    def close(self, reason: str, ended: str) -> tuple[str, int]:
        """Write the closing line and close; (sha256 hex of the file, its size).

        Raises :class:`RecordingError` carrying the partial digest after a write failure.
        """
        if self.error is None:
            self._lines += _line({"ended": ended, "reason": reason, "bytes": self.counts})
        self._write_out()
        self._file.close()
        if self.error is not None:
            raise RecordingIncomplete(self.error, self._file.sha256, self.size)
        return self._file.sha256, self.size

    # -- internals --------------------------------------------------------------------

    def _event(self, direction: str, frame: bytes | None, size: int = 0) -> None:
        if self.capped or self.error is not None:
            return
        at = round(time.monotonic() - self._start, 4)
        if frame is None:
            self._queue([at, direction, None, size])
        else:
            self._queue([at, direction, base64.b64encode(frame).decode("ascii")])

    def _queue(self, value: Any) -> None:
        line = _line(value)
        if not self._budget.allows(len(self._lines) + len(line) + _TAIL_ROOM):
            self.capped = True
            self._lines += _line({"capped": "recording size limit reached"})
            log.info("recording %s reached its session's size cap", self.path.name)
            return
        self._lines += line
        if len(self._lines) >= FLUSH_BYTES:
            self._write_out()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._timer = loop.call_later(FLUSH_INTERVAL, self._write_out)

    def _write_out(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._budget.spend(self._file.write(self._lines))
        self._lines.clear()


class RecordingIncomplete(ProtocolError):
    """The file ends early (a write failed); it is still registered, marked incomplete."""

    def __init__(self, reason: str, sha256: str, size: int) -> None:
        super().__init__(f"recording incomplete: {reason}")
        self.reason = reason
        self.sha256 = sha256
        self.size = size


class ConnectionRecording:
    """The recording of one relayed connection, from open to registration, within the
    connection's share of its session's budget (``admitted.budget``)."""

    def __init__(
        self,
        core: Pamcore,
        admitted: Admitted[RdpTarget],
        recorder: PduRecorder,
        budget: SessionBudget,
    ) -> None:
        self.core = core
        self.admitted = admitted
        self.recorder = recorder
        self.budget = budget
        self.started_at = core.now()

    @classmethod
    async def start(
        cls, core: Pamcore, admitted: Admitted[RdpTarget]
    ) -> ConnectionRecording | None:
        """Open the file; ``None`` (logged and audited) when it cannot be made. Only for a
        connection whose profile records (its ``budget`` is set)."""
        assert admitted.budget is not None
        root = core.config.recordings_path
        folder = root / f"session-{admitted.session_id}"
        stem = f"{admitted.connection_id}-rdp"
        header = {
            "session": admitted.session_id,
            "connection": admitted.connection_id,
            "user": admitted.username,
            "resource": admitted.resource_name,
            "target": f"{admitted.address}:{admitted.port}",
            "login": admitted.extra.account,
            "started": _iso(core.now()),
        }
        try:
            recorder = PduRecorder.open(folder / f"{stem}.jsonl", header, admitted.budget, root)
        except OSError as exc:
            reason = f"cannot record {stem}.jsonl: {exc.strerror or exc}"
            log.warning("rdp connection #%s: %s", admitted.connection_id, reason)
            await recording_failed(core, admitted, reason)
            return None
        return cls(core, admitted, recorder, admitted.budget)

    async def finish(self, reason: str) -> None:
        """Close the file and register it with its SHA-256 (audited by the core); give
        the unwritten budget back to the session."""
        meta: dict[str, Any] = {
            "connection": self.admitted.connection_id,
            "bytes_client": self.recorder.counts["client"],
            "bytes_server": self.recorder.counts["server"],
        }
        try:
            sha256, size = self.recorder.close(reason, _iso(self.core.now()))
        except RecordingIncomplete as exc:
            sha256, size = exc.sha256, exc.size
            meta["incomplete"] = exc.reason
        self.budget.release()
        if self.recorder.capped:
            meta["capped"] = True
        await register_recording(
            self.core,
            self.admitted,
            self.recorder.path,
            sha256,
            size,
            self.started_at,
            self.core.now(),
            meta,
            file_format=FORMAT,
        )


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _line(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
