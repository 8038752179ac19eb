"""Keyboard input the prompt reads: fast-path input events (MS-RDPBCGR 2.2.8.1.2) and the
slow-path Input Event PDU (2.2.8.1.1.3), turned into characters with the US layout.

FreeRDP sends scancodes by default (its X11 client maps X keycodes to set-1 scancodes),
mstsc may send Unicode events; both become :class:`Key` values. Mouse, sync and QoE
events are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from pamcore_rdp.pdu.wire import ByteReader

# Fast-path input event codes (2.2.8.1.2.2), in the top three bits of eventHeader.
FASTPATH_INPUT_EVENT_SCANCODE = 0x0
FASTPATH_INPUT_EVENT_MOUSE = 0x1
FASTPATH_INPUT_EVENT_MOUSEX = 0x2
FASTPATH_INPUT_EVENT_SYNC = 0x3
FASTPATH_INPUT_EVENT_UNICODE = 0x4
FASTPATH_INPUT_EVENT_RELMOUSE = 0x5
FASTPATH_INPUT_EVENT_QOE_TIMESTAMP = 0x6
#: Bytes that follow the eventHeader of each fast-path event kind.
_FASTPATH_EVENT_SIZE = {0x0: 1, 0x1: 6, 0x2: 6, 0x3: 0, 0x4: 2, 0x5: 4, 0x6: 4}
FASTPATH_KBDFLAGS_RELEASE = 0x01
FASTPATH_KBDFLAGS_EXTENDED = 0x02

# Slow-path input messages (2.2.8.1.1.3.1.1).
INPUT_EVENT_SCANCODE = 0x0004
INPUT_EVENT_UNICODE = 0x0005
KBDFLAGS_EXTENDED = 0x0100
KBDFLAGS_RELEASE = 0x8000

# Set-1 scancodes that are not characters.
ESCAPE = 0x01
BACKSPACE = 0x0E
ENTER = 0x1C
LEFT_SHIFT = 0x2A
RIGHT_SHIFT = 0x36

#: US layout: scancode -> (unshifted, shifted).
_US: dict[int, tuple[str, str]] = {}
for _first, _plain, _shifted in (
    (0x02, "1234567890-=", "!@#$%^&*()_+"),
    (0x10, "qwertyuiop[]", "QWERTYUIOP{}"),
    (0x1E, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (0x2B, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
    (0x39, " ", " "),
):
    for _offset, _pair in enumerate(zip(_plain, _shifted, strict=True)):
        _US[_first + _offset] = _pair


@dataclass(frozen=True)
class Key:
    """One key press or release: a set-1 scancode, or a character typed as Unicode."""

    scancode: int | None = None
    char: str | None = None
    released: bool = False
    extended: bool = False


def fastpath_events(frame: bytes) -> tuple[int, list[bytes]]:
    """The fpInputHeader and the raw events (eventHeader and data) of one fast-path input
    PDU (unencrypted: TLS carries it); the relay's Ctrl+X filter rebuilds PDUs from them."""
    reader = ByteReader(frame, "fast-path input PDU")
    header = reader.u8("fpInputHeader")
    first = reader.u8("length1")
    if first & 0x80:
        reader.u8("length2")
    count = (header >> 2) & 0x0F
    if count == 0:
        count = reader.u8("numEvents")
    events = []
    for index in range(count):
        event = reader.u8(f"event {index} header")
        size = _FASTPATH_EVENT_SIZE.get(event >> 5)
        if size is None:
            raise reader.error(f"event {index} has unknown code {event >> 5}")
        events.append(bytes([event]) + reader.take(size, f"event {index}"))
    reader.end()
    return header, events


def parse_fastpath_input(frame: bytes) -> list[Key]:
    """The keyboard events of one fast-path input PDU."""
    keys = []
    for event in fastpath_events(frame)[1]:
        code, flags, data = event[0] >> 5, event[0] & 0x1F, event[1:]
        released = bool(flags & FASTPATH_KBDFLAGS_RELEASE)
        if code == FASTPATH_INPUT_EVENT_SCANCODE:
            extended = bool(flags & FASTPATH_KBDFLAGS_EXTENDED)
            keys.append(Key(scancode=data[0], released=released, extended=extended))
        elif code == FASTPATH_INPUT_EVENT_UNICODE:
            keys.append(Key(char=chr(int.from_bytes(data, "little")), released=released))
    return keys


def parse_input_pdu(body: bytes) -> list[Key]:
    """The keyboard events of a slow-path Input Event PDU (body after the data header)."""
    reader = ByteReader(body, "Input Event PDU")
    count = reader.u16le("numEvents")
    reader.u16le("pad2Octets")
    keys = []
    for index in range(count):
        reader.u32le(f"event {index} eventTime")
        kind = reader.u16le(f"event {index} messageType")
        flags = reader.u16le(f"event {index} flags")
        code = reader.u16le(f"event {index} code")
        reader.u16le(f"event {index} pad")
        released = bool(flags & KBDFLAGS_RELEASE)
        if kind == INPUT_EVENT_SCANCODE:
            keys.append(
                Key(
                    scancode=code & 0xFF,
                    released=released,
                    extended=bool(flags & KBDFLAGS_EXTENDED),
                )
            )
        elif kind == INPUT_EVENT_UNICODE:
            keys.append(Key(char=chr(code), released=released))
    return keys


class Keyboard:
    """Turns key events into characters and Enter/Backspace, tracking the shift keys."""

    def __init__(self) -> None:
        self._shift: set[int] = set()

    def press(self, key: Key) -> str | None:
        """The character typed, ``"\\r"`` for Enter, ``"\\b"`` for Backspace, ``"\\x1b"``
        for Escape, or ``None`` (a release, a modifier, an unmapped key)."""
        if key.char is not None:
            if key.released:
                return None
            return {"\r": "\r", "\n": "\r", "\x08": "\b"}.get(key.char, key.char)
        if key.scancode in (LEFT_SHIFT, RIGHT_SHIFT) and not key.extended:
            if key.released:
                self._shift.discard(key.scancode)
            else:
                self._shift.add(key.scancode)
            return None
        if key.released:
            return None
        if key.scancode == ENTER:
            return "\r"
        if key.scancode == BACKSPACE:
            return "\b"
        if key.scancode == ESCAPE:
            return "\x1b"
        if key.extended:
            return None  # arrows, keypad divide, right Ctrl/Alt...
        pair = _US.get(key.scancode or 0)
        if pair is None:
            return None
        return pair[1] if self._shift else pair[0]
