"""The inline prompt's pieces without a client: keystrokes (fast-path and slow-path, US
scancodes with shift, Unicode) into characters, the prompt's field and error line, and the
bitmap tiles it is painted with. End-to-end typing with xfreerdp is in test_front.py."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.keys import Key, Keyboard, parse_fastpath_input, parse_input_pdu
from pamcore_rdp.pdu.paint import TILE, bitmap_updates
from pamcore_rdp.pdu.prompt import CARD, ERROR, PasswordPrompt, card_origin, status_card
from PIL import Image
from rdp_frames import fastpath, scancode

from pamcore.proxy import NEEDS_CODE

#: Set-1 scancodes xfreerdp sends for the US layout.
SCAN = {"S": 0x1F, "e": 0x12, "3": 0x04, "1": 0x02, "-": 0x0C, "enter": 0x1C, "bs": 0x0E}
SHIFT = 0x2A


def press(code: int) -> list[bytes]:
    return [scancode(code), scancode(code, release=True)]


def typed(keys: list[Key]) -> str:
    keyboard = Keyboard()
    return "".join(c for c in map(keyboard.press, keys) if c is not None)


def test_fastpath_scancodes_with_shift_become_characters() -> None:
    events = [
        scancode(SHIFT),
        *press(SCAN["S"]),
        scancode(SHIFT, release=True),
        *press(SCAN["e"]),
        *press(SCAN["3"]),
        scancode(SHIFT),
        *press(SCAN["1"]),  # shift+1 = '!'
        scancode(SHIFT, release=True),
        *press(SCAN["-"]),
        *press(SCAN["bs"]),
        *press(SCAN["enter"]),
    ]
    keys = parse_fastpath_input(fastpath(events[:15])) + parse_fastpath_input(fastpath(events[15:]))
    assert typed(keys) == "Se3!-\b\r"


def test_fastpath_unicode_and_mouse_events() -> None:
    unicode_a = bytes([0x4 << 5]) + struct.pack("<H", ord("é"))
    mouse = bytes([0x1 << 5]) + struct.pack("<HHH", 0x0800, 10, 20)
    keys = parse_fastpath_input(fastpath([mouse, unicode_a]))
    assert keys == [Key(char="é")]
    assert typed(keys) == "é"


def test_slow_path_input_pdu() -> None:
    events = b"".join(
        struct.pack("<IHHHH", 0, 0x0004, flags, code, 0)
        for flags, code in ((0, SCAN["e"]), (0x8000, SCAN["e"]), (0, SCAN["enter"]))
    )
    keys = parse_input_pdu(struct.pack("<HH", 3, 0) + events)
    assert typed(keys) == "e\r"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x04\x03",  # one event announced, none present
        bytes([1 << 2]) + b"\x03" + bytes([0x7 << 5]),  # unknown event code 7
        bytes([1 << 2]) + b"\x04" + bytes([0x1 << 5, 0]),  # mouse event cut short
    ],
)
def test_malformed_fastpath_input_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(RdpProtocolError, match="fast-path input PDU"):
        parse_fastpath_input(frame)


def test_prompt_field_backspace_submit_and_tries() -> None:
    prompt = PasswordPrompt("alice", "win01", tries=3)
    for char in "pw1x\b":
        assert prompt.type(char) is False
    assert prompt.type("\x01") is False  # control characters are not typed
    empty_field = PasswordPrompt("alice", "win01").render()
    assert prompt.render().tobytes() != empty_field.tobytes()  # bullets drawn
    assert prompt.type("\r") is True
    assert prompt.submit() == "pw1"
    assert prompt.tries_left == 2
    assert prompt.submit() == ""  # the field was emptied


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {colour for _, colour in image.getcolors(1 << 20) or []}


def test_prompt_error_line_is_painted_in_the_error_colour() -> None:
    prompt = PasswordPrompt("alice", None)
    assert ERROR not in colours(prompt.render())
    prompt.error = "Wrong username or password."
    image = prompt.render()
    assert image.getpixel((2, image.height - 2)) == CARD
    assert ERROR in colours(image)


def test_a_long_error_wraps_instead_of_being_cut() -> None:
    """The second-factor sentence of the sign-in is three lines, all on the card."""
    prompt = PasswordPrompt("alice", "win01")
    prompt.error = NEEDS_CODE
    two = prompt.render()
    prompt.error = NEEDS_CODE.rsplit(" ", 3)[0]  # without the last words
    assert two.tobytes() != prompt.render().tobytes()
    rows = {y for y in range(two.height) if ERROR in colours(two.crop((0, y, two.width, y + 1)))}
    assert max(rows) - min(rows) > 40  # more than two lines of 16 px text


def test_status_card_holds_the_message() -> None:
    assert status_card("waiting").tobytes() != status_card("approved").tobytes()
    assert card_origin(1024, 768) == (272, 254)
    assert card_origin(300, 200) == (0, 0)


def decode_rectangles(update: bytes) -> list[tuple[tuple[int, ...], bytes]]:
    """(destLeft, destTop, destRight, destBottom, width, height, bpp, flags) and pixels of
    each TS_BITMAP_DATA in an Update PDU body."""
    kind, count = struct.unpack_from("<HH", update)
    assert kind == 1  # UPDATETYPE_BITMAP
    offset, rectangles = 4, []
    for _ in range(count):
        fields = struct.unpack_from("<9H", update, offset)
        offset += 18
        rectangles.append((fields[:8], update[offset : offset + fields[8]]))
        offset += fields[8]
    assert offset == len(update)
    return rectangles


def test_bitmap_tiles_are_bottom_up_padded_and_clipped() -> None:
    image = Image.new("RGB", (70, 66), (0, 0, 255))
    image.putpixel((0, 0), (255, 0, 0))  # top-left red
    updates = bitmap_updates(image, 8, 4, 32)
    rectangles = [r for update in updates for r in decode_rectangles(update)]
    assert [r[0][:4] for r in rectangles] == [
        (8, 4, 8 + TILE - 1, 4 + TILE - 1),
        (8 + TILE, 4, 8 + 69, 4 + TILE - 1),
        (8, 4 + TILE, 8 + TILE - 1, 4 + 65),
        (8 + TILE, 4 + TILE, 8 + 69, 4 + 65),
    ]
    (first, pixels), (second, _), *_ = rectangles
    assert first[4:8] == (TILE, TILE, 32, 0)
    assert second[4:6] == (8, TILE)  # 6 pixels wide, padded to a multiple of 4
    # Bottom-up rows: the image's top row is the last row of the tile, BGRX.
    assert pixels[-TILE * 4 : -TILE * 4 + 4] == b"\x00\x00\xff\x00"
    assert pixels[:4] == b"\xff\x00\x00\x00"


def test_bitmap_updates_fit_in_one_send_data_pdu() -> None:
    updates = bitmap_updates(Image.new("RGB", (1024, 768)), 0, 0, 24)
    assert all(len(update) < 0x7FFF for update in updates)
    assert sum(len(r[1]) for u in updates for r in decode_rectangles(u)) == 1024 * 768 * 3
    with pytest.raises(ValueError, match="16 bits per pixel"):
        bitmap_updates(Image.new("RGB", (4, 4)), 0, 0, 16)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.binary(max_size=80))
def test_fuzzed_input_pdus_give_protocol_errors_only(data: bytes) -> None:
    """Random bytes, and the same bytes behind a plausible header, parse or fail cleanly."""
    for frame in (data, bytes([4 << 2]) + bytes([0x80 | 0, len(data) + 3]) + data):
        with contextlib.suppress(RdpProtocolError):
            parse_fastpath_input(frame)
    for body in (data, struct.pack("<HH", 2, 0) + data):
        with contextlib.suppress(RdpProtocolError):
            parse_input_pdu(body)
