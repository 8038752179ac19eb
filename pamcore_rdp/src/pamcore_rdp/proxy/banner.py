"""The session-end banner inside a relayed session (docs/design/rdp.md §3.4 "Later:
session-extension pop-up"): within the profile's warning window the relay paints a small
card at the top of the desktop, as fast-path bitmap updates slipped in between the
target's own frames, and takes Ctrl+X from the client's fast-path input as "extend".

Only plain bitmap updates reach the screen this way, so the relay switches the GFX
pipeline off in the client's CS_CORE (:func:`~pamcore_rdp.pdu.gcc.clear_early_capability_flags`).
The target may paint over the banner at any time; the relay repaints it every
:data:`REPAINT_SECONDS` and whenever its text changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.keys import (
    FASTPATH_INPUT_EVENT_SCANCODE,
    FASTPATH_KBDFLAGS_EXTENDED,
    FASTPATH_KBDFLAGS_RELEASE,
    fastpath_events,
)
from pamcore_rdp.pdu.paint import SUPPORTED_BPP, bitmap_updates
from pamcore_rdp.pdu.prompt import CARD, ERROR, TEXT, TITLE_BAR, TITLE_TEXT, font
from pamcore_rdp.pdu.wire import FASTPATH_MAX_LENGTH, TPKT_VERSION, ByteReader
from pamcore_rdp.proxy.recording import Frames

WIDTH = 480
HEIGHT = 72
#: Pixels from the top edge of the desktop.
TOP = 0
REPAINT_SECONDS = 30.0
#: Left and right margin of the text, in pixels.
MARGIN = 12
#: Lines of detail under the title bar, and their height in pixels (14 px text).
DETAIL_LINES = 2
DETAIL_LINE_HEIGHT = 18
ELLIPSIS = "\u2026"

#: Set-1 scancodes: Ctrl (left; right is the same code, extended) and X.
CTRL = 0x1D
KEY_X = 0x2D

# Fast-path output (MS-RDPBCGR 2.2.9.1.2): updateCode in the low 4 bits of updateHeader,
# fragmentation in bits 4-5, compression in bits 6-7.
FASTPATH_UPDATETYPE_BITMAP = 0x1
FASTPATH_FRAGMENT_SINGLE = 0x0
FASTPATH_FRAGMENT_LAST = 0x1
FASTPATH_OUTPUT_COMPRESSION_USED = 0x2
#: fpOutputHeader / fpInputHeader flags (top two bits): encrypted or salted checksum.
FASTPATH_SECURITY_FLAGS = 0xC0


def banner_image(headline: str, detail: str, error: bool = False) -> Image.Image:
    """The banner: ``headline`` on the title bar, ``detail`` wrapped below it (both
    fitted to the banner's width, see :func:`fit_lines`)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), CARD)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH - 1, 27), fill=TITLE_BAR)
    (title,) = fit_lines(headline, font(16), WIDTH - 2 * MARGIN, 1) or [""]
    draw.text((MARGIN, 5), title, fill=TITLE_TEXT, font=font(16))
    for row, line in enumerate(fit_lines(detail, font(14), WIDTH - 2 * MARGIN, DETAIL_LINES)):
        y = 33 + row * DETAIL_LINE_HEIGHT
        draw.text((MARGIN, y), line, fill=ERROR if error else TEXT, font=font(14))
    return image


def fit_lines(
    text: str, typeface: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, lines: int
) -> list[str]:
    """``text`` wrapped at spaces into at most ``lines`` lines of ``width`` pixels or less
    in ``typeface``; when it does not fit, the last line ends with an ellipsis, so a cut
    sentence never passes for a whole one."""

    def fits(line: str) -> bool:
        return typeface.getlength(line) <= width

    wrapped: list[str] = []
    words = text.split()
    while words and len(wrapped) < lines:
        line = words.pop(0)
        if not fits(line):  # a word wider than the banner: its head here, the rest next
            cut = len(line) - 1
            while cut > 1 and not fits(line[:cut]):
                cut -= 1
            line, rest = line[:cut], line[cut:]
            words.insert(0, rest)
        while words and fits(f"{line} {words[0]}"):
            line = f"{line} {words.pop(0)}"
        wrapped.append(line)
    if words and wrapped:
        last = wrapped[-1]
        while last and not fits(f"{last}{ELLIPSIS}"):
            last = last[:-1]
        wrapped[-1] = f"{last.rstrip()}{ELLIPSIS}"
    return wrapped


def banner_left(desktop_width: int) -> int:
    """The banner's left edge, centred (a multiple of 4, as :mod:`.paint` tiles need)."""
    return max(0, (desktop_width - WIDTH) // 2) & ~3


def fastpath_bitmap_pdus(image: Image.Image, left: int, top: int, bpp: int) -> list[bytes]:
    """``image`` as fast-path output PDUs, one bitmap update each (2.2.9.1.2.1.2: the
    update carries TS_UPDATE_BITMAP_DATA whole, updateType included), unfragmented and
    uncompressed; no share or channel ids are needed, unlike a slow-path update."""
    pdus = []
    for update in bitmap_updates(image, left, top, bpp):
        body = struct.pack("<BH", FASTPATH_UPDATETYPE_BITMAP, len(update)) + update
        length = 3 + len(body)
        if length > FASTPATH_MAX_LENGTH:
            raise ValueError(f"a {length}-byte fast-path PDU exceeds {FASTPATH_MAX_LENGTH}")
        pdus.append(struct.pack(">BH", 0, 0x8000 | length) + body)
    return pdus


def fragment_open(frame: bytes, open_: bool) -> bool:
    """Whether a fragmented fast-path update is still incomplete after the target's
    ``frame`` (2.2.9.1.2.1: FIRST/NEXT fragments must follow each other; FreeRDP fails the
    connection on an unfragmented update in between). TPKT frames leave it as it was."""
    if frame[0] == TPKT_VERSION:
        return open_
    reader = ByteReader(frame, "fast-path output PDU")
    header = reader.u8("fpOutputHeader")
    if header & FASTPATH_SECURITY_FLAGS:
        raise reader.error("encrypted fast-path output; the relay only carries TLS sessions")
    if reader.u8("length1") & 0x80:
        reader.u8("length2")
    while reader.remaining:
        update = reader.u8("updateHeader")
        if (update >> 6) & FASTPATH_OUTPUT_COMPRESSION_USED:
            reader.u8("compressionFlags")
        reader.take(reader.u16le("size"), "updateData")
        open_ = (update >> 4) & 0x3 not in (FASTPATH_FRAGMENT_SINGLE, FASTPATH_FRAGMENT_LAST)
    return open_


class Overlay:
    """The target's stream to the client, passed on in whole frames so that banner
    updates can go in between two of them (never inside a frame, nor inside a fragmented
    fast-path update). A stream that stops parsing is passed on as it comes, unpainted."""

    def __init__(self) -> None:
        self._frames = Frames()
        self._open = False
        self._queued: list[bytes] = []
        #: Why the banner cannot be painted into this stream, once it cannot.
        self.failed: str | None = None
        #: Bytes of banner updates sent.
        self.sent = 0

    def feed(self, data: bytes) -> list[bytes]:
        """What to write to the client for ``data`` from the target: its whole frames
        (a partial one waits for its rest), with a queued banner after the first frame
        that ends at a clean boundary."""
        out = []
        for frame in self._frames.feed(data):
            out.append(frame)
            if self._frames.broken and self.failed is None:
                self._fail("the target's stream is not RDP frames")
            if self.failed is None:
                try:
                    self._open = fragment_open(frame, self._open)
                except RdpProtocolError as exc:
                    self._fail(str(exc))
                out += self._take()
        return out

    def paint(self, pdus: list[bytes]) -> list[bytes]:
        """Queue ``pdus`` (replacing a banner not sent yet); what may be written now."""
        if self.failed is None:
            self._queued = pdus
        return self._take()

    def _take(self) -> list[bytes]:
        if self._open or self.failed is not None:
            return []
        taken, self._queued = self._queued, []
        self.sent += sum(map(len, taken))
        return taken

    def _fail(self, why: str) -> None:
        self.failed = why
        self._queued = []


@dataclass
class CtrlX:
    """Finds Ctrl+X in the client's fast-path input and takes the X key out of it while
    ``armed()``; everything else passes byte-identical. ``pressed`` is called once per
    Ctrl+X (key repeats and the release of a taken X are swallowed without a call)."""

    armed: Callable[[], bool]
    pressed: Callable[[], None]
    _ctrl: set[bool] = field(default_factory=set)
    _taken: bool = False

    def filter(self, frame: bytes) -> bytes | None:
        """``frame`` as it goes to the target: unchanged, without the X events, or
        ``None`` when nothing is left. Raises RdpProtocolError on a malformed PDU (the
        caller passes it on untouched: the target judges it)."""
        if not frame or frame[0] == TPKT_VERSION or frame[0] & FASTPATH_SECURITY_FLAGS:
            return frame
        header, events = fastpath_events(frame)
        kept = [event for event in events if not self._take(event)]
        if len(kept) == len(events):
            return frame
        if not kept:
            return None
        return _input_pdu(header, kept)

    def _take(self, event: bytes) -> bool:
        code, flags = event[0] >> 5, event[0] & 0x1F
        if code != FASTPATH_INPUT_EVENT_SCANCODE:
            return False
        released = bool(flags & FASTPATH_KBDFLAGS_RELEASE)
        extended = bool(flags & FASTPATH_KBDFLAGS_EXTENDED)
        if event[1] == CTRL:
            (self._ctrl.discard if released else self._ctrl.add)(extended)
            return False
        if event[1] != KEY_X or extended:
            return False
        if released:
            taken, self._taken = self._taken, False
            return taken
        if self._taken:
            return True  # auto-repeat of the X already taken
        if self._ctrl and self.armed():
            self._taken = True
            self.pressed()
            return True
        return False


def _input_pdu(header: int, events: list[bytes]) -> bytes:
    """A fast-path input PDU (2.2.8.1.2) with ``header``'s action and flags and
    ``events``: numEvents in the header up to 15, else in its own byte."""
    count = len(events)
    body = (b"" if count <= 15 else bytes([count])) + b"".join(events)
    first = (header & ~0x3C) | ((count if count <= 15 else 0) << 2)
    if 2 + len(body) < 0x80:
        return bytes([first, 2 + len(body)]) + body
    return struct.pack(">BH", first, 0x8000 | (3 + len(body))) + body


def paintable(bpp: int | None) -> bool:
    """Whether the banner can be painted at ``bpp`` (what :mod:`.paint` writes)."""
    return bpp in SUPPORTED_BPP
