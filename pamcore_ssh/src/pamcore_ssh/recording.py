"""asciicast v2 recording of what a target sends to the user's terminal.

Format: https://docs.asciinema.org/manual/asciicast/v2/ — one JSON header line, then one
``[time, code, data]`` line per event. Only ``"o"`` (output) and ``"r"`` (resize, ``"WxH"``)
events are written, plus one ``"m"`` (marker) when the size cap is reached. There is no way
to record input (``"i"``): a password typed at a target's prompt never reaches the file.
What the *target* prints (an echo it should not have sent) is output and is recorded.

Use from one thread, the relay's event loop. Output is coalesced into one ``"o"`` event per
:data:`FLUSH_INTERVAL` or :data:`FLUSH_BYTES`, so a bulk transfer costs few JSON lines and
few writes; when the recorder runs inside an event loop a timer emits the last chunk on
time, so a prompt is not stamped late (notes/ssh.md §5).

A full disk (any ``OSError`` on write) never stops the relay: the recorder logs once, stops
recording, and :meth:`Recorder.close` raises :class:`RecordingFailed` carrying the digest
and size of what did reach the disk, so the caller can still register the partial file.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from pamcore.errors import ConfigurationError, ProtocolError

log = logging.getLogger(__name__)

#: Seconds an output chunk may wait to be coalesced with the next ones.
FLUSH_INTERVAL = 0.05
#: Output bytes that make an ``"o"`` event at once, without waiting for the timer.
FLUSH_BYTES = 64 * 1024
#: Label of the one marker written when the per-session size cap is reached.
CAP_MARKER = "[recording size limit reached]"
#: Smallest cap accepted: the header, some output and the marker must fit.
MIN_CAP_BYTES = 4096
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


class Budget:
    """Bytes still to be written by the recordings that share it: one per session, so the
    per-session cap holds however many channels record at once. Each file may pass it by
    one marker line."""

    def __init__(self, cap_bytes: int) -> None:
        if cap_bytes < MIN_CAP_BYTES:
            raise ConfigurationError(
                f"recording size cap must be at least {MIN_CAP_BYTES} bytes, not {cap_bytes}"
            )
        self.cap = cap_bytes
        self.left = cap_bytes


class Recorder:
    """Writes one asciicast v2 file; create it with :meth:`open`."""

    def __init__(
        self,
        out: BinaryIO,
        path: Path,
        width: int,
        height: int,
        cap: int | Budget,
        *,
        term: str = "xterm-256color",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap an open, empty binary file ``out`` (``path`` names it in messages); the
        header is written at once. ``cap``: this file's size cap, or a budget shared with
        other recordings."""
        self._budget = cap if isinstance(cap, Budget) else Budget(cap)
        self.path = path
        self._out = out
        self._clock = clock
        self._start = clock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._digest = hashlib.sha256()
        self._size = 0
        self._lines = bytearray()  # encoded event lines not yet written to ``out``
        self._pending: list[str] = []  # decoded output waiting to become one "o" event
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._capped = False
        self._closed = False
        #: Why recording stopped early (a write error), or ``None`` while all is well.
        self.error: str | None = None
        header = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(time.time()),
            "env": {"TERM": term},
        }
        self._lines += _line(header)
        self._write_out()

    @classmethod
    def open(
        cls, path: Path, width: int, height: int, cap: int | Budget, *, term: str = "xterm-256color"
    ) -> Recorder:
        """Create ``path`` (0600, never overwriting or following a link) in a 0700 folder,
        created if missing; an existing folder open to group or others is refused."""
        folder = path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True)
            folder.chmod(0o700)  # mkdir's mode is filtered by the umask
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"recordings folder {folder} is open to other users (mode {mode:o}); "
                f"run 'chmod 700 {folder}'"
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.fdopen(os.open(path, flags, 0o600), "wb", buffering=0)
        try:
            return cls(out, path, width, height, cap, term=term)
        except BaseException:
            out.close()
            raise

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
            try:
                self._out.close()
            except OSError as exc:
                self._fail(exc)
        if self.error is not None:
            raise RecordingFailed(self.path, self.error, self._digest.hexdigest(), self._size)
        return self._digest.hexdigest(), self._size

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
        if len(self._lines) + len(line) > self._budget.left - _MARKER_ROOM:
            self._capped = True
            self._lines += _line([round(self._clock() - self._start, 6), "m", CAP_MARKER])
            log.info(
                "recording %s reached its size cap of %d bytes", self.path.name, self._budget.cap
            )
            return
        self._lines += line

    def _write_out(self) -> None:
        """Write the queued lines; only bytes that reached the file enter the digest."""
        view = memoryview(self._lines)
        written = 0
        try:
            while written < len(view):
                n = self._out.write(view[written:])
                self._digest.update(view[written : written + n])
                written += n
        except OSError as exc:
            self._fail(exc)
        finally:
            self._size += written
            self._budget.left -= written
            view.release()
            self._lines.clear()

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"write failed: {exc.strerror or exc}"
            log.warning("recording %s stopped: %s", self.path.name, self.error)
        self._pending.clear()


def _line(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()
