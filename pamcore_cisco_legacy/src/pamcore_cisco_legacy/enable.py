"""The ``enable`` secret, typed for the user: when the user enters ``enable`` at the device's
own user-EXEC prompt and the device then asks ``Password:``, the assistant answers with the
vaulted secret. The device does not echo it, so it never reaches the user's terminal or the
recording; the user never learns it.

Only the device pamcore connected to may get the secret. From user EXEC a requester can open
a session onward (``ssh``, ``telnet``, ``connect``, or just a host name, which IOS telnets to)
to a host they control, which can print the same prompt and ask ``Password:``; the assistant
cannot tell that host's output from the device's. So it answers only while

- the prompt is the one the device showed first, before the user typed anything (its
  ``hostname>``; ``hostname#`` at login gives the same ``hostname>``),
- the line typed is ``enable`` and nothing was typed after it, once per ``enable``,
- no line typed since the channel opened could have left the device: every line's first word
  must be a local command (:data:`LOCAL_COMMANDS`, IOS abbreviations included, but none that is
  also an abbreviation of :data:`ONWARD_COMMANDS`); any other line, including a host name, an
  exec alias, a connection number, a configuration line, or a line edited with keys the
  assistant does not follow (Tab, arrows, history, Ctrl+A), ends its help for the channel.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

#: ``enable`` as IOS accepts it: any unambiguous abbreviation (``en``), optionally a level.
_ENABLE = re.compile(r"\s*en(a(b(le?)?)?)?(\s+\d{1,2})?\s*", re.IGNORECASE)
#: The device's question, at the end of what it printed.
_PASSWORD = re.compile(rb"Password:\s*$")
#: An IOS EXEC prompt: the host name and ``>`` (user EXEC) or ``#`` (privileged).
_PROMPT = re.compile(rb"([A-Za-z0-9][A-Za-z0-9._-]{0,62})[>#]")
#: EXEC commands that stay on the device (no session to another host).
LOCAL_COMMANDS = (
    "clear", "configure", "copy", "debug", "dir", "disable", "enable", "exit", "help",
    "logout", "more", "ping", "quit", "show", "systat", "terminal", "traceroute", "undebug",
    "where", "write",
)  # fmt: skip
#: EXEC commands that open a session to another host, or return to one (``resume``).
ONWARD_COMMANDS = (
    "connect", "lat", "pad", "ppp", "resume", "rlogin", "slip", "ssh", "tclsh", "telnet",
    "tn3270", "tunnel", "udptn", "x28", "x3", "xremote",
)  # fmt: skip
#: Seconds after ``enable`` within which the device must ask.
ANSWER_WINDOW = 10.0
#: Bytes of output kept: the current line with the prompt, or the question in pieces.
_TAIL = 256
_ERASE = (b"\x7f", b"\x08")
_ERASE_LINE = b"\x15"  # Ctrl+U
_LINE_END = (b"\r", b"\n")


def stays_on_device(line: str) -> bool:
    """Whether a typed EXEC line surely runs on the device itself: an empty line, or one whose
    first word abbreviates a local command and no onward one (``s`` could be ``ssh``)."""
    words = line.lower().split()
    if not words:
        return True
    word = words[0]
    return any(c.startswith(word) for c in LOCAL_COMMANDS) and not any(
        c.startswith(word) for c in ONWARD_COMMANDS
    )


@dataclass
class EnableAssistant:
    """One terminal channel's watcher (:class:`pamcore_ssh.hookspecs.TerminalAssistant`)."""

    secret: bytes = field(repr=False)
    #: The device's user-EXEC prompt (``hostname>``), from the first prompt it showed.
    prompt: bytes = b""
    #: A typed line may have left the device: no answer for the rest of the channel.
    onward: bool = False
    _line: bytearray = field(default_factory=bytearray, repr=False)
    #: The line was edited with keys this watcher does not follow.
    _edited: bool = False
    _typed_any: bool = False
    _armed_until: float = 0.0
    _tail: bytes = field(default=b"", repr=False)

    def typed(self, data: bytes) -> None:
        """Follow the line being typed; a finished ``enable`` line at the device's prompt arms
        the answer, anything typed after it disarms it (the user answers the question
        themselves), and a line that may leave the device ends the help. An empty line end
        (the ``\\n`` of ``\\r\\n``) changes nothing."""
        if data:
            self._typed_any = True
        for i in range(len(data)):
            char = data[i : i + 1]
            if char in _LINE_END:
                self._line_ended()
                continue
            self._armed_until = 0.0
            if char in _ERASE:
                del self._line[-1:]
            elif char == _ERASE_LINE:
                self._line.clear()
            elif char < b" ":
                self._edited = True
            else:
                self._line += char

    def _line_ended(self) -> None:
        line = self._line.decode("ascii", "replace")
        if self._edited or not stays_on_device(line):
            self.onward = True
        if not self.onward and _ENABLE.fullmatch(line) and self._at_prompt():
            self._armed_until = time.monotonic() + ANSWER_WINDOW
            self._tail = b""
        elif line or self._edited:
            self._armed_until = 0.0
        self._line.clear()
        self._edited = False

    def _current_line(self) -> bytes:
        return re.split(rb"[\r\n]", self._tail)[-1]

    def _at_prompt(self) -> bool:
        """The device shows its user-EXEC prompt, with only the echo of the typed line after."""
        return bool(self.prompt) and self._current_line().startswith(self.prompt)

    def shown(self, data: bytes) -> bytes:
        """The secret and a carriage return once the armed device asks ``Password:``."""
        self._tail = (self._tail + data)[-_TAIL:]
        learning = not self.prompt and not self._typed_any
        if learning and (found := _PROMPT.fullmatch(self._current_line())):
            self.prompt = found.group(1) + b">"
        if not self._armed_until:
            return b""
        if self.onward or time.monotonic() > self._armed_until:
            self._armed_until = 0.0
            return b""
        if not _PASSWORD.search(self._tail):
            return b""
        self._armed_until, self._tail = 0.0, b""
        return self.secret + b"\r"
