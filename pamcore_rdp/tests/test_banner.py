"""The session-end banner's pieces without peers: the Ctrl+X filter on fast-path input
(the X events taken out exactly, everything else byte-identical, malformed input a clean
protocol error), the fragmentation tracking that keeps the banner between whole updates,
the fast-path bitmap PDUs, and its text fitted to its width. End to end with xfreerdp and
xrdp: test_redirection.py."""

from __future__ import annotations

import contextlib
import datetime as dt
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.keys import fastpath_events
from pamcore_rdp.pdu.prompt import CARD, font
from pamcore_rdp.pdu.wire import fastpath_length
from pamcore_rdp.proxy.banner import (
    CTRL,
    DETAIL_LINE_HEIGHT,
    DETAIL_LINES,
    ELLIPSIS,
    HEIGHT,
    KEY_X,
    MARGIN,
    WIDTH,
    CtrlX,
    Overlay,
    banner_image,
    fastpath_bitmap_pdus,
    fit_lines,
    fragment_open,
)
from pamcore_rdp.proxy.session_end import banner_text
from PIL import Image
from rdp_frames import fastpath, scancode

MOUSE = bytes([0x1 << 5]) + struct.pack("<HHH", 0x0800, 10, 20)
KEY_A = 0x1E


class Filter:
    """A CtrlX with a switchable window and a count of the extensions asked for."""

    def __init__(self, armed: bool = True) -> None:
        self.armed = armed
        self.asked = 0
        self.ctrl_x = CtrlX(lambda: self.armed, self._pressed)

    def _pressed(self) -> None:
        self.asked += 1

    def __call__(self, *events: bytes) -> bytes | None:
        return self.ctrl_x.filter(fastpath(list(events)))


def test_ctrl_x_is_taken_out_and_asks_once() -> None:
    f = Filter()
    assert f(scancode(CTRL)) == fastpath([scancode(CTRL)])
    out = f(MOUSE, scancode(KEY_X), scancode(KEY_X), scancode(KEY_A))  # X and its repeat
    assert out is not None and fastpath_events(out)[1] == [MOUSE, scancode(KEY_A)]
    assert fastpath_length(out[:3]) == len(out)
    assert f(scancode(KEY_X, release=True)) is None  # the release of the taken X
    assert f(scancode(CTRL, release=True)) == fastpath([scancode(CTRL, release=True)])
    assert f.asked == 1


def test_right_ctrl_counts_and_both_in_one_pdu() -> None:
    f = Filter()
    out = f(scancode(CTRL, extended=True), scancode(KEY_X))
    assert out is not None and fastpath_events(out)[1] == [scancode(CTRL, extended=True)]
    assert f.asked == 1


def test_outside_the_window_or_without_ctrl_everything_passes() -> None:
    f = Filter(armed=False)
    for events in (
        [scancode(CTRL), scancode(KEY_X)],
        [scancode(KEY_X, release=True), scancode(CTRL, release=True)],
    ):
        assert f(*events) == fastpath(events)
    f.armed = True
    assert f(scancode(KEY_X)) == fastpath([scancode(KEY_X)])  # no Ctrl held
    assert f(scancode(KEY_X, extended=True)) == fastpath([scancode(KEY_X, extended=True)])
    assert f.asked == 0


def test_sixteen_events_keep_their_count_byte() -> None:
    f = Filter()
    f(scancode(CTRL))
    events = [scancode(KEY_A), scancode(KEY_A, release=True)] * 8 + [scancode(KEY_X)]
    out = f(*events)
    assert out is not None
    assert fastpath_events(out)[1] == events[:16]
    assert out[:3] == bytes([0, 3 + 32, 16])  # numEvents in its own byte (2.2.8.1.2)


def test_slow_path_and_encrypted_frames_pass_untouched() -> None:
    f = Filter()
    f(scancode(CTRL))
    tpkt = b"\x03\x00\x00\x08\x02\xf0\x80\x00"
    assert f.ctrl_x.filter(tpkt) == tpkt
    encrypted = bytes([0x80 | (1 << 2), 3 + 2]) + scancode(KEY_X)
    assert f.ctrl_x.filter(encrypted) == encrypted
    assert f.asked == 0


@pytest.mark.parametrize(
    "frame",
    [
        b"\x04\x03",  # one event announced, none present
        bytes([1 << 2]) + b"\x03" + bytes([0x7 << 5]),  # unknown event code 7
        bytes([1 << 2, 5]) + scancode(KEY_X) + b"\x00",  # a byte after the last event
    ],
)
def test_malformed_input_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(RdpProtocolError, match="fast-path input PDU"):
        Filter().ctrl_x.filter(frame)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(min_size=1, max_size=80))
