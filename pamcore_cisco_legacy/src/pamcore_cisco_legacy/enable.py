"""The ``enable`` secret, typed for the user: when the user enters ``enable`` at an IOS
prompt and the device then asks ``Password:``, the assistant answers with the vaulted
secret. The device does not echo it, so it never reaches the user's terminal or the
recording; the user never learns it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

#: ``enable`` as IOS accepts it: any unambiguous abbreviation (``en``), optionally a level.
_ENABLE = re.compile(r"^\s*en(a(b(le?)?)?)?(\s+\d{1,2})?\s*$", re.IGNORECASE)
#: The device's question, at the end of what it printed.
_PASSWORD = re.compile(rb"Password:\s*$")
#: Seconds after ``enable`` within which the device must ask.
ANSWER_WINDOW = 10.0
#: Bytes of output kept to find the question when it arrives in pieces.
_TAIL = 64
_ERASE = (b"\x7f", b"\x08")
_LINE_END = (b"\r", b"\n")


@dataclass
class EnableAssistant:
    """One terminal channel's watcher (:class:`pamcore.registry.TerminalAssistant`)."""

    secret: bytes = field(repr=False)
    _line: bytearray = field(default_factory=bytearray, repr=False)
    _armed_until: float = 0.0
    _tail: bytes = field(default=b"", repr=False)

    def typed(self, data: bytes) -> None:
        """Follow the line being typed; a finished ``enable`` line arms the answer, and
        anything typed after it disarms it (the user answers the question themselves). An
        empty line end (the ``\n`` of ``\r\n``) changes nothing."""
        for i in range(len(data)):
            char = data[i : i + 1]
            if char in _LINE_END:
                if _ENABLE.match(self._line.decode("ascii", "replace")):
                    self._armed_until = time.monotonic() + ANSWER_WINDOW
                    self._tail = b""
                elif self._line:
                    self._armed_until = 0.0
                self._line.clear()
                continue
            self._armed_until = 0.0
            if char in _ERASE:
                del self._line[-1:]
            elif char == b"\x15":  # Ctrl+U: erase the line
                self._line.clear()
            elif char >= b" ":
                self._line += char

    def shown(self, data: bytes) -> bytes:
        """The secret and a carriage return once the armed device asks ``Password:``."""
        if not self._armed_until:
            return b""
        if time.monotonic() > self._armed_until:
            self._armed_until = 0.0
            return b""
        self._tail = (self._tail + data)[-_TAIL:]
        if not _PASSWORD.search(self._tail):
            return b""
        self._armed_until, self._tail = 0.0, b""
        return self.secret + b"\r"
