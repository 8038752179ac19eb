"""What the front shows inside the RDP window: the password prompt (user name, a password
field of bullets, an error line) and the status card for a session that cannot be used yet.
Rendered with Pillow into one card image; :mod:`pamcore_rdp.pdu.paint` sends it as bitmaps.

The password itself never leaves this object except through :meth:`PasswordPrompt.submit`,
and the image holds one bullet per character.
"""

from __future__ import annotations

import textwrap
from functools import cache

from PIL import Image, ImageDraw, ImageFont

#: Colours (RGB); the end-to-end tests read them back from screenshots.
BACKGROUND = (32, 44, 64)
CARD = (245, 245, 245)
TITLE_BAR = (31, 58, 95)
TITLE_TEXT = (255, 255, 255)
TEXT = (30, 30, 30)
FIELD = (255, 255, 255)
FIELD_BORDER = (120, 120, 120)
ERROR = (176, 0, 32)

CARD_WIDTH = 480
CARD_HEIGHT = 260
TITLE_HEIGHT = 40
#: The field shows one dot per character typed, up to what fits.
DOT_PITCH = 14
MAX_DOTS = 22
#: Characters per line of text on the card, and lines for a status or an error.
LINE_CHARS = 52
STATUS_LINES = 7
ERROR_LINES = 3
#: Characters a password may hold: printable, no control characters.
MAX_PASSWORD = 128


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def card_origin(width: int, height: int) -> tuple[int, int]:
    """Top-left corner of the card centred on a ``width`` x ``height`` desktop (multiples
    of 4, so every tile row stays aligned)."""
    return max(0, (width - CARD_WIDTH) // 2) & ~3, max(0, (height - CARD_HEIGHT) // 2)


def background(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), BACKGROUND)


def _card(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (CARD_WIDTH, CARD_HEIGHT), CARD)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, CARD_WIDTH - 1, TITLE_HEIGHT - 1), fill=TITLE_BAR)
    draw.text((16, 10), title, fill=TITLE_TEXT, font=font(18))
    return image, draw


def wrap(message: str, lines: int) -> list[str]:
    """``message`` in at most ``lines`` lines that fit the card (the rest is cut)."""
    return textwrap.wrap(message, LINE_CHARS)[:lines]


def status_card(message: str) -> Image.Image:
    """A card with a message and no field: the session waits, or the connection ends."""
    image, draw = _card("pamcore")
    for row, line in enumerate(wrap(message, STATUS_LINES)):
        draw.text((24, TITLE_HEIGHT + 24 + 26 * row), line, fill=TEXT, font=font(16))
    return image


class PasswordPrompt:
    """The prompt's state: the characters typed so far, the error line, the tries left."""

    def __init__(self, username: str, target: str | None, tries: int = 3) -> None:
        self.username = username
        self.target = target
        self.tries_left = tries
        self.error = ""
        self._typed: list[str] = []

    def type(self, char: str) -> bool:
        """Apply one character from :class:`pamcore_rdp.pdu.keys.Keyboard`; True on Enter."""
        if char == "\r":
            return True
        if char == "\b":
            if self._typed:
                self._typed.pop()
        elif char.isprintable() and len(self._typed) < MAX_PASSWORD:
            self._typed.append(char)
        return False

    def submit(self) -> str:
        """The password typed (the field is emptied) and one try used."""
        password = "".join(self._typed)
        self._typed.clear()
        self.tries_left -= 1
        return password

    def render(self) -> Image.Image:
        image, draw = _card("pamcore")
        y = TITLE_HEIGHT + 16
        where = f" to {self.target}" if self.target else ""
        draw.text((24, y), f"Sign in{where}"[:56], fill=TEXT, font=font(16))
        draw.text((24, y + 30), f"User: {self.username}"[:56], fill=TEXT, font=font(16))
        draw.text((24, y + 66), "Password:", fill=TEXT, font=font(16))
        field = (120, y + 60, CARD_WIDTH - 24, y + 90)
        draw.rectangle(field, fill=FIELD, outline=FIELD_BORDER)
        # Drawn as dots, not a bullet glyph: Pillow's built-in font has none.
        middle = (field[1] + field[3]) // 2
        for index in range(min(len(self._typed), MAX_DOTS)):
            x = field[0] + 12 + DOT_PITCH * index
            draw.ellipse((x - 4, middle - 4, x + 4, middle + 4), fill=TEXT)
        for row, line in enumerate(wrap(self.error, ERROR_LINES)):
            draw.text((24, y + 100 + 20 * row), line, fill=ERROR, font=font(16))
        draw.text(
            (24, CARD_HEIGHT - 30), "Press Enter to sign in.", fill=FIELD_BORDER, font=font(14)
        )
        return image