def test_fuzzed_input_passes_or_fails_cleanly(data: bytes) -> None:
    f = Filter()
    f(scancode(CTRL))
    for frame in (data, bytes([4 << 2]) + bytes([0x80, len(data) + 3]) + data):
        with contextlib.suppress(RdpProtocolError):
            out = f.ctrl_x.filter(frame)
            assert out is None or out == frame or fastpath_length(out[:3]) == len(out)


def fastpath_output(*updates: tuple[int, bytes]) -> bytes:
    """A fast-path output PDU of (updateHeader, data) updates (2.2.9.1.2)."""
    body = b"".join(
        bytes([header]) + struct.pack("<H", len(data)) + data for header, data in updates
    )
    return struct.pack(">BH", 0, 0x8000 | (3 + len(body))) + body


def test_fragmentation_is_followed_across_frames() -> None:
    first, middle, last, single = 0x2 << 4, 0x3 << 4, 0x1 << 4, 0x0
    assert fragment_open(fastpath_output((single | 1, b"ab")), False) is False
    assert fragment_open(fastpath_output((first | 1, b"ab")), False) is True
    assert fragment_open(b"\x03\x00\x00\x07\x02\xf0\x80", True) is True  # TPKT: no change
    assert fragment_open(fastpath_output((middle | 1, b"ab")), True) is True
    assert fragment_open(fastpath_output((last | 1, b"ab"), (first, b"c")), True) is True
    assert fragment_open(fastpath_output((last, b"c")), True) is False
    compressed = bytes([(0x2 << 6) | 1, 0x20]) + struct.pack("<H", 1) + b"z"
    assert fragment_open(struct.pack(">BH", 0, 0x8000 | 8) + compressed, False) is False
    with pytest.raises(RdpProtocolError):
        fragment_open(fastpath_output((single, b"ab"))[:-1], False)
    with pytest.raises(RdpProtocolError, match="encrypted"):
        fragment_open(b"\x80\x05abc", False)


FIRST, NEXT, LAST, SINGLE = 0x2 << 4, 0x3 << 4, 0x1 << 4, 0x0
BANNER = [b"\x00\x80\x07ban", b"\x00\x80\x07ner"]


def stream() -> list[bytes]:
    """Target frames: slow-path, a fragmented update in three PDUs, then a single one."""
    return [
        b"\x03\x00\x00\x09\x02\xf0\x80ab",
        fastpath_output((FIRST | 1, b"f1" * 50)),
        fastpath_output((NEXT | 1, b"f2" * 50)),
        fastpath_output((LAST | 1, b"f3")),
        fastpath_output((SINGLE | 1, b"s" * 300)),
    ]


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_without_a_banner_the_stream_passes_byte_identical(size: int) -> None:
    overlay = Overlay()
    data = b"".join(stream())
    out = b"".join(b"".join(overlay.feed(chunk)) for chunk in chunks(data, size))
    assert out == data and overlay.sent == 0 and overlay.failed is None


@pytest.mark.parametrize("after", range(5))
def test_the_banner_goes_between_whole_frames_outside_fragments(after: int) -> None:
    """Asked to paint after each frame in turn: inside the fragmented update it waits
    for the LAST fragment; elsewhere it goes right away."""
    frames = stream()
    overlay = Overlay()
    written = [w for frame in frames[: after + 1] for w in overlay.feed(frame)]
    written += overlay.paint(list(BANNER))
    written += [w for frame in frames[after + 1 :] for w in overlay.feed(frame)]
    expected_after = 3 if after in (1, 2) else after
    assert written == frames[: expected_after + 1] + BANNER + frames[expected_after + 1 :]
    assert overlay.sent == sum(map(len, BANNER))


def test_a_partial_frame_is_held_back_until_whole() -> None:
    overlay = Overlay()
    frame = stream()[4]
    assert overlay.feed(frame[:10]) == []
    assert overlay.paint(list(BANNER)) == BANNER  # the client has seen whole frames only
    assert overlay.feed(frame[10:]) == [frame]


def test_a_stream_that_is_not_rdp_is_passed_on_and_never_painted() -> None:
    overlay = Overlay()
    assert overlay.feed(b"\x80\x05abc") == [b"\x80\x05abc"]  # encrypted fast-path
    assert overlay.failed is not None and "encrypted" in overlay.failed
    assert overlay.paint(list(BANNER)) == []
    garbage = Overlay()
    assert b"".join(garbage.feed(b"\x03\x00\x00\x02xyz")) == b"\x03\x00\x00\x02xyz"
    assert garbage.paint(list(BANNER)) == [] and garbage.failed is not None


