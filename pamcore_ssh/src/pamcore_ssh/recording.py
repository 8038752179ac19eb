"""asciicast v2 recording of what a target sends to the user's terminal.

Format: https://docs.asciinema.org/manual/asciicast/v2/ — one JSON header line, then one
``[time, code, data]`` line per event. Only ``"o"`` (output) and ``"r"`` (resize, ``"WxH"``)
events are written, plus one ``"m"`` (marker) when the size cap is reached. There is no way
to record input (``"i"``): a password typed at a target's prompt never reaches the file.
What the *target* prints (an echo it should not have sent) is output and is recorded.

Use from one thread, the relay's event loop. Output is coalesced into one ``"o"`` event per
:data:`FLUSH_INTERVAL` or :data:`FLUSH_BYTES`, so a bulk transfer costs few JSON lines and
few writes; when the recorder runs inside an event loop a timer emits the last chunk on
time, so a prompt is not stamped late (docs/design/ssh.md §5).

A full disk (any ``OSError`` on write) never stops the relay: the recorder logs once, stops
recording, and :meth:`Recorder.close` raises :class:`RecordingFailed` carrying the digest
and size of what did reach the disk, so the caller can still register the partial file.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from pamcore.errors import ProtocolError
from pamcore.proxy import ByteBudget, DigestWriter, FixedBudget, on_private

log = logging.getLogger(__name__)

#: Seconds an output chunk may wait to be coalesced with the next ones.
FLUSH_INTERVAL = 0.05
#: Output bytes that make an ``"o"`` event at once, without waiting for the timer.
FLUSH_BYTES = 64 * 1024
#: Label of the one marker written when the per-session size cap is reached.
CAP_MARKER = "[recording size limit reached]"
#: Room kept for the marker line below the cap.
_MARKER_ROOM = 128


class RecordingFailed(ProtocolError):
    """Writing the recording failed (e.g. a full disk); the file holds what was written
    before. ``sha256`` and ``size`` describe that partial file."""

    def __init__(self, path: Path, reason: str, sha256: str, size: int) -> None:
        super().__init__(f"recording {path.name} is incomplete: {reason}")
        self.path = path
        self.reason = reason
        self.sha256 = sha256
        self.size = size


class Recorder:
    """Writes one asciicast v2 file; create it with :meth:`open`."""

    def __init__(
        self,
        out: BinaryIO,
        path: Path,
        width: int,
        height: int,
        cap: int | ByteBudget,
        *,
        term: str = "xterm-256color",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap an open, empty binary file ``out`` (``path`` names it in messages); the
        header is written at once. ``cap``: this file's size cap, or its session's budget,
        shared with the session's other recordings on every node."""
        self._budget = FixedBudget(cap) if isinstance(cap, int) else cap
        self.path = path
        self._file = DigestWriter(out, path.name)
        self._clock = clock
        self._start = clock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lines = bytearray()  # encoded event lines not yet written to ``out``
        self._pending: list[str] = []  # decoded output waiting to become one "o" event
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._capped = False
        self._closed = False
        header = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(time.time()),  # wall clock: when the bytes really flowed
            "env": {"TERM": term},
        }
        self._lines += _line(header)
        self._write_out()

    @classmethod
    def open(
        cls,
        path: Path,
        width: int,
        height: int,
        cap: int | ByteBudget,
        *,
        term: str = "xterm-256color",
        root: Path | None = None,
    ) -> Recorder:
        """Create ``path`` privately (:func:`~pamcore.recording_files.create_private`; the
        recordings ``root`` too, when missing)."""
        return on_private(path, lambda out: cls(out, path, width, height, cap, term=term), root)

    @property
    def error(self) -> str | None:
        """Why recording stopped early (a write error), or ``None`` while all is well."""
        return self._file.error

    @property
    def failed(self) -> bool:
        return self.error is not None

    # -- events -------------------------------------------------------------------------

    def output(self, data: bytes) -> None:
        """Record bytes the target sent to the terminal (decoded as UTF-8 across chunks)."""
        if self._closed or self._capped or self.failed:
            return
        text = self._decoder.decode(data)
        if not text:
            return
        now = self._clock()
        if self._pending and now - self._pending_since >= FLUSH_INTERVAL:
            self.flush()  # no timer ran (no event loop): older chunks keep their own time
        if not self._pending:
            self._pending_since = now
            self._arm_timer()
        self._pending.append(text)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def resize(self, width: int, height: int) -> None:
        """Record a window change (after the output that came before it)."""
        if self._closed or self._capped or self.failed:
            return
        self._emit_pending()
        self._emit("r", f"{width}x{height}", self._clock())
        self._write_out()

    def flush(self) -> None:
        """Turn waiting output into an event and write everything to the file."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._emit_pending()
        self._write_out()

    def close(self) -> tuple[str, int]:
        """Flush and close; returns (sha256 hex of the file, its size in bytes).

        Raises :class:`RecordingFailed` if a write failed: the file then ends early, and the
        exception carries the digest and size of what it holds.
        """
        if not self._closed and not self.failed and not self._capped:
            tail = self._decoder.decode(b"", final=True)  # an unfinished sequence -> U+FFFD
            if tail:
                self._pending.append(tail)
        self.flush()
        if not self._closed:
            self._closed = True
            self._file.close()
        if self.error is not None:
            raise RecordingFailed(self.path, self.error, self._file.sha256, self._file.size)
        return self._file.sha256, self._file.size

    # -- internals ----------------------------------------------------------------------

    def _arm_timer(self) -> None:
        """Inside an event loop, emit waiting output after FLUSH_INTERVAL even if nothing
        else arrives; without a loop the next call or ``close`` does it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(FLUSH_INTERVAL, self.flush)

    def _emit_pending(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._emit("o", text, self._pending_since)

    def _emit(self, code: str, data: str, at: float) -> None:
        """Queue one event line, or the cap marker if the line would pass the cap."""
        if self._capped or self.failed or self._closed:
            return
        line = _line([round(at - self._start, 6), code, data])
        if not self._budget.allows(len(self._lines) + len(line) + _MARKER_ROOM):
            self._capped = True
            self._lines += _line([round(self._clock() - self._start, 6), "m", CAP_MARKER])
            log.info(
                "recording %s reached its size cap of %d bytes", self.path.name, self._budget.cap
            )
            return
        self._lines += line

    def _write_out(self) -> None:
        """Write the queued lines; only bytes that reached the file enter the digest."""
        self._budget.spend(self._file.write(self._lines))
        self._lines.clear()
        if self.failed:
            self._pending.clear()


def _line(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()