def test_banner_pdus_are_whole_fastpath_bitmap_updates() -> None:
    image = banner_image("pamcore: session ends at 14:05 UTC (4 min left)", "Press Ctrl+X.")
    assert image.size == (WIDTH, HEIGHT)
    for bpp in (24, 32):
        pdus = fastpath_bitmap_pdus(image, 272, 0, bpp)
        pixels = 0
        for pdu in pdus:
            assert fastpath_length(pdu[:3]) == len(pdu)
            assert fragment_open(pdu, False) is False
            assert pdu[3] == 0x01  # FASTPATH_UPDATETYPE_BITMAP, single, uncompressed
            assert struct.unpack_from("<H", pdu, 6)[0] == 0x0001  # updateType bitmap
            pixels += sum(
                width * height
                for width, height in _rectangle_sizes(pdu[8:], struct.unpack_from("<H", pdu, 8)[0])
            )
        assert pixels == WIDTH * HEIGHT


def _rectangle_sizes(data: bytes, count: int) -> list[tuple[int, int]]:
    """(width, height) of each TS_BITMAP_DATA after numberRectangles, clipped by dest."""
    sizes, offset = [], 2
    for _ in range(count):
        left, top, right, bottom, _w, _h, _bpp, _flags, length = struct.unpack_from(
            "<9H", data, offset
        )
        sizes.append((right - left + 1, bottom - top + 1))
        offset += 18 + length
    assert offset == len(data)
    return sizes


# -- the banner's text: fitted to its width, Ctrl+X only where it extends ------------------

REFUSAL = "Not extended: connection profile 'Windows Administrators' does not allow extensions"
TEXT_WIDTH = WIDTH - 2 * MARGIN


def test_a_refusal_wraps_whole_instead_of_being_cut() -> None:
    lines = fit_lines(REFUSAL, font(14), TEXT_WIDTH, DETAIL_LINES)
    assert len(lines) == 2
    assert " ".join(lines) == REFUSAL  # nothing lost ("...does not allow e" was)
    assert all(font(14).getlength(line) <= TEXT_WIDTH for line in lines)


def test_what_cannot_fit_ends_with_an_ellipsis_within_the_width() -> None:
    text = " ".join([REFUSAL] * 3)
    lines = fit_lines(text, font(14), TEXT_WIDTH, DETAIL_LINES)
    assert len(lines) == DETAIL_LINES and lines[-1].endswith(ELLIPSIS)
    assert all(font(14).getlength(line) <= TEXT_WIDTH for line in lines)
    assert text.startswith(" ".join(lines)[: -len(ELLIPSIS)])


def test_a_word_wider_than_the_banner_is_split_not_dropped() -> None:
    word = "x" * 200
    lines = fit_lines(word, font(14), TEXT_WIDTH, 5)
    assert "".join(lines) == word and len(lines) > 1
    assert all(font(14).getlength(line) <= TEXT_WIDTH for line in lines)


def test_the_second_detail_line_is_painted() -> None:
    """The refusal's wrapped second line reaches the pixels, inside the banner."""

    def ink(image: Image.Image, top: int) -> int:
        band = image.crop((0, top, WIDTH, top + DETAIL_LINE_HEIGHT))
        return sum(band.getpixel((x, y)) != CARD for x in range(WIDTH) for y in range(band.height))

    one_line = banner_image("pamcore: session ends at 14:05 UTC (4 min left)", "Not extended.")
    wrapped = banner_image("pamcore: session ends at 14:05 UTC (4 min left)", REFUSAL, True)
    second = 33 + DETAIL_LINE_HEIGHT
    assert ink(one_line, second) == 0 and ink(wrapped, second) > 0
    assert second + DETAIL_LINE_HEIGHT <= HEIGHT


@pytest.mark.parametrize(
    ("extendable", "ctrl_x"), [(True, True), (False, False)], ids=["extendable", "not"]
)
def test_ctrl_x_is_offered_only_when_the_profile_allows_extension(
    extendable: bool, ctrl_x: bool
) -> None:
    now = dt.datetime(2026, 12, 3, 14, 1)
    headline, hint = banner_text(now + dt.timedelta(minutes=4), now, extendable)
    assert headline == "pamcore: session ends at 14:05 UTC (4 min left)"
    assert ("Ctrl+X" in hint) is ctrl_x
    assert fit_lines(hint, font(14), TEXT_WIDTH, DETAIL_LINES) == [hint]
